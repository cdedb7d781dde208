"""Helpers for load tests and benchmarks that drive a real `Governor` without a strategy.

`UNTHROTTLED`: the highest order rates the settings accept (a tight loop proposes thousands
of orders a second; the caps, not the throttles, are what such tests push against).
`watch`: what a strategy's tick gives the governor, a market watched for a while, so the
flash-move reference has its history and non-reducing orders are judged instead of waiting."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from lyra_governor.models import MarketSnapshot

UNTHROTTLED: dict[str, Any] = {
    "risk": {"order_rate_max": 1000, "order_rate_window_s": 0.1, "max_open_orders": 1000},
    "breakers": {"exchange_order_rate_max": 10_000, "exchange_order_rate_window_s": 0.1},
}


def watch(gov: Any, connector: str, pair: str, mid: Decimal, now: float | None = None, seconds: float = 10) -> None:
    now = time.time() if now is None else now
    for t in (now - seconds, now):
        gov.observe_market(MarketSnapshot(connector=connector, trading_pair=pair, timestamp=t, mid_price=mid))
