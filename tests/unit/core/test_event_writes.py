"""What an order event writes on SQLite: no UPDATE ... RETURNING of the capital rows (on SQLite
the clause costs the UPDATE more than a read of the rows: bench/event_instructions.py), and a
release's audit record written directly (`released_json`), the text the general encoder writes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from lyra_governor.chain import canonical_json
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal
from lyra_governor.order_store import released_json

from .conftest import allowed

Propose = Callable[..., OrderProposal]


def _traced(governor: Governor, event: OrderEvent) -> list[str]:
    seen: list[str] = []
    driver = governor.store._raw.driver_connection
    driver.set_trace_callback(seen.append)
    try:
        governor.on_order_event(event)
    finally:
        driver.set_trace_callback(None)
    return seen


def test_a_release_reads_no_capital_rows_back(governor: Governor, propose: Propose) -> None:
    """A release gives its capital back with two UPDATEs that answer nothing (`_give_back`): it
    uses no row after them (the old code's UPDATE ... RETURNING fetched both)."""
    resting = allowed(governor, propose())
    seen = _traced(governor, OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=resting.reservation_id or ""))
    capital_writes = [s for s in seen if s.startswith("UPDATE lyra_capital")]
    assert len(capital_writes) == 2 and not any("RETURNING" in s for s in capital_writes)
    assert not any(s.startswith("SELECT lyra_capital") for s in seen)
    exposure = governor.ledger.exposure("paper")
    assert exposure.exchanges["binance"].reserved_usd == 0 and exposure.total.reserved_usd == 0
    assert governor.ledger.totals_agree()[0]

def test_a_fill_reads_the_capital_rows_after_its_updates(governor: Governor, propose: Propose) -> None:
    """A fill's capital moves: two UPDATEs without RETURNING, then each row read by its key (what
    the breach check looks at); the old code's UPDATE ... RETURNING answered them."""
    bought = allowed(governor, propose(amount=Decimal("0.002")))
    fill = OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                      filled_amount=Decimal("0.001"), fill_price=Decimal(60000))  # fmt: skip
    seen = _traced(governor, fill)
    capital_writes = [s for s in seen if s.startswith("UPDATE lyra_capital")]
    assert len(capital_writes) == 2 and not any("RETURNING" in s for s in capital_writes)
    assert sum(s.startswith("SELECT lyra_capital.cap_musd") for s in seen) == 2
    exposure = governor.ledger.exposure("paper")
    assert exposure.exchanges["binance"].deployed_usd == 60 and exposure.total.deployed_usd == 60
    assert exposure.exchanges["binance"].reserved_usd > 0
    assert governor.ledger.totals_agree()[0]


def test_a_releases_record_is_the_canonical_json_of_its_payload() -> None:
    """`released_json` writes an order event's facts directly: the same text as the general
    encoder for every kind of string (quotes, backslashes, control characters, non-ASCII), a
    missing client order id, and any amount's text; other payloads go through it."""
    texts = ["res-29f5545ecd57aba3000002", 'quo"te', "back\\slash", "tab\tnew\nline\x01", "é€😀", "", "\u2028"]
    amounts = [Decimal(0), Decimal("0.000001"), Decimal("12345.678901"), Decimal("1E+3"), Decimal("-0")]
    payloads: list[dict[str, Any]] = []
    for text in texts:
        for coid in (None, text, "hb-order-1"):
            payloads.append({"kind": "CANCELLED", "reservation_id": text, "client_order_id": coid})
            payloads.append({"kind": text, "reservation_id": "res-1", "client_order_id": coid})
    payloads += [
        {"kind": "in_doubt", "reservation_id": "res-1", "reason": "its review was denied"},  # not the facts' shape
        {"kind": "CANCELLED", "reservation_id": "res-1"},
        {"kind": "CANCELLED", "reservation_id": "res-1", "client_order_id": 7},
        {"kind": OrderEventKind.CANCELLED, "reservation_id": "res-1", "client_order_id": None},
    ]
    for payload in payloads:
        for amount in amounts:
            assert released_json(payload, amount) == canonical_json({**payload, "released_usd": str(amount)})
