"""The second venue: Hummingbot's real OkxExchange starts, gets ready and trades on the OKX
simulator (REST v5 signed with key, secret and passphrase; public and private websockets)."""

from __future__ import annotations

from decimal import Decimal

from tests.live_sim.harness import PAIR, Rig
from tests.live_sim.okx_sim import OkxSim

SYMBOL = "BTC-USDT"


def test_okx_connector_gets_ready_from_the_simulator(okx_rig: Rig, okx_sim: OkxSim) -> None:
    okx_rig.start()
    c = okx_rig.connector
    rule = c.trading_rules[PAIR]
    assert rule.min_price_increment == Decimal("0.01") and rule.min_base_amount_increment == Decimal("0.00001")
    assert c.get_balance("USDT") == Decimal(1000) and c.get_balance("BTC") == Decimal("0.01")
    book = c.get_order_book(PAIR)
    bid, ask = okx_sim.best(SYMBOL)
    assert Decimal(str(book.get_price(False))) == bid and Decimal(str(book.get_price(True))) == ask
    # signed REST calls passed the signature check; the private websocket logged in
    assert any(p == "/api/v5/account/balance" for _, _, p in okx_sim.requests)
    assert not okx_sim.errors
    okx_rig.wait(lambda: okx_sim._user, what="the private websocket logged in")


def test_okx_place_fill_and_cancel_through_the_real_connector(okx_rig: Rig, okx_sim: OkxSim) -> None:
    okx_rig.start()
    okx_rig.wait(lambda: okx_sim._user, what="the private websocket logged in")
    resting = okx_rig.buy("0.001", "59000")
    okx_rig.wait(lambda: okx_rig.named("BuyOrderCreated"), what="BuyOrderCreated")
    assert [o.client_id for o in okx_sim.open_orders()] == [resting]
    okx_rig.wait(lambda: okx_rig.connector.get_available_balance("USDT") == Decimal(941), what="USDT frozen")
    # part of it fills (a maker trade), then the rest as the market moves through it
    okx_sim.fill(resting, "0.0004")
    okx_rig.wait(lambda: [e for e in okx_rig.named("OrderFilled") if e.order_id == resting], what="the partial fill")
    okx_sim.move(SYMBOL, "58900")
    okx_rig.wait(lambda: okx_rig.named("BuyOrderCompleted"), what="BuyOrderCompleted")
    fills = [e for e in okx_rig.named("OrderFilled") if e.order_id == resting]
    assert sum(e.amount for e in fills) == Decimal("0.001")
    assert [f.flat_fees[0].token for f in (e.trade_fee for e in fills)] == ["BTC", "BTC"]  # OKX's fee, as charged
    # a sell that crosses the book: taker fill at the bid
    taker = okx_rig.sell("0.002", "58000")
    okx_rig.wait(lambda: okx_rig.named("SellOrderCompleted"), what="SellOrderCompleted")
    assert okx_sim.order(taker).status == "FILLED"  # type: ignore[union-attr]
    # a new resting order, cancelled
    other = okx_rig.buy("0.001", "57000")
    okx_rig.wait(lambda: okx_rig.connector.in_flight_orders.get(other) and okx_rig.connector.in_flight_orders[other]
                 .exchange_order_id, what="order acknowledged")  # fmt: skip
    okx_rig.connector.cancel(PAIR, other)
    okx_rig.wait(lambda: [e for e in okx_rig.named("OrderCancelled") if e.order_id == other], what="OrderCancelled")
    assert okx_sim.order(other).status == "CANCELED" and not okx_sim.open_orders()  # type: ignore[union-attr]
    free, locked = okx_sim.balances()["USDT"]
    assert locked == 0
    okx_rig.wait(lambda: okx_rig.connector.get_balance("USDT") == free, what="balances agree")
    btc_free, _ = okx_sim.balances()["BTC"]
    okx_rig.wait(lambda: okx_rig.connector.get_balance("BTC") == btc_free, what="BTC agrees")


def test_okx_refuses_a_wrong_passphrase_or_secret(okx_sim: OkxSim) -> None:
    """The signature check is real: the connector's signed calls fail with a wrong passphrase
    (50105) or a wrong secret (50113, the signature)."""
    for wrong, code in (({"passphrase": "wrong"}, "50105"), ({"api_secret": "wrong"}, "50113")):
        rig = Rig(_Credentials(okx_sim, **wrong))  # the rig reads only the venue and the credentials
        try:
            task = rig.loop.create_task(rig.connector._update_balances())
            rig.wait(task.done, 10, "the balance call answered")
            assert task.exception() is not None
            assert any(c == code for *_, c in okx_sim.errors), okx_sim.errors
        finally:
            rig.close()


class _Credentials:
    """What a rig needs of `okx_sim` to build its connector, some of it changed."""

    def __init__(self, sim: OkxSim, **changed: str) -> None:
        self.name, self.url, self.ws_url = "okx", sim.url, sim.ws_url
        self.api_key, self.api_secret, self.passphrase = sim.api_key, sim.api_secret, sim.passphrase
        for name, value in changed.items():
            setattr(self, name, value)
