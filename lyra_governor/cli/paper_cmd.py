"""`lyra-governor paper`: the Phase-3 paper run, offline; `lyra-governor record`: books via ccxt."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lyra_governor.cli.common import console, echo_name, err_console, print_json, settings, writable_folder
from lyra_governor.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("paper")(paper_cmd)
    app.command("record")(record_cmd)


def paper_cmd(
    ctx: typer.Context,
    hours: float | None = typer.Option(
        None, "--hours", min=0.02, max=168,
        help="Simulated hours of one-second ticks (default: 2 generated; with --data the whole recording).",
    ),
    out: Path = typer.Option(Path("reports/paper"), "--out", help="Report folder (summary, report.html, store)."),
    data: Path | None = typer.Option(None, "--data", help="CSV of recorded books instead of generated ones."),
    seed: int = typer.Option(7, "--seed", help="Seed of the book generator and the run (same seed, same run)."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json's content as one JSON line."),
    strategies: str = typer.Option(
        "all", "--strategies", help="Comma-separated strategy roles to run (default all eight; see README)."
    ),
) -> None:
    """Run the eight governed strategies (or `--strategies`) on $1,000 virtual; exit 0 when the
    Phase-3 gate passes (success rate > 95 %, every limit respected, arbitrage detected, every
    opening order under a council mandate, every strategy tested)."""
    from lyra_strategies.paper import generator, importer, report
    from lyra_strategies.paper.replay import pick_strategies, run_replay

    cfg = settings(ctx)
    writable_folder(out, "--out")  # before the run, not after it
    try:
        roles = pick_strategies(strategies)
    except ValueError as exc:
        raise ConfigError(f"--strategies: {exc}") from None
    feed = importer.load_csv(data, hours) if data else generator.generate(hours or 2.0, seed)
    span = (f"{feed.seconds / 3600:g} simulated h of {feed.source} "
            f"({report._utc(feed.start)} to {report._utc(feed.start + feed.seconds - 1)})")
    if not as_json:
        err_console.print(f"replaying {span}")
    with Progress(
        TextColumn("[bold]paper run[/]"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} s"),
        TimeRemainingColumn(),
        console=err_console,
        disable=as_json,
    ) as bar:
        task = bar.add_task("replay", total=feed.seconds)
        result = run_replay(
            cfg, feed, out, progress=lambda done, _total: bar.update(task, completed=done), seed=seed, strategies=roles
        )
    summary = report.summarize(result, cfg)
    summary["evidence"], summary["promote_needs"] = _record_evidence(cfg, summary, result.audit_head)
    files = report.write_report(summary, result, out)
    if as_json:
        print_json(summary)
    else:
        table = Table(title=f"Phase-3 paper run: {span}, in {result.wall_s:.1f} s")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key in ("orders_proposed", "orders_approved", "orders_denied", "orders_pending_mandate", "fills",
                    "max_exposure_usd", "cap_usd", "arbitrage_seen", "arbitrage_taken", "ai_calls"):
            table.add_row(key, str(summary[key]))
        for code, count in summary["denied_by_code"].items():
            table.add_row(f"  denied {code}", str(count))
        for role, c in summary["strategies"].items():
            table.add_row(f"  {role}", f"{c['proposed']} proposed, {c['approved']} approved, {c['fills']} fills")
        table.add_row("all_strategies_tested", str(summary["all_strategies_tested"]))
        pnl = summary["pnl"]
        table.add_row("PnL total (USD)", f"{pnl['total_usd']:+.2f}")
        table.add_row("  market move of the start inventory", f"{pnl['market_move_usd']:+.2f}")
        table.add_row("  trading PnL vs holding (net of fees)", f"{pnl['trading_pnl_usd']:+.2f}")
        table.add_row("  fees paid", f"{pnl['fees_usd']:.2f}")
        for criterion in summary["criteria"]:
            mark = "[green]pass[/]" if criterion["passed"] else "[red]FAIL[/]"
            table.add_row(criterion["criterion"], f"{criterion['figure']}  {mark}")
        console.print(table)
        if result.unmatched:
            err_console.print(f"[yellow]{result.unmatched_note}[/]")
        if summary["data"]["sparse_quotes_note"]:
            err_console.print(f"[yellow]{summary['data']['sparse_quotes_note']}[/]")
        others = ", ".join(f.name for f in files if f.name != "report.html")
        console.print(f"report: {out / 'report.html'} (and {others})")
        console.print(f"evidence: {summary['evidence']}")
        needs = summary["promote_needs"]
        if needs is not None:
            console.print("promote still needs: " + ("; ".join(needs) if needs else "nothing"))
        if summary["gate_passed"]:
            console.print("[bold green]Phase-3 gate passed[/]")
        else:
            err_console.print(f"[bold red]Phase-3 gate not passed[/]: {'; '.join(summary['gate_reasons'])}")
    raise typer.Exit(0 if summary["gate_passed"] else 1)


def _record_evidence(cfg: object, summary: dict[str, Any], audit_head: str) -> tuple[str, list[str] | None]:
    """Write the run's result to the operator's ledger as phase3_paper evidence; return where
    it went and what `promote` still needs afterwards (None if the ledger is unavailable)."""
    from lyra_governor import phases
    from lyra_governor.config import Settings
    from lyra_governor.errors import StoreUnavailable
    from lyra_governor.ledger import Ledger

    assert isinstance(cfg, Settings)
    payload = {
        k: summary[k]
        for k in (
            "success_rate",
            "limits_respected",
            "orders_proposed",
            "orders_approved",
            "fills",
            "pnl_usd",
            "audit_ok",
            "simulated_hours",
            "store",
            "arbitrage_seen",
            "arbitrage_taken",
            "max_exposure_usd",
            "cap_usd",
            "strategies",
            "strategies_untested",
        )
    }
    payload["audit_head"] = audit_head
    payload["trading_pnl_usd"] = summary["pnl"]["trading_pnl_usd"]
    payload["criteria"] = {c["criterion"]: c["passed"] for c in summary["criteria"]}
    payload["data_source"] = summary["data"]["source"]
    try:
        ledger = Ledger.open(cfg)
    except StoreUnavailable as exc:
        return f"not recorded: {exc}", None
    try:
        ledger.record_evidence("phase3_paper", payload, bool(summary["gate_passed"]), "paper-run")
        needs = [b for b in phases.promotion_blockers(ledger.promotion_facts(), cfg.ladder, None)
                 if not b.startswith("no council verdict")]
    finally:
        ledger.close()
    verdict = "passed" if summary["gate_passed"] else "not passed"
    needs.append("a council verdict on the evidence (`lyra-governor promote` asks for it)")
    return f"phase3_paper ({verdict}) recorded in {_redacted(cfg.db_url)}", needs


def _redacted(url: str) -> str:
    """A store URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


