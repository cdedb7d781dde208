"""`lyra-governor audit verify|tail`: check the hash chain and read the latest records."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from lyra_governor.cli.common import console, err_console, print_json, settings

audit_app = typer.Typer(
    help="The tamper-evident audit trail: verify the chain, read the latest records.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Walk the whole chain; exit 1 naming the first broken record if any record was altered."""
    from lyra_governor import audit
    from lyra_governor.checkpoints import verify_reports
    from lyra_governor.ledger import Ledger
    from lyra_governor.store import read_tx

    ledger = Ledger.open(settings(ctx), read_only=True)  # a reader: writes nothing, no write lock
    try:
        prefix = audit.verify_prefix(ledger.engine)  # the long walk, in short snapshots (a WAL is never pinned long)
        with read_tx(ledger.engine) as snapshot:  # the head, the chain's end and the ledger as of one moment
            result = audit.verify(ledger.engine, conn=snapshot, start=prefix)
            totals_ok, totals_detail = ledger.totals_agree(snapshot)
        reports = verify_reports(settings(ctx), ledger.engine)  # signed forensic reports (issue 8)
    finally:
        ledger.close()
    bad_reports = [r for r in reports if not r.ok]
    ok = result.ok and totals_ok and not bad_reports
    if as_json:
        print_json(
            {
                "ok": ok,
                "chain_ok": result.ok,
                "records": result.count,
                "first_broken": result.first_broken,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "problem": result.problem,
                "ledger_totals_ok": totals_ok,
                "ledger_totals": totals_detail,
                "reports_checked": len(reports),
                "reports_ok": not bad_reports,
                "report_problems": [{"path": r.path, "problem": r.problem} for r in bad_reports],
            }
        )
    elif result.ok:
        console.print(f"[green]audit chain intact[/]: {result.count} records, head {result.head_hash[:16]}…")
    else:
        err_console.print(f"[bold red]audit chain broken at record {result.first_broken}[/]: {result.problem}")
    if not as_json and not totals_ok:
        err_console.print(f"[bold red]ledger totals disagree[/]: {totals_detail}")
    if not as_json and reports:
        console.print(f"{len(reports) - len(bad_reports)}/{len(reports)} signed forensic report(s) verify")
    for bad in [] if as_json else bad_reports:
        err_console.print(f"[bold red]forensic report {bad.path}[/]: {bad.problem}")
    raise typer.Exit(0 if ok else 1)


@audit_app.command("tail")
def tail_cmd(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", "--lines", min=1, max=10_000, help="How many records."),
    event: str | None = typer.Option(None, "--event", help="Only this event type (decision, halt, promote, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The latest audit records, oldest first."""
    from lyra_governor import audit
    from lyra_governor.ledger import Ledger

    ledger = Ledger.open(settings(ctx), read_only=True)  # a reader: writes nothing, no write lock
    try:
        records = audit.tail(ledger.engine, n, event)
    finally:
        ledger.close()
    if as_json:
        print_json(
            {
                "records": [
                    {"seq": r.seq, "ts": r.ts, "actor": r.actor, "event": r.event, "payload": r.payload, "hash": r.hash}
                    for r in records
                ]
            }
        )
        return
    table = Table(title=f"last {len(records)} audit records")
    for column in ("seq", "time (UTC)", "actor", "event", "summary"):
        table.add_column(column)
    for r in records:
        when = dt.datetime.fromtimestamp(r.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        code = r.payload.get("code")
        text = r.payload.get("message") or r.payload.get("reason") or ""
        summary = f"{code}: {text}" if code else text
        status = r.payload.get("status")
        table.add_row(str(r.seq), when, r.actor, r.event + (f" {status}" if status else ""), str(summary)[:80])
    console.print(table)
