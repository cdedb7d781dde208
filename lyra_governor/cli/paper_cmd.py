"""`lyra-governor paper`: the Phase-3 paper run, offline; `lyra-governor record`: books via ccxt."""

from __future__ import annotations

import time
from pathlib import Path

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
    hours: float = typer.Option(2.0, "--hours", min=0.02, max=168, help="Simulated hours of one-second ticks."),
    out: Path = typer.Option(Path("reports/paper"), "--out", help="Report folder (summary.json, plots, store)."),
    data: Path | None = typer.Option(None, "--data", help="CSV of recorded books instead of generated ones."),
    seed: int = typer.Option(7, "--seed", help="Seed of the book generator (same seed, same run)."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json's content as one JSON line."),
    strategies: str = typer.Option(
        "all", "--strategies", help="Comma-separated strategy roles to run (default all eight; see README)."
    ),
) -> None:
    """Run the eight governed strategies (or `--strategies`) on $1,000 virtual; exit 0 when the
    Phase-3 gate passes (success rate > 95 %, every limit respected, every strategy tested)."""
    from lyra_governor.ledger import Ledger
    from lyra_strategies.paper import generator, importer, report
    from lyra_strategies.paper.replay import pick_strategies, run_replay

    cfg = settings(ctx)
    writable_folder(out, "--out")  # before the run, not after it
    try:
        roles = pick_strategies(strategies)
    except ValueError as exc:
        raise ConfigError(f"--strategies: {exc}") from None
    feed = importer.load_csv(data, hours) if data else generator.generate(hours, seed)
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
            cfg, feed, out, progress=lambda done, _total: bar.update(task, completed=done), strategies=roles
        )
    summary = report.summarize(result, cfg.ladder.paper_success_rate_min, float(cfg.ladder.paper_virtual_usd))
    files = report.write_report(summary, result, out)
    evidence_note = _record_evidence(cfg, summary)
    summary["evidence"] = evidence_note
    (out / "summary.json").write_text(__import__("json").dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    if as_json:
        print_json(summary)
    else:
        table = Table(title=f"Phase-3 paper run: {summary['simulated_hours']:g} simulated h in {result.wall_s:.1f} s")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key in (
            "orders_proposed",
            "orders_approved",
            "orders_denied",
            "orders_pending_mandate",
            "fills",
            "success_rate",
            "pnl_usd",
            "max_exposure_usd",
            "cap_usd",
            "arbitrage_seen",
            "arbitrage_taken",
            "ai_calls",
            "ai_cost_usd",
            "audit_ok",
        ):
            value = summary[key]
            shown = f"{value:.2%}" if key == "success_rate" else str(value)
            table.add_row(key, shown)
        for code, count in summary["denied_by_code"].items():
            table.add_row(f"  denied {code}", str(count))
        for role, c in summary["strategies"].items():
            table.add_row(f"  {role}", f"{c['proposed']} proposed, {c['approved']} approved, {c['fills']} fills")
        table.add_row("all_strategies_tested", str(summary["all_strategies_tested"]))
        console.print(table)
        console.print(f"report: {', '.join(str(f) for f in files)}")
        console.print(f"evidence: {evidence_note}")
        if summary["gate_passed"]:
            console.print("[bold green]Phase-3 gate passed[/]")
        else:
            err_console.print(f"[bold red]Phase-3 gate not passed[/]: {'; '.join(summary['gate_reasons'])}")
    _ = Ledger  # imported for its side effect of failing early on a broken store module
    raise typer.Exit(0 if summary["gate_passed"] else 1)


def _record_evidence(cfg: object, summary: dict[str, object]) -> str:
    """Write the run's result to the operator's ledger as phase3_paper evidence."""
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
            "audit_head",
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
    try:
        ledger = Ledger.open(cfg)
    except StoreUnavailable as exc:
        return f"not recorded: {exc}"
    try:
        seq = ledger.record_evidence("phase3_paper", payload, bool(summary["gate_passed"]), "paper-run")
    finally:
        ledger.close()
    return f"phase3_paper recorded in {cfg.db_url} (audit record {seq})"


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
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists()
    end = time.time() + minutes * 60
    rows = 0
    with out.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["timestamp", "connector", "trading_pair", "best_bid", "best_ask", "bid_size"])
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
