"""Operator commands: `status`, `phase`, `halt`, `resume`, `promote`, `demote`.

Every command reads or writes the shared store, so it works from any terminal while bots run
elsewhere, and every change goes through the ledger, which audits it in the same transaction.
`halt` writes the store first (governed bots deny new exposure on their next tick even if
messaging is down), then broadcasts over Hummingbot's MQTT remote interface.
"""

from __future__ import annotations

import datetime as dt
import getpass
import importlib
import socket
import time
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from lyra_governor.cli.common import console, echo_name, err_console, print_json, settings

if TYPE_CHECKING:
    from lyra_governor.config import Settings

STATE_STYLE = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
    app.command("phase")(phase_cmd)
    app.command("halt")(halt_cmd)
    app.command("resume")(resume_cmd)
    app.command("promote")(promote_cmd)
    app.command("demote")(demote_cmd)


def operator_actor(actor: str | None) -> str:
    """Who did it, for the audit trail: --actor, else operator:<user>@<host>."""
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"operator:{user}@{socket.gethostname()}"


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, now - ts)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86_400:.1f} d ago"


def _money(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) else str(value)


# --- status ---------------------------------------------------------------------------------


def render_status(s: dict[str, Any]) -> Group:
    """The rich view of `collect_status`: what an operator scans in a few seconds."""
    now = float(s["generated_at"])
    state = s["trading_state"]
    rung = f" · rung {s['rung']}" if s.get("rung") else ""
    reason = f" — {escape(s['reason'])}" if s.get("reason") else ""
    head = (
        f"[bold]Phase {s['phase']}[/] ({s['phase_name']}){rung} · "
        f"[{STATE_STYLE.get(state, 'white')}]{state}[/]{reason}\n"
        f"{s['book'] or '-'} book: deployed {_money(s['deployed_usd'])} · reserved {_money(s['reserved_usd'])} · "
        f"cap {_money(s['cap_usd'])} USD · remaining {_money(s['remaining_usd'])} USD"
    )
    parts: list[Any] = [Panel(head, title=f"Lyra · {s['generated_at_utc']}", expand=False)]

    ex = Table(title="capital per exchange (USD)", title_justify="left")
    for column in ("exchange", "rung", "cap", "deployed", "reserved", "remaining", "used"):
        ex.add_column(column, justify="left" if column == "exchange" else "right")
    for name, e in s["exchanges"].items():
        ex.add_row(
            name,
            str(e.get("rung") or "-"),
            _money(e["cap_usd"]),
            _money(e["deployed_usd"]),
            _money(e["reserved_usd"]),
            _money(e["remaining_usd"]),
            f"{e['utilization']:.0%}",
        )
    ex.add_row(
        "[bold]total[/]",
        "",
        _money(s["cap_usd"]),
        _money(s["deployed_usd"]),
        _money(s["reserved_usd"]),
        _money(s["remaining_usd"]),
        "",
    )
    parts.append(ex)

    c = s.get("council")
    if isinstance(c, dict):
        spend = c.get("spend_today_usd")
        spend_text = f"{spend:.4f}" if isinstance(spend, int | float) else str(spend)
        parts.append(
            f"[bold]council[/] {c['backend']}: voters up {c['voters_up']}/{c['voters']} · keys left {c['keys_left']} · "
            f"spend today {spend_text} / {c['daily_budget_usd']:g} USD · last health check "
            f"{_ago(c.get('last_health_check'), now)}"
        )
        if c.get("degraded_today"):
            parts.append(f"  [red]{c['degraded_today']} degraded consultation(s) today[/] (quorum not met)")
        news = c.get("sentiment")
        if isinstance(news, dict) and isinstance(news.get("assets"), dict):
            shown = ", ".join(
                f"{asset} {v['label']} ({v['mean_score']:+.2f}, {v['headlines']} headlines)"
                if isinstance(v.get("mean_score"), int | float) else f"{asset} ({v['headlines']} headlines)"
                for asset, v in news["assets"].items()
            )  # fmt: skip
            parts.append(f"  news sentiment over {news['window_s'] / 3600:g} h: {shown or 'no headlines'}")
    m = s.get("mandates")
    if isinstance(m, dict):
        listed = ", ".join(f"{x['connector']} {x['pair']} ({x['orders']} orders)" for x in m["mandates"][:4])
        parts.append(f"[bold]open mandates[/] {m['count']}" + (f": {listed}" if listed else ""))

    cp = s.get("checkpoints")
    if isinstance(cp, dict):
        table = Table(title="checkpoints", title_justify="left")
        for column in ("checkpoint", "last run", "result", "summary"):
            table.add_column(column)
        for name, info in cp.items():
            result = "-" if info["ok"] is None else ("[green]ok[/]" if info["ok"] else "[red]FAILED[/]")
            when = _ago(info["last_run"], now) + (" [yellow](overdue)[/]" if info["overdue"] else "")
            table.add_row(name, when, result, escape(str(info["summary"]))[:70])
        parts.append(table)

    a = s.get("audit")
    if isinstance(a, dict):
        verdict = (
            "[green]intact[/]" if a["ok"] else ("[dim]not verified[/]" if a["ok"] is None else "[bold red]BROKEN[/]")
        )
        broken = f" at record {a['first_broken']}: {escape(a['problem'])}" if a.get("first_broken") else ""
        parts.append(
            f"[bold]audit chain[/] {verdict}{broken} · {a['records']} records · head #{a['head_seq']} "
            f"{str(a['head_hash'])[:16]}…"
        )

    bots = s.get("bots")
    if isinstance(bots, list):
        table = Table(title=f"bots ({sum(1 for b in bots if b['alive'])}/{len(bots)} alive)", title_justify="left")
        for column in ("bot", "host", "pid", "last heartbeat"):
            table.add_column(column)
        for b in bots:
            when = _ago(b["last_heartbeat"], now)
            table.add_row(b["bot_id"], b["host"], str(b["pid"]), when if b["alive"] else f"[red]{when} (silent)[/]")
        parts.append(table)

    strays = s.get("stray_orders")
    if isinstance(strays, list) and strays:
        table = Table(title="[bold red]stray orders[/] (resting, no reservation held them; counted against the caps)",
                      title_justify="left")  # fmt: skip
        for column in ("bot", "market", "order", "side", "amount @ price", "counted", "found"):
            table.add_column(column)
        for x in strays:
            market, order = f"{x['connector']} {x['trading_pair']}", escape(str(x["client_order_id"]))
            table.add_row(escape(x["bot_id"]), market, order, x["side"], f"{x['amount']} @ {x['price']}",
                          f"{x['reserved_usd']:,.2f} USD", _ago(x["found_at"], now))  # fmt: skip
        parts.append(table)

    p = s.get("promotion")
    if isinstance(p, dict) and p.get("next_phase"):
        if p["blockers"]:
            needs = "; ".join(escape(b) for b in p["blockers"])
            parts.append(f"[bold]to promote[/] (phase {p['next_phase']}): {needs}")
        else:
            parts.append(
                f"[bold]to promote[/] (phase {p['next_phase']}): evidence ready; `promote` asks the council"
            )
    for name, problem in (s.get("errors") or {}).items():
        parts.append(f"[yellow]{name} unknown[/]: {escape(problem)}")
    return Group(*parts)


