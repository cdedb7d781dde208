"""The exchange simulators' one engine: markets, balances, order book, matching, fault scripts,
the aiohttp server and the user-stream plumbing. A protocol adapter (binance_sim.BinanceSim,
okx_sim.OkxSim) subclasses `SimExchange` and adds its venue's wire format: REST routes and
their signature check, error codes, and how order, balance, depth and trade events look on
its websockets.

Matching: orders cross the simulator's market book (taker fills at the book's prices, which
consume it); the rest rests. A resting order fills when the market moves through it
(`move`), when another participant trades (`fill`, how partial fills are scripted), or when a
scripted fault says so (a fill racing a cancel).

Order states are the engine's own (NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED); each
adapter maps them to its venue's words. All state lives on the simulator's event-loop thread;
the control methods are safe to call from any thread (`call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aiohttp import WSMsgType, web

D0 = Decimal(0)
EIGHT = Decimal("0.00000001")  # amounts carry 8 decimals on both venues


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
    sep: str = ""  # Binance writes BTCUSDT, OKX BTC-USDT

    @property
    def symbol(self) -> str:
        return self.base + self.sep + self.quote


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
    """One scripted misbehaviour, matched on method and path (``/api/v3/order``,
    ``/api/v5/trade/order``), used `times` times (None: until removed). Exactly one of the
    actions applies:

    - ``status``/``body``/``headers``: answer that instead (429, 418, 5xx, a rejection);
    - ``delay_s``: do the request, answer that much later (slow responses; user events of the
      request go out with the answer);
    - ``fill_on_cancel``: a cancel fills the order first, then answers the venue's "unknown
      order" (a fill racing a cancel);
    - ``events_before_ack``: an order's user-stream events go out before its REST answer,
      which is held ``delay_s`` (fills before the acknowledgement);
    - ``execute_then``: do the request, then answer ``status``/``body`` anyway (a 5xx on an
      order the exchange did take);
    - ``before``: run this on the simulator just before the request is done (the market moves
      while the order is on its way: it fills only in part, or not at all).
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
    before: Callable[[], None] | None = None
    hits: int = 0


class Rejected(Exception):
    """The engine refuses an order; `reason` is one of REASONS, which each adapter maps to its
    venue's error code."""

    REASONS = ("symbol", "side", "type", "param", "duplicate", "price", "lot", "notional", "would_take", "balance")

    def __init__(self, reason: str, msg: str) -> None:
        super().__init__(msg)
        self.reason, self.msg = reason, msg


