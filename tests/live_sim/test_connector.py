"""Point 1: Hummingbot's real BinanceExchange starts, gets ready and trades on the simulator."""

from __future__ import annotations

from decimal import Decimal

from tests.live_sim.binance_sim import BinanceSim
from tests.live_sim.harness import PAIR, SYMBOL, Rig


def test_connector_gets_ready_from_the_simulator(rig: Rig, sim: BinanceSim) -> None:
    rig.start()
    c = rig.connector
    rule = c.trading_rules[PAIR]
    assert rule.min_price_increment == Decimal("0.01") and rule.min_notional_size == Decimal(5)
    assert c.get_balance("USDT") == Decimal(1000) and c.get_balance("BTC") == Decimal("0.01")
    book = c.get_order_book(PAIR)
    bid, ask = sim.best(SYMBOL)
    assert Decimal(str(book.get_price(False))) == bid and Decimal(str(book.get_price(True))) == ask
    # the signed calls reached the simulator with a valid signature and the WS API subscription held
    assert any(p == "/api/v3/account" for _, _, p in sim.requests)


def test_place_fill_and_cancel_through_the_real_connector(rig: Rig, sim: BinanceSim) -> None:
    rig.start()
    resting = rig.buy("0.001", "59000")
    rig.wait(lambda: rig.named("BuyOrderCreated"), what="BuyOrderCreated")
    assert [o.client_id for o in sim.open_orders()] == [resting]
    rig.wait(lambda: rig.connector.get_available_balance("USDT") == Decimal(1000) - Decimal(59), what="USDT locked")
    # a sell that crosses the book: taker fill at the bid, order complete
    taker = rig.sell("0.002", "59000")
    rig.wait(lambda: rig.named("SellOrderCompleted"), what="SellOrderCompleted")
    fills = [e for e in rig.named("OrderFilled") if e.order_id == taker]
    assert sum(e.amount for e in fills) == Decimal("0.002")
    assert sim.order(taker).status == "FILLED"
    # the market moves down through the resting bid: maker fill
    sim.move(SYMBOL, "58900")
    rig.wait(lambda: rig.named("BuyOrderCompleted"), what="BuyOrderCompleted")
    assert sim.order(resting).status == "FILLED"
    # a new resting order, cancelled
    other = rig.buy("0.001", "58000")
    rig.wait(
        lambda: other in rig.connector.in_flight_orders and rig.connector.in_flight_orders[other].exchange_order_id,
        what="order acknowledged",
    )
    rig.connector.cancel(PAIR, other)
    rig.wait(lambda: [e for e in rig.named("OrderCancelled") if e.order_id == other], what="OrderCancelled")
    assert sim.order(other).status == "CANCELED" and not sim.open_orders()
    free, locked = sim.balances()["USDT"]
    assert locked == 0
    rig.wait(lambda: rig.connector.get_balance("USDT") == free, what="balances agree")