def status_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (one per refresh with --watch)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, max=3600, help="Seconds between refreshes."),
    iterations: int = typer.Option(0, "--iterations", min=0, hidden=True, help="Stop after N refreshes (0 = never)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Walk the whole audit chain (slow on huge trails)."),
) -> None:
    """Phase, rung, halt state, capital per exchange, council, checkpoints, audit chain and bots."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.status import collect_status

    cfg = settings(ctx)
    ledger = Ledger.open(cfg, read_only=True)  # a reader: writes nothing, no write lock
    shown = 0
    try:
        while True:
            s = collect_status(cfg, ledger=ledger, verify_audit=verify)
            if as_json:
                print_json(s)
            else:
                if watch and console.is_terminal:
                    console.clear()
                console.print(render_status(s))
            shown += 1
            if not watch or (iterations and shown >= iterations):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        ledger.close()


# --- phase ----------------------------------------------------------------------------------


def phase_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The current phase, its caps and threshold, and what the next promotion still needs."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.status import ladder_summary, promotion_summary

    cfg = settings(ctx)
    ledger = Ledger.open(cfg, read_only=True)  # a reader: writes nothing, no write lock
    try:
        ladder = ladder_summary(cfg, ledger)
        promotion = promotion_summary(cfg, ledger)
    finally:
        ledger.close()
    keys = ("phase", "phase_name", "phase_since", "rung", "rungs", "trading_state", "halted", "reason", "book")
    out = {k: ladder[k] for k in keys} | {
        "threshold": ladder["threshold"],
        "cap_usd": ladder["cap_usd"],
        "exchange_caps_usd": {n: e["cap_usd"] for n, e in ladder["exchanges"].items()},
        "promotion": promotion,
    }
    if as_json:
        print_json(out)
        return
    since = dt.datetime.fromtimestamp(out["phase_since"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(
        f"[bold]Phase {out['phase']}[/] ({out['phase_name']}) since {since}; council threshold "
        f"> {out['threshold']:.0%}; total cap {_money(out['cap_usd'])} USD"
        + (f" ({out['book']} book)" if out["cap_usd"] else "")
    )
    for name, r in out["rungs"].items():
        console.print(f"  {name}: rung {r['rung']}/{r['of']} ({_money(r['cap_usd'])} USD)")
    if promotion["next_phase"] is None:
        console.print("top of the ladder")
    elif promotion["blockers"]:
        console.print(f"to promote to phase {promotion['next_phase']} still needed:")
        for b in promotion["blockers"]:
            console.print(f"  - {escape(b)}", highlight=False)
    else:
        console.print(f"evidence ready for phase {promotion['next_phase']}: run `lyra-governor promote`")


# --- halt / resume --------------------------------------------------------------------------


def _mqtt_drill_check(cfg: Settings) -> str:
    from lyra_governor.mqtt import discover_instances

    try:
        seen = discover_instances(cfg, wait_s=0.5)
    except OSError as exc:
        return f"MQTT broker {cfg.mqtt.host}:{cfg.mqtt.port} unreachable ({type(exc).__name__})"
    return f"MQTT broker reachable; {len(seen)} bot(s) heard"


def halt_cmd(
    ctx: typer.Context,
    reason: str = typer.Option("operator emergency stop", "--reason", "-r", help="Why (goes to the audit trail)."),
    demote: bool = typer.Option(True, "--demote/--no-demote", help="In phase 4-5 drop one rung (the default)."),
    broadcast: bool = typer.Option(
        True, "--broadcast/--no-broadcast", help="Send the stop over MQTT when mqtt.enabled (the default)."
    ),
    drill: bool = typer.Option(
        False, "--drill", help="Emergency-stop drill: halt, check every bot would see it, resume; recorded as evidence."
    ),
    actor: str | None = typer.Option(None, "--actor", help="Who is halting (default operator:<user>@<host>)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Emergency stop: written to the store first, then broadcast to every bot over MQTT."""
    from lyra_governor.errors import StoreUnavailable
    from lyra_governor.ledger import Ledger
    from lyra_governor.store_health import classify, is_store_error, safe_url

    cfg = settings(ctx)
    who = operator_actor(actor)

    def store_failed(exc: StoreUnavailable) -> StoreUnavailable:
        # The store is the authority, and bots already refuse every order while it is down;
        # the broadcast still makes them cancel what is open. Then the error, as usual.
        if broadcast and cfg.mqtt.enabled and not drill:
            from lyra_governor.mqtt import broadcast_stop

            sent = broadcast_stop(cfg, reason, who)
            note = (
                f"the stop was broadcast over MQTT to {len(sent.stop_topics)} instance(s)"
                if sent.ok
                else f"the MQTT broadcast failed too: {sent.error}"
            )
            return type(exc)(f"{exc} — {note}")
        return exc

    try:
        ledger = Ledger.open(cfg)
    except StoreUnavailable as exc:
        raise store_failed(exc) from None
    try:
        if drill:
            passed = ledger.drill(who)
            mqtt_note = _mqtt_drill_check(cfg) if cfg.mqtt.enabled else "MQTT off (mqtt.enabled is false)"
            if as_json:
                print_json({"drill": True, "passed": passed, "mqtt": mqtt_note})
            else:
                console.print(
                    ("[green]emergency-stop drill passed[/]" if passed else "[bold red]emergency-stop drill FAILED[/]")
                    + f"; trading state restored; {mqtt_note}"
                )
            raise typer.Exit(0 if passed else 1)
        try:
            state = ledger.halt(reason, who, demote=demote)
            confirmed = _read_back_trading_state(cfg)
        except Exception as exc:
            error = classify(cfg.db_url, exc) if is_store_error(exc) else exc
            if isinstance(error, StoreUnavailable):
                raise store_failed(error) from None
            raise
        if confirmed != "HALTED":
            raise store_failed(
                StoreUnavailable(
                    f"the halt was not recorded: the store at {safe_url(cfg.db_url)} reads {confirmed} after the "
                    "halt was written; run `lyra-governor halt` again and check the store with `lyra-governor audit "
                    "verify`"
                )
            )
        result: dict[str, Any] | None = None
        if broadcast and cfg.mqtt.enabled:
            from lyra_governor.mqtt import broadcast_stop

            sent = broadcast_stop(cfg, reason, who)
            result = sent.to_dict()
            ledger.audit_append("halt_broadcast", result, who)
    finally:
        ledger.close()
    if as_json:
        print_json(
            {"halted": state.halted, "phase": state.phase, "rungs": state.rungs, "reason": reason, "mqtt": result}
        )
        return
    console.print(f"[bold red]HALTED[/] ({escape(reason)}): no governed bot takes new exposure from its next tick")
    if result is None:
        why = "--no-broadcast" if not broadcast else "mqtt.enabled is false"
        console.print(f"MQTT broadcast skipped ({why}); governed bots still stop through the store")
    elif result["ok"]:
        ids = ", ".join(result["instance_ids"]) or "none known"
        console.print(
            f"stop broadcast on {result['broker']}: Lyra halt topic + Hummingbot stop to {len(result['stop_topics'])} "
            f"instance(s) ({ids}); {len(result['replies'])} replied"
        )
    else:
        err_console.print(f"[yellow]warning:[/] {escape(str(result['error']))}", soft_wrap=True)
    console.print("resume with `lyra-governor resume` once the cause is resolved")


