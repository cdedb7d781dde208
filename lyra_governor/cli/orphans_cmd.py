"""`lyra-governor orphans list|release`: the capital of silent bots' orders.

A bot that stops heartbeating may still have orders live on the exchange, so its open
reservations become ORPHANED and stay counted against every cap. They end when the bot comes
back (its governor takes them back and reconciles with the exchange) or when an operator, after
checking on the exchange that the orders are gone, releases them here (audited).
"""

from __future__ import annotations

import time

import typer
from rich.markup import escape
from rich.table import Table

from lyra_governor.cli.common import console, err_console, print_json, settings
from lyra_governor.cli.ops import operator_actor
from lyra_governor.money import from_musd

orphans_app = typer.Typer(
    help="Reservations of silent bots (ORPHANED: still counted against the caps).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(orphans_app, name="orphans")


@orphans_app.command("list")
def list_cmd(
    ctx: typer.Context,
    bot: str | None = typer.Option(None, "--bot", help="Only this bot's."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every ORPHANED reservation: bot, market, side, amount, price and the capital it holds."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.order_store import OrderStore

    ledger = Ledger.open(settings(ctx))
    store = OrderStore(ledger.engine)
    try:
        rows = store.orphans(bot)
    finally:
        store.close()
        ledger.close()
    held = sum((from_musd(int(r["reserved_musd"])) for r in rows), from_musd(0))
    if as_json:
        print_json(
            {
                "orphaned_usd": float(held),
                "reservations": [{**r, "reserved_usd": float(from_musd(int(r["reserved_musd"])))} for r in rows],
            }
        )
        return
    if not rows:
        console.print("no orphaned reservations")
        return
    table = Table(title=f"orphaned reservations: {held:.2f} USD still counted against the caps")
    for column in ("bot", "reservation", "market", "side", "amount", "price", "USD", "client order id"):
        table.add_column(column)
    for r in rows:
        market = escape(f"{r['connector']} {r['trading_pair']}")
        usd = f"{from_musd(int(r['reserved_musd'])):.2f}"
        cid = escape(str(r["client_order_id"] or ""))
        table.add_row(
            escape(str(r["bot_id"])), r["reservation_id"], market, r["side"], r["amount"], r["price"], usd, cid
        )
    console.print(table)


@orphans_app.command("release")
def release_cmd(
    ctx: typer.Context,
    bot: str = typer.Option(..., "--bot", help="The silent bot whose orphaned reservations end."),
    checked: bool = typer.Option(
        False, "--exchange-checked", help="Confirm you checked on the exchange that these orders are no longer live."
    ),
    reason: str = typer.Option("operator checked the exchange", "--reason", "-r", help="Goes to the audit trail."),
    actor: str | None = typer.Option(None, "--actor", help="Who (default operator:<user>@<host>)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Free a silent bot's orphaned capital, after checking the exchange holds none of its orders."""
    from lyra_governor.ledger import Ledger
    from lyra_governor.order_store import OrderStore

    if not checked:
        err_console.print(
            "[red]refused:[/] the orders may still be live; check on the exchange that the bot's orders are "
            "gone (cancel them there if not), then run again with --exchange-checked"
        )
        raise typer.Exit(2)
    ledger = Ledger.open(settings(ctx))
    store = OrderStore(ledger.engine)
    try:
        released = store.release_orphans(bot, operator_actor(actor), time.time(), reason)
    finally:
        store.close()
        ledger.close()
    if as_json:
        print_json({"bot_id": bot, "released": released})
    elif released:
        console.print(f"released {len(released)} orphaned reservation(s) of {escape(bot)}")
    else:
        console.print(f"{escape(bot)} has no orphaned reservations; nothing changed")
