"""Binance spot answers /allOrders and /myTrades 1,000 records at a time (500 unless asked) and
a time window at most 24 h wide. Reconciliation used to ask once with a startTime: orders and
fills past the first 24 h after the oldest reservation, or past the first 500 orders, were never
read. The simulator now answers as Binance does and `reconcile.BinanceSource` walks the windows
to the first record, then the id cursor to the end, through Hummingbot's real Binance connector."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest

from lyra_strategies.reconcile import BinanceSource
from tests.live_sim.binance_sim import BinanceError, BinanceSim, listed
from tests.live_sim.harness import PAIR, Rig

DAY_MS = 24 * 3600 * 1000


def test_the_simulator_lists_as_binance_does() -> None:
    ids = list(range(1, 1501))
    at = lambda i: i * 1000  # noqa: E731 - record i at i seconds
    assert listed(ids, {}, "fromId", int, at) == ids[-500:]  # the most recent 500 by default
    assert listed(ids, {"limit": "5000"}, "fromId", int, at) == ids[-1000:]  # 1,000 at most
    assert listed(ids, {"fromId": "1400"}, "fromId", int, at) == list(range(1400, 1501))
    assert listed(ids, {"startTime": "10000", "endTime": "12000"}, "fromId", int, at) == [10, 11, 12]
    with pytest.raises(BinanceError, match="24 hours"):
        listed(ids, {"startTime": "0", "endTime": str(DAY_MS + 1)}, "fromId", int, at)
    with pytest.raises(BinanceError, match="Combination"):
        listed(ids, {"fromId": "1", "startTime": "0"}, "fromId", int, at)


def test_reconciliation_reads_every_order_and_fill_past_a_day_and_a_page(rig: Rig, sim: BinanceSim) -> None:
    sim.set_balance("USDT", 20_000)
    rig.start()
    now_ms = int(time.time() * 1000)
    since = time.time() - 3 * 24 * 3600  # the oldest reservation, three days ago
    old = [f"old-{i}" for i in range(5)]  # placed 1.5 days ago: the first day's window is empty
    new = [f"new-{i}" for i in range(1100)]  # placed now: more than a page
    for cid in [*old, *new]:
        sim.place("BTCUSDT", "BUY", "0.0002", "50000", cid)

    def backdate() -> None:
        for order in sim.orders.values():
            if order.client_id in old:
                order.created_ms = now_ms - DAY_MS * 3 // 2

    sim.call(backdate)
    for cid in new[:1005]:
        sim.fill(cid)  # 1,005 fills: more than a page
    orders = rig.run(BinanceSource().orders(rig.connector, PAIR, since))
    assert sorted(o.client_order_id for o in orders) == sorted([*old, *new])
    assert Counter(o.status for o in orders) == {"FILLED": 1005, "OPEN": 100}
    assert all(len(o.trades) == 1 and o.executed == Decimal("0.0002") for o in orders if o.status == "FILLED")
