"""What an order event writes to the capital rows on SQLite: no UPDATE ... RETURNING (on
SQLite the clause costs the UPDATE more than a read of the rows: bench/event_instructions.py)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal

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