class ApiError(Exception):
    """An HTTP answer other than success, in the venue's own body."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(str(payload))
        self.status, self.payload = status, payload


class SimExchange:
    """The engine. `start()` serves it on its own thread; `stop()` ends it. Subclasses add
    routes (`routes`), `_dispatch` and the event hooks (`_order_event`, `_account_event`,
    `_publish_depth`, `_public_trade`, `_wire`)."""

    name = "sim"
    first_order_id = 100_001
    first_trade_id = 5_000_001

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        markets: list[Market],
        balances: dict[str, Decimal | str | float],
        mid: dict[str, Decimal | str | float],
        fee_rate: Decimal = Decimal("0.001"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.markets = {m.symbol: m for m in markets}
        self.free: dict[str, Decimal] = {a: Decimal(str(v)) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = {a: D0 for a in self.free}
        self.fee_rate = fee_rate
        self.host, self.port = host, port
        self.bids: dict[str, dict[Decimal, Decimal]] = {}
        self.asks: dict[str, dict[Decimal, Decimal]] = {}
        self.update_id: dict[str, int] = {}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.requests: list[tuple[float, str, str]] = []  # (time, method, path)
        self.errors: list[tuple[str, str, int, Any]] = []  # (method, path, HTTP status, venue's code)
        self.faults: list[Fault] = []
        self.clock_offset_ms = 0
        self.duplicate_events = False
        self.reverse_events = False  # each burst of user events goes out in reverse order
        self.user_stream_is_down = False
        self.events_sent: list[dict[str, Any]] = []
        self._ids = itertools.count(self.first_order_id)
        self._trade_ids = itertools.count(self.first_trade_id)
        self._public: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._user: list[tuple[web.WebSocketResponse, Any]] = []  # (socket, the adapter's subscription)
        self._pending: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        for symbol, m in mid.items():
            self._set_book_around(symbol, Decimal(str(m)))

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        """The adapter's websocket routes (REST is the catch-all `_rest`)."""

    def app(self) -> web.Application:
        app = web.Application()
        self.routes(app)
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

    def start(self) -> Any:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"the {self.name} simulator did not start within 10 s")
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

    def best(self, symbol: str) -> tuple[Decimal, Decimal]:
        return self.call(lambda: (max(self.bids[symbol]), min(self.asks[symbol])))  # type: ignore[no-any-return]

    def move(self, symbol: str, mid: Decimal | str | float) -> None:
        """The market moves: a new book around `mid`; resting orders it crosses fill."""

        def do() -> None:
            self._set_book_around(symbol, Decimal(str(mid)), publish=True)
            self._cross_resting(symbol)

        self.call(do)

    def place(self, symbol: str, side: str, qty: str, price: str, client_id: str) -> Order:
        """Someone else places a LIMIT order on the account (by hand, or a process the store
        never heard of): it rests like any other, with no reservation behind it."""
        return self.call(self._place, symbol, side, "LIMIT", Decimal(qty), Decimal(price), "GTC", client_id)  # type: ignore[no-any-return]

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
        """The user stream drops: its sockets close, new ones are refused and events are lost
        until `stream_up` (polling must find the fills)."""

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
            self._cancel(order)

        self.call(do)

    def cancel_all_by_exchange(self, symbol: str) -> None:
        """The exchange cancels every open order (e.g. maintenance) without being asked."""

        def do() -> None:
            for o in [o for o in self.orders.values() if o.is_open and o.symbol == symbol]:
                self._cancel(o)

        self.call(do)

    def set_book(self, symbol: str, bids: dict[str, str], asks: dict[str, str]) -> None:
        """The market's book becomes exactly these levels (price -> amount, as text); resting
        orders it crosses fill. Safe from any thread, or from a fault's `before`."""

        def do() -> None:
            new_b = {Decimal(p): Decimal(q) for p, q in bids.items()}
            new_a = {Decimal(p): Decimal(q) for p, q in asks.items()}
            old_b, old_a = self.bids[symbol], self.asks[symbol]
            self.bids[symbol], self.asks[symbol] = new_b, new_a
            self._publish_depth(symbol, {**{p: D0 for p in old_b if p not in new_b}, **new_b},
                                {**{p: D0 for p in old_a if p not in new_a}, **new_a})  # fmt: skip
            self._cross_resting(symbol)

        self.call(do)

    def walk(self, mids: dict[str, Decimal]) -> None:
        """One step of a by-hand run's random walk: new books, crossed orders fill."""
        for symbol, mid in mids.items():
            self._set_book_around(symbol, mid, publish=True)
            self._cross_resting(symbol)

    # --- the adapter's hooks ---------------------------------------------------------------

    def _order_event(self, order: Order, exec_type: str, trade: Trade | None = None, cancel_id: str = "") -> None:
        """An order changed (exec_type NEW, TRADE, CANCELED or EXPIRED): queue its user event."""

    def _account_event(self, assets: list[str]) -> None:
        """Balances of `assets` changed: queue the user event that says so."""

    def _publish_depth(self, symbol: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> None:
        """Levels changed (0: removed): send the public depth update."""

    def _public_trade(self, symbol: str, price: Decimal, qty: Decimal, buyer_maker: bool) -> None:
        """Someone traded: send the public trade."""

    def _wire(self, event: dict[str, Any], subscription: Any) -> str | None:
        """A user event as sent to one subscriber (None: not subscribed to it)."""
        return json.dumps(event)

    async def _dispatch(self, request: web.Request, path: str, body: str, fault: Fault | None) -> tuple[int, Any]:
        raise ApiError(404, {"msg": f"{request.method} {path} is not served by the simulator"})

    def _route_path(self, path: str) -> str:
        return path

    def _error_code(self, status: int, payload: Any) -> Any:
        """The venue's error code in an answer, None for a success."""
        return payload.get("code") if status >= 400 and isinstance(payload, dict) else None

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

    async def _open_public(self, request: web.Request) -> tuple[web.WebSocketResponse, set[str]]:
        """A public stream socket, registered for broadcasts (the handler removes it when done)."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        entry: tuple[web.WebSocketResponse, set[str]] = (ws, set())
        self._public.append(entry)
        return entry

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
        """One fill: balances move, the commission is taken in the asset received."""
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
        self.locked.setdefault(m.quote, D0)
        order.executed += qty
        order.quote_filled += quote_amount
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.updated_ms = self.now_ms()
        if order.status == "FILLED" and order.locked > 0:  # a buy filled below its limit
            asset = m.quote if order.side == "BUY" else m.base
            self.locked[asset] -= order.locked
            self.free[asset] += order.locked
            order.locked = D0
        trade = Trade(next(self._trade_ids), order.order_id, order.client_id, order.symbol, order.side, price, qty,
                      fee, fee_asset, order.updated_ms, maker)  # fmt: skip
        self.trades.append(trade)
        self._order_event(order, "TRADE", trade)
        self._account_event([m.base, m.quote])
        return trade

    def _place(
        self, symbol: str, side: str, otype: str, qty: Decimal, price: Decimal, tif: str, client_id: str
    ) -> Order:
        """Validate and place one order (LIMIT, LIMIT_MAKER or MARKET); it takes what it can
        from the book and the rest rests (IOC, FOK and MARKET rests expire)."""
        m = self.markets.get(symbol)
        if m is None:
            raise Rejected("symbol", "Invalid symbol.")
        if side not in ("BUY", "SELL"):
            raise Rejected("side", "Invalid side.")
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise Rejected("type", "Invalid order type.")
        if any(o.client_id == client_id and o.is_open for o in self.orders.values()):
            raise Rejected("duplicate", "Duplicate order sent.")
        if otype != "MARKET" and (price <= 0 or price % m.tick != 0):
            raise Rejected("price", "Filter failure: PRICE_FILTER")
        if qty < m.min_qty or qty % m.step != 0:
            raise Rejected("lot", "Filter failure: LOT_SIZE")
        best_ask, best_bid = min(self.asks[symbol]), max(self.bids[symbol])
        reference = price if otype != "MARKET" else (best_ask if side == "BUY" else best_bid)
        if qty * reference < m.min_notional:
            raise Rejected("notional", "Filter failure: NOTIONAL")
        if otype == "LIMIT_MAKER" and (price >= best_ask if side == "BUY" else price <= best_bid):
            raise Rejected("would_take", "Order would immediately match and take.")
        if side == "BUY":
            need, asset = (qty * price if otype != "MARKET" else qty * best_ask), m.quote
        else:
            need, asset = qty, m.base
        if self.free.get(asset, D0) < need:
            raise Rejected("balance", f"Insufficient {asset} balance.")
        now = self.now_ms()
        order = Order(next(self._ids), client_id, symbol, side, otype, price, qty, tif, now, updated_ms=now)
        if otype != "MARKET":
            order.locked = need
            self.free[asset] -= need
            self.locked[asset] = self.locked.get(asset, D0) + need
        self.orders[order.order_id] = order
        self._order_event(order, "NEW")
        if otype != "MARKET":
            self._account_event([asset])
        self._take(order)
        if order.is_open and (otype == "MARKET" or order.tif in ("IOC", "FOK")):
            self._release(order)
            order.status = "EXPIRED"
            self._order_event(order, "EXPIRED")
        return order

    def _release(self, order: Order) -> None:
        m = self.markets[order.symbol]
        asset = m.quote if order.side == "BUY" else m.base
        self.locked[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = D0

    def _cancel(self, order: Order) -> str:
        self._release(order)
        order.status = "CANCELED"
        order.updated_ms = self.now_ms()
        cancel_id = f"sim-cancel-{next(self._ids)}"
        self._order_event(order, "CANCELED", cancel_id=cancel_id)
        m = self.markets[order.symbol]
        self._account_event([m.quote if order.side == "BUY" else m.base])
        return cancel_id

    def _cancel_request(self, order: Order, fault: Fault | None) -> str | None:
        """A cancel asked for by the client. With a `fill_on_cancel` fault the order fills
        first (the fill wins the race). Returns the cancel's id (None: the order had ended)."""
        if fault is not None and fault.fill_on_cancel and order.is_open:
            self._execute(order, order.price, order.remaining, maker=True)
        if not order.is_open:
            return None
        return self._cancel(order)

    # --- user-stream events --------------------------------------------------------------

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
                data = self._wire(event, sub)
                if data is None:
                    continue
                await _send(ws, data)
                if self.duplicate_events:
                    await _send(ws, data)

    # --- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = self._route_path(request.path)
        self.requests.append((time.time(), request.method, path))
        body = await request.text() if request.can_read_body else ""
        fault = self._fault_for(request.method, path)
        if fault is not None and fault.status is not None and not fault.execute_then:
            self.errors.append((request.method, path, fault.status, self._error_code(fault.status, fault.body)))
            return _json(fault.status, fault.body, fault.headers)
        if fault is not None and fault.before is not None:
            fault.before()
        try:
            status, payload = await self._dispatch(request, path, body, fault)
        except ApiError as exc:
            status, payload = exc.status, exc.payload
        if fault is not None and fault.events_before_ack:
            await self._flush()
            await asyncio.sleep(fault.delay_s or 0.3)
        elif fault is not None and fault.delay_s:
            # the exchange has done the request; its answer is late (a status poll meanwhile
            # finds the order, as on a real exchange whose acknowledgement is slow)
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.execute_then and fault.status is not None:
            status, payload = fault.status, fault.body
        code = self._error_code(status, payload)
        if code is not None:
            self.errors.append((request.method, path, status, code))
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


async def _send(ws: web.WebSocketResponse, data: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):  # a socket closing under us
        await ws.send_str(data)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers or {})


async def json_messages(ws: web.WebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    """A client's JSON text frames, in order; a bare text "ping" (OKX's keep-alive) is answered
    "pong" here, so a venue's handler reads only requests."""
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        if msg.data == "ping":
            await ws.send_str("pong")
            continue
        yield json.loads(msg.data)
