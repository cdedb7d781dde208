"""A local Binance spot exchange: the Binance protocol over the simulators' one engine
(tests/live_sim/engine.py: book, balances, matching, fault scripts).

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

Run it by hand: ``python -m tests.live_sim.binance_sim --port 8765`` (see docs/commissioning.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.live_sim import by_hand
from tests.live_sim.engine import (
    D0,
    ApiError,
    Fault,
    Market,
    Order,
    Rejected,
    SimExchange,
    Trade,
    _json,
    fmt,
    json_messages,
)

__all__ = ["BinanceError", "BinanceSim", "Fault", "Market", "Order", "Trade", "ip_banned", "too_many_requests"]

log = logging.getLogger(__name__)

RECV_WINDOW_MS = 5000
#: the engine's reasons for refusing an order, as Binance says them (HTTP status, code)
REJECT_CODES = {
    "symbol": (400, -1121), "side": (400, -1102), "type": (400, -1116), "param": (400, -1102),
    "duplicate": (400, -2010), "price": (400, -1013), "lot": (400, -1013), "notional": (400, -1013),
    "would_take": (400, -2010), "balance": (400, -2010),
}  # fmt: skip
BINANCE_MSG = {"balance": "Account has insufficient balance for requested action."}


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


class BinanceError(ApiError):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(status, {"code": code, "msg": msg})
        self.code, self.msg = code, msg


class BinanceSim(SimExchange):
    """The Binance adapter. `start()` serves it on its own thread; `stop()` ends it."""

    name = "binance"

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
        self.key_can_trade = True  # what /sapi/v1/account/apiRestrictions reports (withdrawals: never)
        self._listen_keys: set[str] = set()
        super().__init__(
            api_key, api_secret, markets or [Market("BTC", "USDT")], balances or {"USDT": 1000, "BTC": 0.01},
            mid or {"BTCUSDT": 60_000}, fee_rate, host, port,
        )  # fmt: skip

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws_public)
        app.router.add_get("/ws/{listen_key}", self._ws_listen_key)
        app.router.add_get("/ws-api/v3", self._ws_api)

    def best(self, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
        return super().best(symbol)

    def cancel_all_by_exchange(self, symbol: str = "BTCUSDT") -> None:
        super().cancel_all_by_exchange(symbol)

    # --- public streams ------------------------------------------------------------------

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

    # --- user-stream events --------------------------------------------------------------

    def _order_event(self, order: Order, exec_type: str, trade: Trade | None = None, cancel_id: str = "") -> None:
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

    def _wire(self, event: dict[str, Any], subscription: Any) -> str | None:
        return json.dumps(event if subscription is None else {"subscriptionId": subscription, "event": event})

    # --- REST ------------------------------------------------------------------------------

    def _route_path(self, path: str) -> str:
        if not path.startswith("/api/") and path.count("/") >= 2:  # ccxt: /<real host>/<real path>
            host, _, rest = path.lstrip("/").partition("/")
            if "." in host:
                return "/" + rest
        return path

    def _place_from(self, params: dict[str, str]) -> Order:
        otype = params.get("type", "")
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
        client_id = params.get("newClientOrderId") or f"sim-{secrets.token_hex(8)}"
        try:
            return self._place(params.get("symbol", ""), params.get("side", ""), otype, qty, price,
                               params.get("timeInForce", "GTC"), client_id)  # fmt: skip
        except Rejected as exc:
            status, code = REJECT_CODES[exc.reason]
            raise BinanceError(status, code, BINANCE_MSG.get(exc.reason, exc.msg)) from None

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

    async def _dispatch(self, request: web.Request, path: str, body: str, fault: Fault | None) -> tuple[int, Any]:
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
                order = self._place_from(signed)
                return 200, self._order_json(order, full=True)
            if method == "DELETE":
                order = self._find(signed, -2011, "Unknown order sent.")
                cancel_id = self._cancel_request(order, fault)
                if cancel_id is None:
                    raise BinanceError(400, -2011, "Unknown order sent.")
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
                    cancel_id = self._cancel(o)
                    answers.append(self._order_json(o) | {"origClientOrderId": o.client_id, "clientOrderId": cancel_id})
                return 200, answers
            return 200, [self._order_json(o) for o in orders]
        if path == "/api/v3/allOrders":
            symbol = signed.get("symbol")
            orders = [o for o in self.orders.values() if o.symbol == symbol]
            return 200, [self._order_json(o) for o in listed(orders, signed, "orderId", lambda o: o.order_id,
                                                            lambda o: o.created_ms)]  # fmt: skip
        if path == "/api/v3/myTrades":
            symbol = signed.get("symbol")
            trades = [t for t in self.trades if t.symbol == symbol]
            if "orderId" in signed:
                trades = [t for t in trades if t.order_id == int(signed["orderId"])]
            return 200, [self._trade_json(t) for t in listed(trades, signed, "fromId", lambda t: t.trade_id,
                                                            lambda t: t.time_ms)]  # fmt: skip
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
        entry = ws, streams = await self._open_public(request)
        try:
            async for data in json_messages(ws):
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
            async for data in json_messages(ws):
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


LIST_DEFAULT, LIST_MAX = 500, 1000  # /allOrders and /myTrades: `limit` default and maximum
WINDOW_MS = 24 * 3600 * 1000  # the widest startTime..endTime span Binance answers


def listed(records: list[Any], q: dict[str, str], cursor: str, key: Callable[[Any], int],
           at: Callable[[Any], int]) -> list[Any]:  # fmt: skip
    """What Binance spot's /allOrders and /myTrades return (its REST docs): ascending by id, at
    most `limit` (default 500, maximum 1000, more is clamped); with the id cursor (``orderId``,
    ``fromId``), records from that id on; with ``startTime``/``endTime``, those in the window, at
    most 24 h wide (one bound alone means 24 h from or to it; wider is refused, -1127); the two
    ways together are refused (-1128: /myTrades' docs forbid fromId with a time; the simulator is
    as strict on /allOrders); with neither, the most recent `limit`."""
    limit = min(int(q.get("limit") or LIST_DEFAULT), LIST_MAX)
    ordered = sorted(records, key=key)
    start, end = q.get("startTime"), q.get("endTime")
    if cursor in q and (start or end):
        raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
    if cursor in q:
        return [r for r in ordered if key(r) >= int(q[cursor])][:limit]
    if start or end:
        lo = int(start) if start else int(end or 0) - WINDOW_MS
        hi = int(end) if end else lo + WINDOW_MS
        if hi - lo > WINDOW_MS:
            raise BinanceError(400, -1127, "More than 24 hours between startTime and endTime.")
        return [r for r in ordered if lo <= at(r) <= hi][:limit]
    return ordered[-limit:]


def _strip_signature(pieces: list[str]) -> str:
    """Binance signs the query string and the body concatenated; drop the signature from either."""
    return "".join("&".join(p for p in piece.split("&") if not p.startswith("signature=")) for piece in pieces)


# --- by hand -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = by_hand.parser(
        "python -m tests.live_sim.binance_sim",
        "A local Binance spot simulator on 127.0.0.1 for Hummingbot's binance connector and ccxt.",
        8765, "sim-key", "sim-secret", "binance",
    ).parse_args(argv)  # fmt: skip
    specs = by_hand.markets(args)
    mids = {m.base + m.quote: m.mid for m in specs}
    markets = [Market(m.base, m.quote) for m in specs]
    sim = BinanceSim(args.api_key, args.api_secret, markets, by_hand.balances(args), mids, port=args.port)  # type: ignore[arg-type]
    sim.key_can_trade = not args.read_only_key
    by_hand.serve_forever(
        sim, mids, args.walk_bps,
        lambda: f"Binance simulator on {sim.url} (REST {sim.url}/api/, WS {sim.ws_url}/ws, WS API "
                f"{sim.ws_url}/ws-api/v3, ccxt layout {sim.url}/<host>/<path>); key {args.api_key!r}; Ctrl-C stops it",
    )  # fmt: skip


if __name__ == "__main__":
    main()
