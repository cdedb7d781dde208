"""Hummingbot's real `BinanceExchange` and `OkxExchange` connectors against the local simulators.

The only thing changed in Hummingbot is where its URL constants point (Binance: REST, public
WS, WS API; OKX: the functions that build its REST and WS addresses), plus its polling periods,
shortened so a test sees a poll within a second or two instead of 5-120 s (class attributes the
connector reads each tick; its logic is untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from tests.live_sim.binance_sim import BinanceSim

PAIR = "BTC-USDT"
SYMBOL = "BTCUSDT"
#: each venue's name for PAIR on its own wire
SYMBOLS = {"binance": "BTCUSDT", "okx": "BTC-USDT"}
#: polling periods for the tier (Hummingbot's defaults: 5 s, 120 s, 60 s and 10 s)
POLLING = {
    "SHORT_POLL_INTERVAL": 1.0,
    "LONG_POLL_INTERVAL": 3.0,
    "TICK_INTERVAL_LIMIT": 2.0,
    "UPDATE_ORDER_STATUS_MIN_INTERVAL": 1.0,
}


@contextmanager
def binance_pointed_at(sim: BinanceSim) -> Iterator[None]:
    """Hummingbot's Binance URL constants aimed at the simulator (restored afterwards)."""
    import hummingbot.connector.exchange.binance.binance_constants as constants

    saved = (constants.REST_URL, constants.WSS_URL, constants.WSS_API_URL)
    constants.REST_URL = f"{sim.url}/api/"
    constants.WSS_URL = f"{sim.ws_url}/ws"
    constants.WSS_API_URL = f"{sim.ws_url}/ws-api/v3"
    try:
        yield
    finally:
        constants.REST_URL, constants.WSS_URL, constants.WSS_API_URL = saved


@contextmanager
def okx_pointed_at(sim: Any) -> Iterator[None]:
    """Hummingbot's OKX address builders aimed at the simulator (restored afterwards): the
    connector calls them for every REST call (`domain`) and every websocket it opens."""
    import hummingbot.connector.exchange.okx.okx_constants as constants

    names = ("get_okx_base_url", "get_okx_ws_uri_public", "get_okx_ws_uri_private")
    saved = [getattr(constants, n) for n in names]
    constants.get_okx_base_url = lambda sub_domain="www": f"{sim.url}/"
    constants.get_okx_ws_uri_public = lambda sub_domain="www": f"{sim.ws_url}/ws/v5/public"
    constants.get_okx_ws_uri_private = lambda sub_domain="www": f"{sim.ws_url}/ws/v5/private"
    try:
        yield
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(constants, name, value)


@contextmanager
def pointed_at(sim: Any) -> Iterator[None]:
    """The connector of `sim`'s venue aimed at it."""
    with binance_pointed_at(sim) if sim.name == "binance" else okx_pointed_at(sim):
        yield


def new_connector(sim: Any, pairs: list[str] | None = None) -> Any:
    """Hummingbot's real connector for `sim`'s venue (`sim.name`: binance or okx). Must be
    called with the test's event loop running (Hummingbot binds to it)."""
    if sim.name == "okx":
        from hummingbot.connector.exchange.okx.okx_exchange import OkxExchange

        connector: Any = OkxExchange(
            okx_api_key=sim.api_key,
            okx_secret_key=sim.api_secret,
            okx_passphrase=sim.passphrase,
            trading_pairs=pairs or [PAIR],
            trading_required=True,
        )
    else:
        from hummingbot.connector.exchange.binance.binance_exchange import BinanceExchange

        connector = BinanceExchange(
            binance_api_key=sim.api_key,
            binance_api_secret=sim.api_secret,
            trading_pairs=pairs or [PAIR],
            trading_required=True,
        )
    for name, value in POLLING.items():
        setattr(connector, name, value)
    return connector