def _read_back_trading_state(cfg: Settings) -> str:
    """The trading state as a new connection reads it: what every bot will see on its next tick
    (a halt is reported only once it is read back committed)."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.store import create_store_engine

    engine = create_store_engine(cfg.db_url)
    try:
        return Ledger(cfg, engine).state().trading_state.value
    finally:
        engine.dispose()


def resume_cmd(
    ctx: typer.Context,
    reason: str = typer.Option("operator resumed", "--reason", "-r", help="Why (goes to the audit trail)."),
    actor: str | None = typer.Option(None, "--actor", help="Who is resuming (default operator:<user>@<host>)."),
    bot: str | None = typer.Option(
        None, "--bot", help="Only let this bot open positions again (after it reported an impossible order event)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Lift a halt or gradual stop. Bots stopped over MQTT are restarted by their operator."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.models import TradingState

    cfg = settings(ctx)
    who = operator_actor(actor)
    ledger = Ledger.open(cfg)
    if bot is not None:  # one bot's own restriction, not the store's trading state
        import time

        from lyra_governor.order_store import OrderStore

        store = OrderStore(ledger.engine)
        try:
            lifted = store.lift_restriction(bot, who, time.time())
        finally:
            store.close()
            ledger.close()
        if as_json:
            print_json({"bot_id": bot, "resumed": lifted is not None, "was": lifted})
        elif lifted is None:
            console.print(f"{escape(bot)} is not restricted; nothing changed")
        else:
            console.print(f"[green]{escape(bot)}[/] may open positions again (was: {escape(lifted)})")
        return
    try:
        before = ledger.state()
        if before.trading_state is TradingState.ACTIVE:
            if as_json:
                print_json({"resumed": False, "trading_state": before.trading_state.value, "mqtt": None})
            else:
                console.print("trading is already ACTIVE; nothing changed")
            return
        state = ledger.resume(who, reason)
        result: dict[str, Any] | None = None
        if cfg.mqtt.enabled:
            from lyra_governor.mqtt import broadcast_resume

            result = broadcast_resume(cfg, reason, who).to_dict()
    finally:
        ledger.close()
    if as_json:
        print_json({"resumed": True, "trading_state": state.trading_state.value, "mqtt": result})
        return
    console.print(f"[green]ACTIVE[/] again (was {before.trading_state.value}: {escape(before.reason)})")
    if result is not None and not result["ok"]:
        err_console.print(f"[yellow]warning:[/] {escape(str(result['error']))}", soft_wrap=True)


# --- promote / demote -----------------------------------------------------------------------


def _vault_or_none(cfg: Settings) -> Any:
    """The vault for OpenRouter keys; local voters need none, so a locked vault does not matter."""
    if cfg.consensus.backend == "local":
        return None
    try:
        module = importlib.import_module("lyra_governor.vault")
    except ImportError:
        return None
    return module.open_vault(cfg)


def promote_cmd(
    ctx: typer.Context,
    actor: str | None = typer.Option(None, "--actor", help="Who is promoting (default operator:<user>@<host>)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One step up the ladder, if the evidence and the council agree; otherwise say what is missing."""
    from lyra_governor import phases
    from lyra_governor.ledger import Ledger
    from lyra_governor.models import ConsensusResult, CouncilContext
    from lyra_governor.status import NO_VERDICT

    cfg = settings(ctx)
    who = operator_actor(actor)
    ledger = Ledger.open(cfg)
    consensus: ConsensusResult | None = None
    try:
        facts = ledger.promotion_facts()
        step = phases.next_step(facts, len(cfg.ladder.rungs_usd))
        missing = [b for b in phases.promotion_blockers(facts, cfg.ladder, None) if b != NO_VERDICT]
        if step is not None and not missing:
            from lyra_governor.consensus import Council

            evidence = {
                "from_phase": facts.phase,
                "to_phase": step.to_phase,
                "rung_up": list(step.rung_up),
                "checks": [{"name": k, "passed": v} for k, v in sorted(facts.evidence_passed.items())],
                "paper_success_rate": facts.paper_success_rate,
                "critical_alerts_since_rung": facts.critical_alerts_since_rung,
                "drill_passed_since_rung": facts.drill_passed_since_rung,
            }
            council = Council.from_settings(cfg, _vault_or_none(cfg))
            consensus = council.decide(
                CouncilContext(
                    phase=step.to_phase,
                    question="commission",
                    evidence=evidence,
                    now=time.time(),
                    note=f"operator promotion to phase {step.to_phase}",
                )
            )
            ledger.audit_append(
                "council_verdict",
                {
                    "question": "promotion",
                    "verdict": consensus.verdict.value,
                    "agreement": consensus.agreement,
                    "response_rate": consensus.response_rate,
                    "consensus_id": consensus.consensus_id,
                    "cost_usd": consensus.cost_usd,
                    "latency_s": consensus.latency_s,
                },
                who,
            )
        outcome = ledger.promote(who, consensus)
    finally:
        ledger.close()
    blockers = list(outcome.blockers)
    if consensus is None and NO_VERDICT in blockers:
        blockers[blockers.index(NO_VERDICT)] = "the council was not asked: the evidence above is missing"
    state = outcome.state
    if as_json:
        print_json(
            {
                "promoted": outcome.promoted,
                "blockers": blockers,
                "phase": state.phase if state else None,
                "rungs": state.rungs if state else {},
                "audit_seq": outcome.audit_seq,
                "consensus": None
                if consensus is None
                else {"verdict": consensus.verdict.value, "agreement": consensus.agreement},
            }
        )
    elif outcome.promoted and state is not None:
        rungs = ", ".join(f"{n} rung {r + 1}" for n, r in sorted(state.rungs.items())) if state.phase == 4 else ""
        console.print(f"[green]promoted[/]: now phase {state.phase} ({phases.PHASE_NAMES[state.phase]}) {rungs}")
    else:
        err_console.print("[bold red]promotion refused[/]; missing:")
        for b in blockers:
            err_console.print(f"  - {escape(b)}", highlight=False)
    raise typer.Exit(0 if outcome.promoted else 1)