RECORDING_HEADER = "timestamp,connector,trading_pair,best_bid,best_ask,bid_size"


def open_recording(out: Path) -> TextIO:
    """`out` opened to append snapshot rows: a missing or empty file gets the header first; a
    file whose last line a killed recorder cut short (no newline at its end) gets a newline, so
    the first new row starts a line of its own (the cut row stays cut: the importer leaves out a
    row missing a field)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = out.open("a+b")
    try:
        size = handle.seek(0, 2)
        if size == 0:
            handle.write(RECORDING_HEADER.encode() + b"\r\n")  # csv.writer's own line ending
        else:
            handle.seek(size - 1)
            if handle.read(1) not in (b"\n", b"\r"):
                handle.write(b"\r\n")
        handle.flush()
    finally:
        handle.close()
    return out.open("a", newline="", encoding="utf-8")


def record_cmd(
    ctx: typer.Context,
    exchange: str = typer.Option("binance", "--exchange", help="Exchange name in the config (its ccxt_id is used)."),
    pair: str = typer.Option("BTC-USDT", "--pair", help="Trading pair, BASE-QUOTE."),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, max=1440, help="How long to record."),
    out: Path = typer.Option(Path("data/recording.csv"), "--out", help="CSV to append snapshots to."),
    interval_s: float = typer.Option(1.0, "--interval", min=0.2, help="Seconds between snapshots."),
) -> None:
    """Record top-of-book snapshots through ccxt (needs a network) for `paper --data`."""
    import csv

    import ccxt

    cfg = settings(ctx)
    spec = cfg.exchanges.get(exchange)
    if spec is None or not spec.ccxt_id:
        raise ConfigError(
            f"exchange {echo_name(exchange)} has no ccxt_id in the config; choose one of "
            f"{', '.join(n for n, e in cfg.exchanges.items() if e.ccxt_id)}"
        )
    client = getattr(ccxt, spec.ccxt_id)({"enableRateLimit": True, "timeout": 10_000})
    symbol = pair.replace("-", "/")
    end = time.time() + minutes * 60
    rows = 0
    with open_recording(out) as handle:
        writer = csv.writer(handle)
        while time.time() < end:
            try:
                book = client.fetch_order_book(symbol, limit=5)
            except ccxt.NetworkError as exc:
                raise ConfigError(f"cannot reach {exchange} ({type(exc).__name__}); check the network") from None
            except ccxt.ExchangeError as exc:
                raise ConfigError(f"{exchange} refused {symbol}: {exc}") from None
            if book["bids"] and book["asks"]:
                writer.writerow(
                    [
                        time.time(),
                        f"{exchange}_paper_trade",
                        pair,
                        book["bids"][0][0],
                        book["asks"][0][0],
                        book["bids"][0][1],
                    ]
                )
                rows += 1
            time.sleep(interval_s)
    console.print(f"recorded {rows} snapshots of {pair} on {exchange} to {out}")
