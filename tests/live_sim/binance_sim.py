"""A local Binance spot exchange: aiohttp on 127.0.0.1, its own book, balances and matching.

It speaks the parts of Binance's spot protocol Hummingbot's `BinanceExchange` connector and
ccxt use (shapes from Binance's public API docs; the connector's own tests show which fields
it reads):

- REST under ``/api/v3``: ``ping``, ``time``, ``exchangeInfo``, ``depth``, ``ticker/bookTicker``,
  ``ticker/24hr``, ``ticker/price``, ``account``, ``order`` (POST place, DELETE cancel, GET
  query), ``openOrders`` (GET, DELETE), ``myTrades``, ``userDataStream`` (listenKey POST, PUT,
  DELETE). Signed endpoints check ``X-MBX-APIKEY``, the HMAC-SHA256 ``signature`` over the
  request's parameters with the API secret, and ``timestamp`` against ``recvWindow``.
- WebSocket ``/ws``: public ``<symbol>@depth@100ms`` diffs and ``<symbol>@trade`` after a
  ``SUBSCRIBE``; ``/ws/<listenKey>``: the user-data stream; ``/ws-api/v3``: the WebSocket API's
  ``userDataStream.subscribe.signature`` (what Hummingbot 2.x uses). User events are
  ``executionReport`` and ``outboundAccountPosition``.
- The ccxt layout ``/<real host>/<real path>`` (``commissioning.exchange_api_url``) reaches the
  same routes, so phase-2 validation and the live connector can share one simulator.

Matching: orders cross the simulator's market book (taker fills at the book's prices, which
consume it); the rest rests. A resting order fills when the market moves through it
(`move`), when another participant trades (`trade`), or on a scripted `fill` (partial fills).

Faults are scripted per test (`Fault`, `fail`, `stream_down`, `duplicate_events`, ...): see
tests/live_sim/README in the module docstrings of the tests. All state lives on the
simulator's own event loop thread; the control methods are safe to call from any thread.

Run it by hand: ``python -m tests.live_sim.binance_sim --port 8765`` (see docs/commissioning.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

D0 = Decimal(0)
EIGHT = Decimal("0.00000001")  # Binance's amounts have 8 decimals
RECV_WINDOW_MS = 5000


def fmt(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass(frozen=True)
class Market:
    base: str
    quote: str
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")

    @property
    def symbol(self) -> str:
        return self.base + self.quote


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    price: Decimal
    qty: Decimal
    tif: str
    created_ms: int
    executed: Decimal = D0
    quote_filled: Decimal = D0
    status: str = "NEW"
    updated_ms: int = 0
    locked: Decimal = D0  # what this order still locks (quote for a buy, base for a sell)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    client_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    maker: bool


@dataclass
class Fault:
    """One scripted misbehaviour, matched on method and path (``/api/v3/order``), used `times`
    times (None: until removed). Exactly one of the actions applies:

    - ``status``/``body``/``headers``: answer that instead (429, 418, 5xx, a rejection);
    - ``delay_s``: answer normally, that much later (slow responses);
    - ``fill_on_cancel``: a cancel fills the order first, then answers "Unknown order sent";
    - ``events_before_ack``: an order's user-stream events go out before its REST answer,
      which is held ``delay_s`` (fills before the acknowledgement);
    - ``execute_then``: do the request, then answer ``status``/``body`` anyway (a 5xx on an
      order the exchange did take).
    """

    method: str
    path: str
    times: int | None = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fill_on_cancel: bool = False
    events_before_ack: bool = False
    execute_then: bool = False
    hits: int = 0


def too_many_requests(retry_after_s: int = 1, times: int | None = 1, path: str = "/api/v3/order") -> Fault:
    return Fault(
        "*",
        path,
        times,
        429,
        {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."},
        {"Retry-After": str(retry_after_s)},
    )


def ip_banned(retry_after_s: int = 2, times: int | None = 1, path: str = "/api/v3/order") -> Fault:
    return Fault(
        "*",
        path,
        times,
        418,
        {
            "code": -1003,
            "msg": f"Way too many requests; IP banned until {int(time.time() * 1000) + 1000 * retry_after_s}.",
        },
        {"Retry-After": str(retry_after_s)},
    )


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class BinanceSim:
    """The simulator. `start()` serves it on its own thread; `stop()` ends it."""

    def __init__(
        self,
        api_key: str = "sim-key",
        api_secret: str = "sim-secret",
        markets: list[Market] | None = None,
        balances: dict[str, Decimal | str | float] | None = None,
        mid: dict[str, Decimal | str | float] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.markets = {m.symbol: m for m in markets or [Market("BTC", "USDT")]}
        self.free: dict[str, Decimal] = {
            a: Decimal(str(v)) for a, v in (balances or {"USDT": 1000, "BTC": 0.01}).items()
        }
        self.locked: dict[str, Decimal] = {a: D0 for a in self.free}
        self.fee_rate = fee_rate
        self.host, self.port = host, port
        self.bids: dict[str, dict[Decimal, Decimal]] = {}
        self.asks: dict[str, dict[Decimal, Decimal]] = {}
        self.update_id: dict[str, int] = {}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.requests: list[tuple[float, str, str]] = []  # (time, method, path)
        self.errors: list[tuple[str, str, int, Any]] = []  # (method, path, HTTP status, Binance code)
        self.faults: list[Fault] = []
        self.clock_offset_ms = 0
        self.duplicate_events = False
        self.key_can_trade = True  # what /sapi/v1/account/apiRestrictions reports (withdrawals: never)
        self.reverse_events = False  # each burst of user events goes out in reverse order
        self.user_stream_is_down = False
        self.events_sent: list[dict[str, Any]] = []
        self._ids = itertools.count(100_001)
        self._trade_ids = itertools.count(5_000_001)
        self._listen_keys: set[str] = set()
        self._public: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._user: list[tuple[web.WebSocketResponse, int | None]] = []  # (ws, subscriptionId or None)
        self._pending: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        for symbol, m in (mid or {"BTCUSDT": 60_000}).items():
            self._set_book_around(symbol, Decimal(str(m)))

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._ws_public)
        app.router.add_get("/ws/{listen_key}", self._ws_listen_key)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        return app

    async def serve(self) -> None:
        """Serve on the running loop (the caller's thread becomes the simulator's)."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    def start(self) -> BinanceSim:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="binance-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Binance simulator did not start within 10 s")
        return self

    async def _shutdown(self) -> None:
        for ws, _ in [*self._public, *self._user]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn` on the simulator's loop (where all its state lives) and return its result."""
        if self._loop is None or threading.current_thread() is self._thread or not self._loop.is_running():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                raise RuntimeError("call a coroutine on the simulator's loop only from another thread")
            return result

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            await self._flush()
            return result

        future: Future[Any] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(10)

    # --- time ------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    # --- control (tests and the CLI) -------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        self.call(self.faults.append, fault)
        return fault

    def clear_faults(self) -> None:
        self.call(self.faults.clear)

    def set_balance(self, asset: str, free: Decimal | str | float) -> None:
        def do() -> None:
            self.free[asset] = Decimal(str(free))
            self.locked.setdefault(asset, D0)
            self._account_event([asset])

        self.call(do)

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        return dict(self.call(lambda: {a: (self.free[a], self.locked.get(a, D0)) for a in self.free}))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return list(self.call(lambda: [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]))

    def order(self, client_id: str) -> Order | None:
        return self.call(lambda: next((o for o in self.orders.values() if o.client_id == client_id), None))  # type: ignore[no-any-return]

    def trades_of(self, symbol: str | None = None) -> list[Trade]:
        return list(self.call(lambda: [t for t in self.trades if symbol in (None, t.symbol)]))

    def best(self, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
        return self.call(lambda: (max(self.bids[symbol]), min(self.asks[symbol])))  # type: ignore[no-any-return]

    def move(self, symbol: str, mid: Decimal | str | float) -> None:
        """The market moves: a new book around `mid`; resting orders it crosses fill."""

        def do() -> None:
            self._set_book_around(symbol, Decimal(str(mid)), publish=True)
            self._cross_resting(symbol)

        self.call(do)

    def fill(self, client_id: str, qty: Decimal | str | float | None = None) -> Trade:
        """Someone trades against a resting order: `qty` of it (all that is left by default)
        fills at its price, as maker. How partial fills are scripted."""

        def do() -> Trade:
            order = next(o for o in self.orders.values() if o.client_id == client_id and o.is_open)
            amount = order.remaining if qty is None else min(Decimal(str(qty)), order.remaining)
            trade = self._execute(order, order.price, amount, maker=True)
            self._public_trade(order.symbol, order.price, amount, buyer_maker=order.side == "BUY")
            return trade

        return self.call(do)  # type: ignore[no-any-return]

    def stream_down(self) -> None:
        """The user-data stream drops: its sockets close, new ones are refused and events are
        lost until `stream_up` (polling must find the fills)."""

        async def do() -> None:
            self.user_stream_is_down = True
            users, self._user = self._user, []
            for ws, _ in users:
                await ws.close()

        self.call(do)

    def stream_up(self) -> None:
        self.call(setattr, self, "user_stream_is_down", False)

    def hold_events(self) -> None:
        """Hold user events until `release_events` (to send a burst out of order)."""
        self.call(setattr, self, "_held", [])

    def release_events(self, order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda e: e) -> None:
        def do() -> None:
            held, self._held = self._held or [], None
            self._pending.extend(order(held))

        self.call(do)

    def cancel_by_exchange(self, client_id: str) -> None:
        """The exchange cancels one open order without being asked."""

        def do() -> None:
            order = next(o for o in self.orders.values() if o.client_id == client_id and o.is_open)
            self._cancel(order, order.client_id)

        self.call(do)

    def cancel_all_by_exchange(self, symbol: str = "BTCUSDT") -> None:
        """The exchange cancels every open order (e.g. maintenance) without being asked."""

        def do() -> None:
            for o in [o for o in self.orders.values() if o.is_open and o.symbol == symbol]:
                self._cancel(o, o.client_id)

        self.call(do)

    # --- the book and matching -----------------------------------------------------------

    def _set_book_around(self, symbol: str, mid: Decimal, publish: bool = False, levels: int = 10) -> None:
        m = self.markets[symbol]
        old_b, old_a = self.bids.get(symbol, {}), self.asks.get(symbol, {})
        half = (mid * Decimal("0.0001")).quantize(m.tick) or m.tick  # 1 bp each side
        bids = {(mid - half - i * m.tick * 10).quantize(m.tick): Decimal("0.5") for i in range(levels)}
        asks = {(mid + half + i * m.tick * 10).quantize(m.tick): Decimal("0.5") for i in range(levels)}
        self.bids[symbol], self.asks[symbol] = bids, asks
        if publish:
            self._publish_depth(
                symbol,
                {**{p: D0 for p in old_b if p not in bids}, **bids},
                {**{p: D0 for p in old_a if p not in asks}, **asks},
            )
        else:
            self.update_id[symbol] = self.update_id.get(symbol, 1000) + 1

    def _publish_depth(self, symbol: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> None:
        first = self.update_id.get(symbol, 1000) + 1
        self.update_id[symbol] = first
        msg = {
            "e": "depthUpdate",
            "E": self.now_ms(),
            "s": symbol,
            "U": first,
            "u": first,
            "b": [[fmt(p), fmt(q)] for p, q in sorted(bids.items(), reverse=True)],
            "a": [[fmt(p), fmt(q)] for p, q in sorted(asks.items())],
        }
        self._broadcast_public(f"{symbol.lower()}@depth@100ms", msg)

    def _public_trade(self, symbol: str, price: Decimal, qty: Decimal, buyer_maker: bool) -> None:
        now = self.now_ms()
        msg = {
            "e": "trade",
            "E": now,
            "s": symbol,
            "t": next(self._trade_ids),
            "p": fmt(price),
            "q": fmt(qty),
            "T": now,
            "m": buyer_maker,
            "M": True,
        }
        self._broadcast_public(f"{symbol.lower()}@trade", msg)

    def _broadcast_public(self, stream: str, msg: dict[str, Any]) -> None:
        if self._loop is None:
            return
        data = json.dumps(msg)
        for ws, streams in list(self._public):
            if stream in streams and not ws.closed:
                self._loop.create_task(_send(ws, data))

    def _cross_resting(self, symbol: str) -> None:
        """Resting orders the book now crosses fill at their own price (maker), up to the
        book's quantity there, which they consume."""
        for order in sorted(
            (o for o in self.orders.values() if o.is_open and o.symbol == symbol), key=lambda o: o.order_id
        ):
            book = self.asks[symbol] if order.side == "BUY" else self.bids[symbol]
            crossing = [p for p in book if (p <= order.price if order.side == "BUY" else p >= order.price)]
            available = sum((book[p] for p in crossing), D0)
            amount = min(order.remaining, available)
            if amount <= 0:
                continue
            left = amount
            for p in sorted(crossing, reverse=order.side != "BUY"):
                take = min(left, book[p])
                book[p] -= take
                left -= take
                if book[p] <= 0:
                    del book[p]
                if left <= 0:
                    break
            self._execute(order, order.price, amount, maker=True)
            self._public_trade(symbol, order.price, amount, buyer_maker=order.side == "BUY")

    def _take(self, order: Order) -> None:
        """An incoming order takes what the book offers within its price."""
        book = self.asks[order.symbol] if order.side == "BUY" else self.bids[order.symbol]
        changed: dict[Decimal, Decimal] = {}
        for p in sorted(book, reverse=order.side != "BUY"):
            if order.remaining <= 0:
                break
            if order.type != "MARKET" and (p > order.price if order.side == "BUY" else p < order.price):
                break
            take = min(order.remaining, book[p])
            if order.side == "BUY" and order.type == "MARKET":
                affordable = self.free.get(self.markets[order.symbol].quote, D0) / (p * (1 + self.fee_rate))
                take = min(take, affordable.quantize(self.markets[order.symbol].step, ROUND_DOWN))
                if take <= 0:
                    break
            book[p] -= take
            changed[p] = book[p]
            if book[p] <= 0:
                del book[p]
            self._execute(order, p, take, maker=False)
            self._public_trade(order.symbol, p, take, buyer_maker=order.side == "SELL")
        if changed:
            side_bids = {} if order.side == "BUY" else changed
            side_asks = changed if order.side == "BUY" else {}
            self._publish_depth(order.symbol, side_bids, side_asks)

    def _execute(self, order: Order, price: Decimal, qty: Decimal, maker: bool) -> Trade:
        m = self.markets[order.symbol]
        quote_amount = price * qty
        if order.side == "BUY":
            fee, fee_asset = (qty * self.fee_rate).quantize(EIGHT, ROUND_DOWN), m.base
            if order.type == "MARKET":
                self.free[m.quote] -= quote_amount
            else:
                release = min(order.locked, order.price * qty)
                order.locked -= release
                self.locked[m.quote] -= release
                self.free[m.quote] += release - quote_amount  # a better price leaves quote free
            self.free[m.base] = self.free.get(m.base, D0) + qty - fee
        else:
            fee, fee_asset = (quote_amount * self.fee_rate).quantize(EIGHT, ROUND_DOWN), m.quote
            if order.type == "MARKET":
                self.free[m.base] -= qty
            else:
                order.locked -= qty
                self.locked[m.base] -= qty
            self.free[m.quote] = self.free.get(m.quote, D0) + quote_amount - fee
        self.locked.setdefault(m.base, D0)
        order.executed += qty
        order.quote_filled += quote_amount
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.updated_ms = self.now_ms()
        if order.status == "FILLED" and order.locked > 0:  # a buy filled below its limit
            asset = m.quote if order.side == "BUY" else m.base
            self.locked[asset] -= order.locked
            self.free[asset] += order.locked
            order.locked = D0
        trade = Trade(
            next(self._trade_ids),
            order.order_id,
            order.client_id,
            order.symbol,
            order.side,
            price,
            qty,
            fee,
            fee_asset,
            order.updated_ms,
            maker,
        )
        self.trades.append(trade)
        self._execution_report(order, "TRADE", trade)
        self._account_event([m.base, m.quote])
        return trade

    def _place(self, params: dict[str, str]) -> Order:
        symbol = params.get("symbol", "")
        m = self.markets.get(symbol)
        if m is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        side, otype = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"sim-{secrets.token_hex(8)}"
        if any(o.client_id == client_id and o.is_open for o in self.orders.values()):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params["price"]) if otype != "MARKET" else D0
        except (KeyError, ArithmeticError) as exc:
            raise BinanceError(
                400, -1102, f"Mandatory parameter {exc} was not sent, was empty/null, or malformed."
            ) from None
        if otype == "LIMIT" and params.get("timeInForce") not in ("GTC", "IOC", "FOK"):
            raise BinanceError(
                400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
            )
        if otype != "MARKET" and (price <= 0 or price % m.tick != 0):
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty < m.min_qty or qty % m.step != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        reference = (
            price if otype != "MARKET" else (min(self.asks[symbol]) if side == "BUY" else max(self.bids[symbol]))
        )
        if qty * reference < m.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        best_ask, best_bid = min(self.asks[symbol]), max(self.bids[symbol])
        if otype == "LIMIT_MAKER" and (price >= best_ask if side == "BUY" else price <= best_bid):
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        if side == "BUY":
            need, asset = (qty * price if otype != "MARKET" else qty * best_ask), m.quote
        else:
            need, asset = qty, m.base
        if self.free.get(asset, D0) < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = self.now_ms()
        order = Order(
            next(self._ids),
            client_id,
            symbol,
            side,
            otype,
            price,
            qty,
            params.get("timeInForce", "GTC"),
            now,
            updated_ms=now,
        )
        if otype != "MARKET":
            order.locked = need
            self.free[asset] -= need
            self.locked[asset] = self.locked.get(asset, D0) + need
        self.orders[order.order_id] = order
        self._execution_report(order, "NEW")
        if otype != "MARKET":
            self._account_event([asset])
        self._take(order)
        if order.is_open and (otype == "MARKET" or order.tif in ("IOC", "FOK")):
            self._release(order)
            order.status = "EXPIRED"
            self._execution_report(order, "EXPIRED")
        return order

    def _release(self, order: Order) -> None:
        m = self.markets[order.symbol]
        asset = m.quote if order.side == "BUY" else m.base
        self.locked[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = D0

    def _cancel(self, order: Order, orig_client_id: str) -> str:
        self._release(order)
        order.status = "CANCELED"
        order.updated_ms = self.now_ms()
        cancel_id = f"sim-cancel-{secrets.token_hex(6)}"
        self._execution_report(order, "CANCELED", cancel_id=cancel_id)
        m = self.markets[order.symbol]
        self._account_event([m.quote if order.side == "BUY" else m.base])
        return cancel_id

    def _find(self, params: dict[str, str], code: int = -2013, msg: str = "Order does not exist.") -> Order:
        symbol = params.get("symbol")
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        else:
            cid = params.get("origClientOrderId")
            order = next((o for o in reversed(list(self.orders.values())) if o.client_id == cid), None)
        if order is None or order.symbol != symbol:
            raise BinanceError(400, code, msg)
        return order

    # --- user-stream events --------------------------------------------------------------

    def _execution_report(self, order: Order, exec_type: str, trade: Trade | None = None, cancel_id: str = "") -> None:
        now = self.now_ms()
        self._user_event(
            {
                "e": "executionReport",
                "E": now,
                "s": order.symbol,
                "c": cancel_id if exec_type == "CANCELED" else order.client_id,
                "S": order.side,
                "o": order.type,
                "f": order.tif,
                "q": fmt(order.qty),
                "p": fmt(order.price),
                "P": "0.00000000",
                "F": "0.00000000",
                "g": -1,
                "C": order.client_id if exec_type == "CANCELED" else "",
                "x": exec_type,
                "X": order.status,
                "r": "NONE",
                "i": order.order_id,
                "l": fmt(trade.qty if trade else D0),
                "z": fmt(order.executed),
                "L": fmt(trade.price if trade else D0),
                "n": fmt(trade.commission) if trade else "0",
                "N": trade.commission_asset if trade else None,
                "T": trade.time_ms if trade else now,
                "t": trade.trade_id if trade else -1,
                "v": 0,
                "I": next(self._ids),
                "w": order.is_open,
                "m": trade.maker if trade else False,
                "M": False,
                "O": order.created_ms,
                "Z": fmt(order.quote_filled),
                "Y": fmt(trade.price * trade.qty if trade else D0),
                "Q": "0.00000000",
                "W": order.created_ms,
                "V": "NONE",
            }
        )

    def _account_event(self, assets: list[str]) -> None:
        now = self.now_ms()
        self._user_event(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {"a": a, "f": fmt(self.free.get(a, D0)), "l": fmt(self.locked.get(a, D0))}
                    for a in sorted(set(assets))
                ],
            }
        )

    def _user_event(self, event: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self._pending.append(event)

    async def _flush(self) -> None:
        """Send the events queued by one request or control call, with the scripted faults."""
        events, self._pending = self._pending, []
        if not events:
            return
        if self.reverse_events:
            events.reverse()
        if self.user_stream_is_down:
            return  # lost: nobody was listening
        for event in events:
            self.events_sent.append(event)
            for ws, sub in list(self._user):
                if ws.closed:
                    continue
                data = json.dumps(event if sub is None else {"subscriptionId": sub, "event": event})
                await _send(ws, data)
                if self.duplicate_events:
                    await _send(ws, data)

    # --- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/") and path.count("/") >= 2:  # ccxt: /<real host>/<real path>
            host, _, rest = path.lstrip("/").partition("/")
            if "." in host:
                path = "/" + rest
        self.requests.append((time.time(), request.method, path))
        body = await request.text() if request.can_read_body else ""
        fault = self._fault_for(request.method, path)
        if fault is not None and fault.status is not None and not fault.execute_then:
            code = fault.body.get("code") if isinstance(fault.body, dict) else None
            self.errors.append((request.method, path, fault.status, code))
            return _json(fault.status, fault.body, fault.headers)
        if fault is not None and fault.delay_s and not fault.events_before_ack:
            await asyncio.sleep(fault.delay_s)
        try:
            status, payload = self._dispatch(request, path, body, fault)
        except BinanceError as exc:
            status, payload = exc.status, {"code": exc.code, "msg": exc.msg}
        if fault is not None and fault.events_before_ack:
            await self._flush()
            await asyncio.sleep(fault.delay_s or 0.3)
        if fault is not None and fault.execute_then and fault.status is not None:
            status, payload = fault.status, fault.body
        if status >= 400:
            self.errors.append(
                (request.method, path, status, payload.get("code") if isinstance(payload, dict) else None)
            )
        response = _json(status, payload, fault.headers if fault and fault.execute_then else {})
        await self._flush()
        return response

    def _fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.method in ("*", method)
                and fault.path == path
                and (fault.times is None or fault.hits < fault.times)
            ):
                fault.hits += 1
                return fault
        return None

    def _signed(self, request: web.Request, body: str) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.query_string
        pieces = [p for p in (query, body) if p]
        params = dict(parse_qsl(query)) | dict(parse_qsl(body))
        signature = params.pop("signature", None)
        unsigned = _strip_signature(pieces)
        expected = hmac.new(self.api_secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(signature, expected):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
        except (KeyError, ValueError):
            raise BinanceError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        window = int(params.get("recvWindow", RECV_WINDOW_MS))
        now = self.now_ms()
        if ts > now + 1000 or now - ts > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def _dispatch(self, request: web.Request, path: str, body: str, fault: Fault | None) -> tuple[int, Any]:
        method = request.method
        q = dict(request.query)
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": self.now_ms()}
        if path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info(q)
        if path == "/api/v3/depth":
            symbol = q.get("symbol", "")
            if symbol not in self.markets:
                raise BinanceError(400, -1121, "Invalid symbol.")
            limit = int(q.get("limit", 100))
            return 200, {
                "lastUpdateId": self.update_id[symbol],
                "bids": [[fmt(p), fmt(v)] for p, v in sorted(self.bids[symbol].items(), reverse=True)[:limit]],
                "asks": [[fmt(p), fmt(v)] for p, v in sorted(self.asks[symbol].items())[:limit]],
            }
        if path in ("/api/v3/ticker/bookTicker", "/api/v3/ticker/24hr", "/api/v3/ticker/price"):
            kind = path.rsplit("/", 1)[-1]
            symbols = [q["symbol"]] if "symbol" in q else list(self.markets)
            tickers = [self._ticker(s, kind) for s in symbols if s in self.markets]
            if "symbol" in q:
                if not tickers:
                    raise BinanceError(400, -1121, "Invalid symbol.")
                return 200, tickers[0]
            return 200, tickers
        if path == "/api/v3/userDataStream":
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            if method == "POST":
                key = secrets.token_hex(32)
                self._listen_keys.add(key)
                return 200, {"listenKey": key}
            return 200, {}
        if path == "/sapi/v1/system/status":
            return 200, {"status": 0, "msg": "normal"}
        if path == "/sapi/v1/account/apiRestrictions":
            self._signed(request, body)
            return 200, {
                "ipRestrict": True,
                "enableReading": True,
                "enableSpotAndMarginTrading": self.key_can_trade,
                "enableWithdrawals": False,
                "enableInternalTransfer": False,
                "enableMargin": False,
                "enableFutures": False,
                "permitsUniversalTransfer": False,
                "createTime": 1700000000000,
            }
        if path in ("/sapi/v1/capital/config/getall", "/sapi/v1/margin/allPairs", "/sapi/v1/margin/isolated/allPairs"):
            return 200, []
        signed = self._signed(request, body)
        if path == "/api/v3/account":
            return 200, {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "updateTime": self.now_ms(),
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": fmt(self.free[a]), "locked": fmt(self.locked.get(a, D0))}
                    for a in sorted(self.free)
                ],
                "permissions": ["SPOT"],
                "uid": 354937868,
            }
        if path == "/api/v3/order":
            if method == "POST":
                order = self._place(signed)
                return 200, self._order_json(order, full=True)
            if method == "DELETE":
                order = self._find(signed, -2011, "Unknown order sent.")
                if fault is not None and fault.fill_on_cancel and order.is_open:
                    self._execute(order, order.price, order.remaining, maker=True)
                if not order.is_open:
                    raise BinanceError(400, -2011, "Unknown order sent.")
                cancel_id = self._cancel(order, order.client_id)
                answer = self._order_json(order)
                answer.update(origClientOrderId=order.client_id, clientOrderId=cancel_id, transactTime=self.now_ms())
                return 200, answer
            return 200, self._order_json(self._find(signed))
        if path == "/api/v3/openOrders":
            symbol = signed.get("symbol")
            orders = [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]
            if method == "DELETE":
                answers = []
                for o in orders:
                    cancel_id = self._cancel(o, o.client_id)
                    answers.append(self._order_json(o) | {"origClientOrderId": o.client_id, "clientOrderId": cancel_id})
                return 200, answers
            return 200, [self._order_json(o) for o in orders]
        if path == "/api/v3/allOrders":
            symbol = signed.get("symbol")
            return 200, [self._order_json(o) for o in self.orders.values() if o.symbol == symbol]
        if path == "/api/v3/myTrades":
            symbol = signed.get("symbol")
            trades = [t for t in self.trades if t.symbol == symbol]
            if "orderId" in signed:
                trades = [t for t in trades if t.order_id == int(signed["orderId"])]
            if "startTime" in signed:
                trades = [t for t in trades if t.time_ms >= int(signed["startTime"])]
            if "fromId" in signed:
                trades = [t for t in trades if t.trade_id >= int(signed["fromId"])]
            return 200, [self._trade_json(t) for t in trades[: int(signed.get("limit", 500))]]
        raise BinanceError(404, -1000, f"{method} {path} is not served by the simulator")

    def _exchange_info(self, q: dict[str, str]) -> dict[str, Any]:
        symbols = [m for m in self.markets.values() if "symbol" not in q or q["symbol"] == m.symbol]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": m.symbol,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": fmt(m.tick),
                            "maxPrice": "1000000.00000000",
                            "tickSize": fmt(m.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": fmt(m.min_qty),
                            "maxQty": "9000.00000000",
                            "stepSize": fmt(m.step),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": fmt(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
                for m in symbols
            ],
        }

    def _ticker(self, symbol: str, kind: str) -> dict[str, Any]:
        bid, ask = max(self.bids[symbol]), min(self.asks[symbol])
        last = next((t.price for t in reversed(self.trades) if t.symbol == symbol), (bid + ask) / 2)
        if kind == "bookTicker":
            return {
                "symbol": symbol,
                "bidPrice": fmt(bid),
                "bidQty": fmt(self.bids[symbol][bid]),
                "askPrice": fmt(ask),
                "askQty": fmt(self.asks[symbol][ask]),
            }
        if kind == "price":
            return {"symbol": symbol, "price": fmt(last)}
        now = self.now_ms()
        return {
            "symbol": symbol,
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": fmt(last),
            "prevClosePrice": fmt(last),
            "lastPrice": fmt(last),
            "lastQty": "0.00000000",
            "bidPrice": fmt(bid),
            "bidQty": fmt(self.bids[symbol][bid]),
            "askPrice": fmt(ask),
            "askQty": fmt(self.asks[symbol][ask]),
            "openPrice": fmt(last),
            "highPrice": fmt(last),
            "lowPrice": fmt(last),
            "volume": "100.00000000",
            "quoteVolume": fmt(last * 100),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def _order_json(self, o: Order, full: bool = False) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_id,
            "price": fmt(o.price),
            "origQty": fmt(o.qty),
            "executedQty": fmt(o.executed),
            "cummulativeQuoteQty": fmt(o.quote_filled),
            "status": o.status,
            "timeInForce": o.tif,
            "type": o.type,
            "side": o.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": o.created_ms,
            "updateTime": o.updated_ms,
            "isWorking": True,
            "workingTime": o.created_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if full:
            answer["transactTime"] = o.created_ms
            answer["fills"] = [
                {
                    "price": fmt(t.price),
                    "qty": fmt(t.qty),
                    "commission": fmt(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.trade_id,
                }
                for t in self.trades
                if t.order_id == o.order_id
            ]
        return answer

    @staticmethod
    def _trade_json(t: Trade) -> dict[str, Any]:
        return {
            "symbol": t.symbol,
            "id": t.trade_id,
            "orderId": t.order_id,
            "orderListId": -1,
            "price": fmt(t.price),
            "qty": fmt(t.qty),
            "quoteQty": fmt(t.price * t.qty),
            "commission": fmt(t.commission),
            "commissionAsset": t.commission_asset,
            "time": t.time_ms,
            "isBuyer": t.side == "BUY",
            "isMaker": t.maker,
            "isBestMatch": True,
        }

    # --- WebSockets ------------------------------------------------------------------------

    async def _ws_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        streams: set[str] = set()
        entry = (ws, streams)
        self._public.append(entry)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                params = data.get("params") or []
                if data.get("method") == "SUBSCRIBE":
                    streams.update(params)
                elif data.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(params)
                await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
        finally:
            self._public.remove(entry)
        return ws

    async def _ws_listen_key(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["listen_key"] not in self._listen_keys or self.user_stream_is_down:
            return _json(400, {"code": -1125, "msg": "This listenKey does not exist."})
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        entry: tuple[web.WebSocketResponse, int | None] = (ws, None)
        self._user.append(entry)
        try:
            async for _ in ws:
                pass
        finally:
            if entry in self._user:
                self._user.remove(entry)
        return ws

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.user_stream_is_down:
            return _json(503, {"code": -1001, "msg": "Internal error; unable to process your request."})
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        entries: list[tuple[web.WebSocketResponse, int | None]] = []
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                answer = self._ws_api_call(data, ws, entries)
                await ws.send_str(json.dumps(answer))
        finally:
            for entry in entries:
                if entry in self._user:
                    self._user.remove(entry)
        return ws

    def _ws_api_call(
        self, data: dict[str, Any], ws: web.WebSocketResponse, entries: list[tuple[web.WebSocketResponse, int | None]]
    ) -> dict[str, Any]:
        req_id, method, params = data.get("id"), data.get("method"), dict(data.get("params") or {})

        def error(status: int, code: int, msg: str) -> dict[str, Any]:
            return {"id": req_id, "status": status, "error": {"code": code, "msg": msg}}

        if method == "userDataStream.subscribe.signature":
            signature = params.pop("signature", "")
            if params.get("apiKey") != self.api_key:
                return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
            expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(signature), expected):
                return error(400, -1022, "Signature for this request is not valid.")
            now = self.now_ms()
            ts = int(params.get("timestamp", 0))
            if ts > now + 1000 or now - ts > int(params.get("recvWindow", RECV_WINDOW_MS)):
                return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
            sub = len(entries)
            entry = (ws, sub)
            entries.append(entry)
            self._user.append(entry)
            return {"id": req_id, "status": 200, "result": {"subscriptionId": sub}}
        if method == "ping":
            return {"id": req_id, "status": 200, "result": {}}
        if method == "time":
            return {"id": req_id, "status": 200, "result": {"serverTime": self.now_ms()}}
        return error(400, -1000, f"method {method} is not served by the simulator")


def _strip_signature(pieces: list[str]) -> str:
    """Binance signs the query string and the body concatenated; drop the signature from either."""
    return "".join("&".join(p for p in piece.split("&") if not p.startswith("signature=")) for piece in pieces)


async def _send(ws: web.WebSocketResponse, data: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):  # a socket closing under us
        await ws.send_str(data)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers or {})


# --- by hand -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.live_sim.binance_sim",
        description="A local Binance spot simulator on 127.0.0.1 for Hummingbot's binance connector and ccxt.",
    )
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--api-secret", default="sim-secret")
    parser.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="ASSET=AMOUNT",
        help="starting free balance (repeatable; default USDT=1000 BTC=0.01 ETH=0.1 SOL=1)",
    )
    parser.add_argument("--market", action="append", default=[], metavar="BASE-QUOTE=MID",
                        help="a market and its mid price (repeatable; default Lyra's binance pairs: "
                             "BTC-USDT=60000 ETH-USDT=3000 SOL-USDT=150)")  # fmt: skip
    parser.add_argument(
        "--walk-bps",
        type=float,
        default=5.0,
        help="each mid moves up to this many basis points every second (0: a still market)",
    )
    parser.add_argument(
        "--read-only-key",
        action="store_true",
        help="the key's permissions say it cannot trade (what phases 2-3 require)",
    )
    args = parser.parse_args(argv)
    specs = args.market or ["BTC-USDT=60000", "ETH-USDT=3000", "SOL-USDT=150"]
    mids: dict[str, Decimal] = {}
    markets = []
    for spec in specs:
        pair, _, mid = spec.partition("=")
        base, _, quote = pair.partition("-")
        markets.append(Market(base, quote))
        mids[base + quote] = Decimal(mid)
    balances = dict(b.split("=", 1) for b in args.balance) or {"USDT": "1000", "BTC": "0.01", "ETH": "0.1", "SOL": "1"}
    sim = BinanceSim(args.api_key, args.api_secret, markets, balances, mids, port=args.port)  # type: ignore[arg-type]
    sim.key_can_trade = not args.read_only_key

    async def run() -> None:
        await sim.serve()
        print(f"Binance simulator on {sim.url} (REST {sim.url}/api/, WS {sim.ws_url}/ws, WS API "
              f"{sim.ws_url}/ws-api/v3, ccxt layout {sim.url}/<host>/<path>); key {args.api_key!r}; Ctrl-C stops it",
              flush=True)  # fmt: skip
        while True:
            await asyncio.sleep(1)
            if args.walk_bps <= 0:
                continue
            for symbol in list(mids):
                step = Decimal(random.uniform(-args.walk_bps, args.walk_bps)) / 10_000
                mids[symbol] = (mids[symbol] * (1 + step)).quantize(Decimal("0.01"))
                sim._set_book_around(symbol, mids[symbol], publish=True)
                sim._cross_resting(symbol)
            await sim._flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
