"""OKX pages its lists (orders pending, order history, fills) at 100 records, newest first, the
next page asked with ``after`` (ccxt's okx.py sends the same `after`/`before`/`limit`). The
simulator used to answer one page and reconciliation used to give up on a full one: a bot with
more than 100 orders or fills since its oldest reservation could never start. Now the simulator
pages as OKX does and `reconcile.OkxSource` reads every page, through Hummingbot's real OKX
connector and its signed REST client."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

from lyra_strategies.reconcile import OkxSource
from tests.live_sim.harness import PAIR, Rig
from tests.live_sim.okx_sim import OkxSim, page

SYMBOL = "BTC-USDT"


def test_the_simulator_cuts_pages_as_okx_does() -> None:
    ids = list(range(1, 251))
    first = page(ids, {}, int)
    assert first == list(range(250, 150, -1))  # newest first, 100 at most
    second = page(ids, {"after": str(first[-1])}, int)
    assert second == list(range(150, 50, -1))
    assert page(ids, {"after": str(second[-1])}, int) == list(range(50, 0, -1))  # short: the last page
    assert page(ids, {"limit": "500"}, int) == first  # 100 is the maximum
    assert page(ids, {"limit": "5", "before": "10"}, int) == [15, 14, 13, 12, 11]  # newer, nearest the id
    assert page(ids, {"after": "1"}, int) == []


def test_reconciliation_reads_every_page_of_orders_and_fills(okx_rig: Rig, okx_sim: OkxSim) -> None:
    okx_sim.set_balance("USDT", 10_000)
    since = time.time() - 60
    okx_rig.start()
    cids = [f"by-hand-{i}" for i in range(330)]
    for cid in cids:
        okx_sim.place(SYMBOL, "BUY", "0.0002", "50000", cid)
    for cid in cids[:120]:
        okx_sim.fill(cid)  # 120 fills, 120 orders in the history as filled
    for cid in cids[120:225]:
        okx_sim.cancel_by_exchange(cid)  # 105 more in the history as cancelled; 105 still rest
    orders = okx_rig.run(OkxSource().orders(okx_rig.connector, PAIR, since))
    assert sorted(o.client_order_id for o in orders) == sorted(cids)
    assert Counter(o.status for o in orders) == {"FILLED": 120, "CANCELLED": 105, "OPEN": 105}
    filled = [o for o in orders if o.status == "FILLED"]
    assert all(o.executed == Decimal("0.0002") and len(o.trades) == 1 for o in filled)
    reads = Counter(p for _, _, p in okx_sim.requests if p.endswith(("orders-pending", "orders-history", "fills")))
    assert reads == {"/api/v5/trade/orders-pending": 2, "/api/v5/trade/orders-history": 3, "/api/v5/trade/fills": 2}