class Rig:
    """One event loop (the test's thread) running a Hummingbot realtime Clock over one
    connector per simulator (the first is `connector`) and, optionally, a strategy; each
    simulator runs on its own thread."""

    def __init__(self, sim: Any, *more: Any, tick_size: float = 0.2) -> None:
        from hummingbot.core.clock import Clock
        from hummingbot.core.clock_mode import ClockMode

        self.sim = sim
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.connectors: dict[str, Any] = {}
        for s in (sim, *more):
            self.connectors[s.name] = self.run(_async(lambda s=s: new_connector(s)))
        self.connector = self.connectors[sim.name]
        self.clock = Clock(ClockMode.REALTIME, tick_size=tick_size)
        for connector in self.connectors.values():
            self.clock.add_iterator(connector)
        self._clock_task: asyncio.Task[Any] | None = None
        self.events: list[tuple[str, Any]] = []
        self.monitors: list[Callable[[], None]] = []  # invariants checked on every poll of `wait`
        self._listeners: list[Any] = []
        self._listen()

    def _listen(self) -> None:
        from hummingbot.core.event.event_forwarder import SourceInfoEventForwarder
        from hummingbot.core.event.events import MarketEvent

        for tag in (
            MarketEvent.BuyOrderCreated,
            MarketEvent.SellOrderCreated,
            MarketEvent.OrderFilled,
            MarketEvent.OrderCancelled,
            MarketEvent.OrderFailure,
            MarketEvent.BuyOrderCompleted,
            MarketEvent.SellOrderCompleted,
        ):
            forwarder = SourceInfoEventForwarder(lambda t, _m, e: self.events.append((MarketEvent(t).name, e)))
            self._listeners.append(forwarder)
            for connector in self.connectors.values():
                connector.add_listener(tag, forwarder)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def start(self, *iterators: Any, ready_timeout: float = 30.0) -> Rig:
        for it in iterators:
            self.clock.add_iterator(it)

        async def tick() -> None:
            with self.clock as clock:
                await clock.run()

        self._clock_task = self.loop.create_task(tick())
        self.wait(
            lambda: all(c.ready for c in self.connectors.values()),
            ready_timeout,
            lambda: "connector not ready: " + "; ".join(f"{n} {c.status_dict}" for n, c in self.connectors.items()),
        )
        return self

    def wait(
        self, predicate: Callable[[], Any], timeout: float = 10.0, what: Callable[[], str] | str = "condition"
    ) -> Any:
        """Let Hummingbot run until `predicate()` is truthy; fail with `what` after `timeout` s."""

        async def poll() -> Any:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for monitor in self.monitors:
                    monitor()
                value = predicate()
                if value:
                    return value
                await asyncio.sleep(0.05)
            raise AssertionError(f"timed out after {timeout} s waiting for: {what() if callable(what) else what}")

        return self.run(poll())

    def sleep(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))

    def named(self, name: str) -> list[Any]:
        return [e for n, e in self.events if n == name]

    def order_id_of(self, client_id: str) -> Any:
        return self.connector.in_flight_orders.get(client_id)

    def buy(self, amount: str, price: str) -> str:
        from hummingbot.core.data_type.common import OrderType

        return str(self.connector.buy(PAIR, Decimal(amount), OrderType.LIMIT, Decimal(price)))

    def sell(self, amount: str, price: str) -> str:
        from hummingbot.core.data_type.common import OrderType

        return str(self.connector.sell(PAIR, Decimal(amount), OrderType.LIMIT, Decimal(price)))

    def close(self) -> None:
        from tests.loops import shut_down

        try:
            if self._clock_task is not None:
                self._clock_task.cancel()
            for connector in self.connectors.values():
                self.run(_quiet(connector.stop_network()))
        finally:
            from hummingbot.core.web_assistant.connections.connections_factory import ConnectionsFactory

            self.run(_quiet(ConnectionsFactory().close()))  # its shared aiohttp session is bound to this loop
            shut_down(self.loop)


async def _async(fn: Callable[[], Any]) -> Any:
    return fn()


async def _quiet(coro: Any) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):  # shutting down: nothing left to check
        await asyncio.wait_for(coro, 5)