def demote_cmd(
    ctx: typer.Context,
    exchange: str | None = typer.Option(None, "--exchange", "-e", help="Phase 4: only this exchange drops a rung."),
    whole_phase: bool = typer.Option(False, "--phase", help="Step back one whole phase (5->4->3->2->1)."),
    reason: str = typer.Option("operator demotion", "--reason", "-r", help="Why (goes to the audit trail)."),
    actor: str | None = typer.Option(None, "--actor", help="Who is demoting (default operator:<user>@<host>)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Step down: in phase 4 one rung (all exchanges or --exchange), phase 5 -> 4, else one phase."""
    from lyra_governor.errors import LyraError
    from lyra_governor.ledger import Ledger

    cfg = settings(ctx)
    who = operator_actor(actor)
    if exchange is not None and exchange not in cfg.exchanges:
        raise LyraError(f"unknown exchange {echo_name(exchange)}; configured: {', '.join(cfg.exchanges)}")
    ledger = Ledger.open(cfg)
    try:
        before = ledger.state()
        if exchange is not None and before.phase != 4:
            raise LyraError(f"--exchange applies to phase 4 rungs; the ladder is in phase {before.phase}")
        if before.phase == 1:
            raise LyraError("the ladder is already at phase 1; there is nothing to demote")
        if whole_phase or before.phase < 4:
            state = ledger.operator_demote_phase(reason, who)
        else:
            state = ledger.demote(exchange, reason, who)
    finally:
        ledger.close()
    if as_json:
        print_json(
            {"from_phase": before.phase, "phase": state.phase, "rungs": state.rungs, "before_rungs": before.rungs}
        )
        return
    changed = [f"{n} rung {before.rungs.get(n, 0) + 1} -> {r + 1}" for n, r in sorted(state.rungs.items())
               if state.phase == 4 and before.rungs.get(n) != r]  # fmt: skip
    console.print(f"demoted: phase {before.phase} -> {state.phase}" + (f" ({'; '.join(changed)})" if changed else ""))
