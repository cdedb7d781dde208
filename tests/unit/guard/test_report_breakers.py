"""The paper report shows the circuit breakers: the audit's ``breaker`` records counted per
code (summary.json `breaker_trips`, one line in summary.md and so in report.html)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal
from lyra_strategies.paper import report

from .conftest import Clock, decide, watch

Propose = Callable[..., OrderProposal]


def test_breaker_trips_are_counted_per_code_for_the_report(governor: Governor, propose: Propose, clock: Clock) -> None:
    db_path = Path(governor.settings.db_url.removeprefix("sqlite:///"))
    assert report.breaker_trips(db_path) == {}
    assert report.breaker_sentence({}) == "Circuit breakers tripped: none."
    for i in range(5):  # five rejections in a row: the storm breaker trips once
        clock.advance(1)
        watch(governor, "binance_paper_trade", "BTC-USDT", 60010, clock.now, 0)
        d = decide(governor, propose(price=Decimal(60000 - i), mid_price_ts=clock.now))
        governor.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=d.reservation_id))
    trips = report.breaker_trips(db_path)
    assert trips == {"BREAKER_REJECT_STORM": {"count": 1, "actions": ["BOT_REDUCE_ONLY"], "scopes": ["binance"]}}
    line = report.breaker_sentence(trips)
    assert line == "Circuit breakers tripped: 1 (BREAKER_REJECT_STORM 1x (BOT_REDUCE_ONLY; binance))."
