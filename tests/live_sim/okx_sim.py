"""A local OKX spot exchange: the OKX v5 protocol over the simulators' one engine
(tests/live_sim/engine.py: book, balances, matching, fault scripts).

It speaks the parts of OKX's v5 API that Hummingbot's `OkxExchange` connector uses (shapes
from OKX's public v5 docs; hummingbot/connector/exchange/okx shows which fields it reads):

- REST under ``/api/v5``: ``public/time``, ``public/instruments``, ``market/ticker``,
  ``market/tickers``, ``market/books``, ``account/balance``, ``account/config``,
  ``trade/order`` (POST place, GET query), ``trade/cancel-order``, ``trade/cancel-batch-orders``,
  ``trade/orders-pending``, ``trade/orders-history``, ``trade/fills``. Signed endpoints check
  ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE`` and ``OK-ACCESS-SIGN``: base64 HMAC-SHA256, with
  the API secret, of ``OK-ACCESS-TIMESTAMP`` + method + path with query + body; a timestamp
  more than 30 s away from the exchange's clock is refused (50102).
- WebSocket ``/ws/v5/public``: ``books`` (a snapshot on subscribe, then updates) and
  ``trades``; ``/ws/v5/private``: ``login`` (the same HMAC over timestamp + ``GET`` +
  ``/users/self/verify``), then the ``account`` and ``orders`` channels. ``ping`` -> ``pong``.
- Business errors answer HTTP 200 with ``code`` != ``"0"`` and, for orders, ``sCode``/``sMsg``
  per order, as OKX does; rate limits answer 429 with code 50011.
- The ccxt layout ``/<real host>/<real path>`` (``commissioning.exchange_api_url``) reaches the
  same routes (plus ``system/status`` and ``asset/currencies``, which ccxt reads), so phase-2
  validation and the live connector can share one simulator.

Run it by hand: ``python -m tests.live_sim.okx_sim --port 8766`` (see docs/commissioning.md).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

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

__all__ = ["OkxError", "OkxSim", "okx_market", "too_many_requests"]

TIMESTAMP_WINDOW_MS = 30_000
PLACE_PATH = "/api/v5/trade/order"
CANCEL_PATH = "/api/v5/trade/cancel-order"
#: the engine's order states in OKX's words
STATE = {"NEW": "live", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled", "CANCELED": "canceled",
         "EXPIRED": "canceled"}  # fmt: skip
ORD_TYPE = {"limit": "LIMIT", "post_only": "LIMIT_MAKER", "market": "MARKET", "ioc": "LIMIT", "fok": "LIMIT"}
ORD_TYPE_BACK = {"LIMIT": "limit", "LIMIT_MAKER": "post_only", "MARKET": "market"}
#: the engine's reasons for refusing an order, as OKX's per-order sCode and sMsg
REJECT_CODES = {
    "symbol": ("51001", "Instrument ID doesn't exist."),
    "side": ("51000", "Parameter side error"),
    "type": ("51000", "Parameter ordType error"),
    "param": ("51000", "Parameter sz error"),
    "duplicate": ("51016", "Duplicated client order ID"),
    "price": ("51000", "Parameter px error"),
    "lot": ("51121", "Order quantity must be a multiple of the lot size."),
    "notional": ("51020", "Your order should meet or exceed the minimum order amount."),
    "would_take": ("51026", "Post-only order would take liquidity."),
    "balance": ("51008", "Order failed. Insufficient balance in account."),
}
CANCEL_GONE = ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist.")


def okx_market(base: str, quote: str) -> Market:
    """OKX writes BTC-USDT and has no minimum notional on spot (only a minimum size)."""
    return Market(base, quote, min_notional=D0, sep="-")


def too_many_requests(times: int | None = 1, path: str = PLACE_PATH) -> Fault:
    return Fault("*", path, times, 429, {"code": "50011", "msg": "Too Many Requests", "data": []})


class OkxError(ApiError):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(status, {"code": code, "msg": msg, "data": []})
        self.code, self.msg = code, msg


def _sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def _iso_ms(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class OkxSim(SimExchange):
    """The OKX adapter. `start()` serves it on its own thread; `stop()` ends it."""

    name = "okx"
    first_order_id = 700_000_000_001
    first_trade_id = 9_000_001

    def __init__(
        self,
        api_key: str = "okx-sim-key",
        api_secret: str = "okx-sim-secret",
        passphrase: str = "okx-sim-passphrase",
        markets: list[Market] | None = None,
        balances: dict[str, Decimal | str | float] | None = None,
        mid: dict[str, Decimal | str | float] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.passphrase = passphrase
        self.key_can_trade = True  # what account/config's `perm` says (withdrawals: never)
        self.uid = "44705892343619584"
        self._seq: dict[str, int] = {}
        super().__init__(
            api_key, api_secret, markets or [okx_market("BTC", "USDT")], balances or {"USDT": 1000, "BTC": 0.01},
            mid or {"BTC-USDT": 60_000}, fee_rate, host, port,
        )  # fmt: skip

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/v5/public", self._ws_public)
        app.router.add_get("/ws/v5/private", self._ws_private)

    def best(self, symbol: str = "BTC-USDT") -> tuple[Decimal, Decimal]:
        return super().best(symbol)

    # --- public streams ------------------------------------------------------------------

    def _levels(self, symbol: str, limit: int = 400) -> dict[str, Any]:
        return {
            "asks": [[fmt(p), fmt(q), "0", "1"] for p, q in sorted(self.asks[symbol].items())[:limit]],
            "bids": [[fmt(p), fmt(q), "0", "1"] for p, q in sorted(self.bids[symbol].items(), reverse=True)[:limit]],
            "ts": str(self.now_ms()),
        }

    def _publish_depth(self, symbol: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> None:
        seq = self._seq.get(symbol, 1000)
        self._seq[symbol] = seq + 1
        self.update_id[symbol] = seq + 1
        data = {
            "asks": [[fmt(p), fmt(q), "0", "1" if q else "0"] for p, q in sorted(asks.items())],
            "bids": [[fmt(p), fmt(q), "0", "1" if q else "0"] for p, q in sorted(bids.items(), reverse=True)],
            "ts": str(self.now_ms()), "checksum": 0, "prevSeqId": seq, "seqId": seq + 1,
        }  # fmt: skip
        msg = {"arg": {"channel": "books", "instId": symbol}, "action": "update", "data": [data]}
        self._broadcast_public(f"books:{symbol}", msg)

    def _public_trade(self, symbol: str, price: Decimal, qty: Decimal, buyer_maker: bool) -> None:
        data = {"instId": symbol, "tradeId": str(next(self._trade_ids)), "px": fmt(price), "sz": fmt(qty),
                "side": "sell" if buyer_maker else "buy", "ts": str(self.now_ms()), "count": "1"}  # fmt: skip
        self._broadcast_public(f"trades:{symbol}", {"arg": {"channel": "trades", "instId": symbol}, "data": [data]})

    async def _ws_public(self, request: web.Request) -> web.WebSocketResponse:
        entry = ws, streams = await self._open_public(request)
        try:
            async for data in json_messages(ws):
                for arg in data.get("args") or []:
                    key = f"{arg.get('channel')}:{arg.get('instId')}"
                    if data.get("op") == "unsubscribe":
                        streams.discard(key)
                        await ws.send_str(json.dumps({"event": "unsubscribe", "arg": arg, "connId": "sim"}))
                        continue
                    if arg.get("instId") not in self.markets:
                        await ws.send_str(json.dumps({"event": "error", "code": "60018",
                                                      "msg": f"Wrong URL or {arg} doesn't exist."}))  # fmt: skip
                        continue
                    streams.add(key)
                    await ws.send_str(json.dumps({"event": "subscribe", "arg": arg, "connId": "sim"}))
                    if arg.get("channel") == "books":
                        snapshot = self._levels(arg["instId"]) | {
                            "checksum": 0,
                            "prevSeqId": -1,
                            "seqId": self._seq.get(arg["instId"], 1000),
                        }
                        await ws.send_str(json.dumps({"arg": arg, "action": "snapshot", "data": [snapshot]}))
        finally:
            self._public.remove(entry)
        return ws

    # --- the private stream --------------------------------------------------------------

    def _order_event(self, order: Order, exec_type: str, trade: Trade | None = None, cancel_id: str = "") -> None:
        data = self._order_json(order) | {
            "fillPx": fmt(trade.price) if trade else "", "fillSz": fmt(trade.qty) if trade else "0",
            "tradeId": str(trade.trade_id) if trade else "", "fillTime": str(trade.time_ms) if trade else "",
            "fillFee": fmt(-trade.commission) if trade else "0", "fillFeeCcy": trade.commission_asset if trade else "",
            "execType": ("M" if trade.maker else "T") if trade else "", "amendResult": "", "reqId": "",
            "code": "0", "msg": "",
        }  # fmt: skip
        self._user_event({"arg": {"channel": "orders", "instType": "SPOT", "uid": self.uid}, "data": [data]})

    def _balance_json(self, asset: str) -> dict[str, Any]:
        free, locked = self.free.get(asset, D0), self.locked.get(asset, D0)
        return {
            "ccy": asset,
            "eq": fmt(free + locked),
            "cashBal": fmt(free + locked),
            "availBal": fmt(free),
            "frozenBal": fmt(locked),
            "ordFrozen": fmt(locked),
            "availEq": "",
            "uTime": str(self.now_ms()),
        }

    def _account_event(self, assets: list[str]) -> None:
        details = [self._balance_json(a) for a in sorted(set(assets))]
        data = {"uTime": str(self.now_ms()), "totalEq": "", "details": details}
        self._user_event({"arg": {"channel": "account", "uid": self.uid}, "data": [data]})

    def _wire(self, event: dict[str, Any], subscription: Any) -> str | None:
        return json.dumps(event) if event["arg"]["channel"] in subscription else None

    async def _ws_private(self, request: web.Request) -> web.StreamResponse:
        if self.user_stream_is_down:
            return _json(503, {"code": "50001", "msg": "Service temporarily unavailable, please try again later."})
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        channels: set[str] = set()
        entry = (ws, channels)
        logged_in = False
        try:
            async for data in json_messages(ws):
                op, args = data.get("op"), data.get("args") or []
                if op == "login":
                    problem = self._login_problem(args[0] if args else {})
                    if problem is not None:
                        await ws.send_str(json.dumps({"event": "error", "code": problem[0], "msg": problem[1]}))
                        await ws.close()
                        break
                    logged_in = True
                    self._user.append(entry)
                    await ws.send_str(json.dumps({"event": "login", "code": "0", "msg": "", "connId": "sim"}))
                    continue
                if not logged_in:
                    await ws.send_str(json.dumps({"event": "error", "code": "60011", "msg": "Please log in"}))
                    continue
                for arg in args:
                    if op == "subscribe":
                        channels.add(str(arg.get("channel")))
                    elif op == "unsubscribe":
                        channels.discard(str(arg.get("channel")))
                    await ws.send_str(json.dumps({"event": op, "arg": arg, "connId": "sim"}))
        finally:
            if entry in self._user:
                self._user.remove(entry)
        return ws

    def _login_problem(self, arg: dict[str, Any]) -> tuple[str, str] | None:
        if arg.get("apiKey") != self.api_key:
            return "60005", "Invalid OK-ACCESS-KEY"
        if arg.get("passphrase") != self.passphrase:
            return "60024", "Wrong passphrase"
        expected = _sign(self.api_secret, f"{arg.get('timestamp', '')}GET/users/self/verify")
        if not hmac.compare_digest(str(arg.get("sign", "")), expected):
            return "60007", "Invalid sign"
        try:
            ts_ms = int(float(arg["timestamp"]) * 1000)
        except (KeyError, ValueError):
            return "60006", "Invalid timestamp"
        if abs(self.now_ms() - ts_ms) > TIMESTAMP_WINDOW_MS:
            return "60006", "Timestamp request expired"
        return None

    # --- REST ------------------------------------------------------------------------------

    def _error_code(self, status: int, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return None
        code = payload.get("code")
        if status >= 400 or (code not in (None, "0")):
            data = payload.get("data") or [{}]
            return (data[0].get("sCode") if isinstance(data[0], dict) else None) or code
        return None

    def _route_path(self, path: str) -> str:
        if not path.startswith("/api/") and path.count("/") >= 2:  # ccxt: /<real host>/<real path>
            host, _, rest = path.lstrip("/").partition("/")
            if "." in host:
                return "/" + rest
        return path

    def _signed(self, request: web.Request, body: str) -> None:
        h = request.headers
        if h.get("OK-ACCESS-KEY") != self.api_key:
            raise OkxError(401, "50111", "Invalid OK-ACCESS-KEY.")
        if h.get("OK-ACCESS-PASSPHRASE") != self.passphrase:
            raise OkxError(401, "50105", "Invalid OK-ACCESS-PASSPHRASE.")
        stamp = h.get("OK-ACCESS-TIMESTAMP", "")
        signed_path = request.raw_path[request.raw_path.index("/api/") :]  # what the client signed
        prehash = stamp + request.method.upper() + signed_path + body
        if not hmac.compare_digest(h.get("OK-ACCESS-SIGN", ""), _sign(self.api_secret, prehash)):
            raise OkxError(401, "50113", "Invalid Sign.")
        try:
            ts = _iso_ms(stamp)
        except ValueError:
            raise OkxError(401, "50112", "Invalid OK-ACCESS-TIMESTAMP.") from None
        if abs(self.now_ms() - ts) > TIMESTAMP_WINDOW_MS:
            raise OkxError(401, "50102", "Timestamp request expired.")

    @staticmethod
    def _ok(data: list[Any]) -> tuple[int, Any]:
        return 200, {"code": "0", "msg": "", "data": data}

    async def _dispatch(self, request: web.Request, path: str, body: str, fault: Fault | None) -> tuple[int, Any]:
        method, q = request.method, dict(request.query)
        if path == "/api/v5/public/time":
            return self._ok([{"ts": str(self.now_ms())}])
        if path == "/api/v5/public/instruments":
            if q.get("instType", "SPOT") != "SPOT":
                return self._ok([])  # a spot-only exchange: no futures, swaps or options
            return self._ok([self._instrument(m) for m in self.markets.values()
                             if q.get("instId") in (None, m.symbol)])  # fmt: skip
        if path == "/api/v5/system/status":
            return self._ok([])  # no maintenance scheduled
        if path in ("/api/v5/market/ticker", "/api/v5/market/tickers"):
            if path.endswith("ticker") and q.get("instId") not in self.markets:
                raise OkxError(400, "51001", "Instrument ID doesn't exist.")
            return self._ok([self._ticker(s) for s in self.markets if q.get("instId") in (None, s)])
        if path == "/api/v5/market/books":
            symbol = q.get("instId", "")
            if symbol not in self.markets:
                raise OkxError(400, "51001", "Instrument ID doesn't exist.")
            return self._ok([self._levels(symbol, int(q.get("sz", 1)))])
        self._signed(request, body)
        posted = json.loads(body) if body and method == "POST" else {}
        params: Any = q | posted if isinstance(posted, dict) else posted
        if path == "/api/v5/account/balance":
            details = [self._balance_json(a) for a in sorted(self.free)]
            return self._ok([{"uTime": str(self.now_ms()), "totalEq": "", "details": details}])
        if path == "/api/v5/asset/currencies":
            return self._ok([{"ccy": a, "chain": f"{a}-{a}", "name": a, "canDep": True, "canWd": True,
                              "canInternal": True, "minWd": "0.0001", "maxWd": "1000000", "wdTickSz": "8",
                              "minFee": "0", "maxFee": "0", "mainNet": True} for a in sorted(self.free)])  # fmt: skip
        if path == "/api/v5/account/config":
            return self._ok(
                [
                    {
                        "uid": self.uid,
                        "acctLv": "1",
                        "perm": "read_only,trade" if self.key_can_trade else "read_only",
                        "posMode": "net_mode",
                    }
                ]
            )
        if path == PLACE_PATH and method == "POST":
            return self._place_from(params)
        if path == PLACE_PATH:
            order = self._find(params)
            if order is None:
                return 200, {"code": "51603", "msg": "Order does not exist", "data": []}
            return self._ok([self._order_json(order)])
        if path == CANCEL_PATH:
            return self._cancel_one(params, fault)
        if path == "/api/v5/trade/cancel-batch-orders":
            answers = [self._cancel_one(p, fault)[1]["data"][0] for p in (params if isinstance(params, list) else [])]
            return 200, {"code": "0" if all(a["sCode"] == "0" for a in answers) else "2", "msg": "", "data": answers}
        if path in ("/api/v5/trade/orders-pending", "/api/v5/trade/orders-history"):
            pending = path.endswith("pending")
            orders = [o for o in self.orders.values() if o.is_open is pending and q.get("instId") in (None, o.symbol)
                      and _within(o.created_ms, q)]  # fmt: skip
            return self._ok([self._order_json(o) for o in page(orders, q, lambda o: o.order_id)])
        if path in ("/api/v5/trade/fills", "/api/v5/trade/fills-history"):
            fills = [t for t in self.trades if q.get("instId") in (None, t.symbol) and _within(t.time_ms, q)
                     and ("ordId" not in q or str(t.order_id) == q["ordId"])]  # fmt: skip
            return self._ok([self._fill_json(t) for t in page(fills, q, _bill_id)])
        raise OkxError(404, "50000", f"{method} {path} is not served by the simulator")

    def _place_from(self, params: dict[str, Any]) -> tuple[int, Any]:
        client_id = str(params.get("clOrdId", ""))
        ord_type = str(params.get("ordType", ""))
        tif = {"ioc": "IOC", "fok": "FOK"}.get(ord_type, "GTC")
        try:
            if params.get("tdMode") != "cash":
                raise Rejected("param", "Parameter tdMode error")
            otype = ORD_TYPE.get(ord_type)
            if otype is None:
                raise Rejected("type", "Parameter ordType error")
            if otype == "MARKET" and params.get("tgtCcy", "quote_ccy") != "base_ccy":
                raise Rejected("param", "the simulator sizes market orders in the base currency only")
            try:
                qty = Decimal(str(params["sz"]))
                price = Decimal(str(params["px"])) if otype != "MARKET" else D0
            except (KeyError, ArithmeticError):
                raise Rejected("param", "Parameter sz or px error") from None
            side = {"buy": "BUY", "sell": "SELL"}.get(str(params.get("side")), "")
            order = self._place(str(params.get("instId", "")), side, otype, qty, price, tif, client_id)
        except Rejected as exc:
            code, msg = REJECT_CODES[exc.reason]
            return 200, {"code": "1", "msg": "All operations failed", "data": [
                {"clOrdId": client_id, "ordId": "", "tag": "", "sCode": code, "sMsg": msg}]}  # fmt: skip
        now = str(self.now_ms())
        return 200, {"code": "0", "msg": "", "inTime": now, "outTime": now, "data": [
            {"clOrdId": client_id, "ordId": str(order.order_id), "tag": "", "ts": now, "sCode": "0",
             "sMsg": "Order placed"}]}  # fmt: skip

    def _find(self, params: dict[str, Any]) -> Order | None:
        symbol = params.get("instId")
        if params.get("ordId"):
            order = self.orders.get(int(params["ordId"])) if str(params["ordId"]).isdigit() else None
        else:
            cid = params.get("clOrdId")
            order = next((o for o in reversed(list(self.orders.values())) if o.client_id == cid), None)
        return order if order is not None and order.symbol == symbol else None

    def _cancel_one(self, params: dict[str, Any], fault: Fault | None) -> tuple[int, Any]:
        order = self._find(params)
        ids = {"clOrdId": str(params.get("clOrdId", "")), "ordId": str(order.order_id) if order else ""}
        if order is None or self._cancel_request(order, fault) is None:
            code, msg = CANCEL_GONE
            return 200, {"code": "1", "msg": "All operations failed", "data": [ids | {"sCode": code, "sMsg": msg}]}
        return self._ok([ids | {"sCode": "0", "sMsg": ""}])

    def _instrument(self, m: Market) -> dict[str, Any]:
        return {
            "instType": "SPOT", "instId": m.symbol, "uly": "", "instFamily": "", "baseCcy": m.base,
            "quoteCcy": m.quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
            "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "10", "tickSz": str(m.tick),
            "lotSz": str(m.step), "minSz": str(m.min_qty), "ctType": "", "alias": "", "state": "live",
            "maxLmtSz": "9999999999", "maxMktSz": "1000000", "maxLmtAmt": "20000000", "maxMktAmt": "1000000",
            "maxTwapSz": "", "maxIcebergSz": "", "maxTriggerSz": "", "maxStopSz": "",
        }  # fmt: skip

    def _ticker(self, symbol: str) -> dict[str, Any]:
        bid, ask = max(self.bids[symbol]), min(self.asks[symbol])
        last = next((t.price for t in reversed(self.trades) if t.symbol == symbol), (bid + ask) / 2)
        return {
            "instType": "SPOT", "instId": symbol, "last": fmt(last), "lastSz": "0", "askPx": fmt(ask),
            "askSz": fmt(self.asks[symbol][ask]), "bidPx": fmt(bid), "bidSz": fmt(self.bids[symbol][bid]),
            "open24h": fmt(last), "high24h": fmt(last), "low24h": fmt(last), "volCcy24h": fmt(last * 100),
            "vol24h": "100", "ts": str(self.now_ms()), "sodUtc0": fmt(last), "sodUtc8": fmt(last),
        }  # fmt: skip

    def _order_json(self, o: Order) -> dict[str, Any]:
        fees = sum((t.commission for t in self.trades if t.order_id == o.order_id), D0)
        fee_ccy = self.markets[o.symbol].base if o.side == "BUY" else self.markets[o.symbol].quote
        avg = o.quote_filled / o.executed if o.executed else D0
        return {
            "instType": "SPOT", "instId": o.symbol, "ccy": "", "ordId": str(o.order_id), "clOrdId": o.client_id,
            "tag": "", "px": fmt(o.price) if o.type != "MARKET" else "", "sz": fmt(o.qty),
            "ordType": ORD_TYPE_BACK[o.type] if o.tif == "GTC" else o.tif.lower(), "side": o.side.lower(),
            "posSide": "", "tdMode": "cash", "tgtCcy": "base_ccy" if o.type == "MARKET" else "",
            "accFillSz": fmt(o.executed), "avgPx": fmt(avg) if o.executed else "", "state": STATE[o.status],
            "fee": fmt(-fees), "feeCcy": fee_ccy, "rebate": "0", "rebateCcy": fee_ccy, "category": "normal",
            "cancelSource": "", "uTime": str(o.updated_ms), "cTime": str(o.created_ms),
        }  # fmt: skip

    def _fill_json(self, t: Trade) -> dict[str, Any]:
        return {
            "instType": "SPOT", "instId": t.symbol, "tradeId": str(t.trade_id), "ordId": str(t.order_id),
            "clOrdId": t.client_id, "billId": str(_bill_id(t)), "tag": "", "fillPx": fmt(t.price),
            "fillSz": fmt(t.qty), "side": t.side.lower(), "posSide": "net", "execType": "M" if t.maker else "T",
            "feeCcy": t.commission_asset, "fee": fmt(-t.commission), "ts": str(t.time_ms),
            "fillTime": str(t.time_ms),
        }  # fmt: skip


PAGE_MAX = 100  # OKX's `limit` on its list endpoints: default and maximum


def page(records: list[Any], q: dict[str, str], key: Callable[[Any], int]) -> list[Any]:
    """One page of a list endpoint as OKX cuts it (its v5 docs; ccxt's okx.py sends the same
    `after`/`before`/`limit`): newest first by id (`key`: ordId, or billId for fills); with
    ``after``, only records older than that id; with ``before``, only newer ones, the `limit`
    nearest it; at most ``limit`` records (default and maximum 100: a larger one gets 100)."""
    limit = min(int(q.get("limit") or PAGE_MAX), PAGE_MAX)
    ordered = sorted(records, key=key, reverse=True)
    if q.get("after"):
        ordered = [r for r in ordered if key(r) < int(q["after"])]
    if q.get("before"):
        newer = [r for r in ordered if key(r) > int(q["before"])]
        return newer[-limit:]
    return ordered[:limit]


def _within(ms: int, q: dict[str, str]) -> bool:
    """OKX's `begin`/`end` filters (milliseconds, both ends included)."""
    return int(q.get("begin") or 0) <= ms <= int(q.get("end") or 2**63)


def _bill_id(t: Trade) -> int:
    return t.trade_id + 1_000_000


# --- by hand -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = by_hand.parser(
        "python -m tests.live_sim.okx_sim",
        "A local OKX spot simulator on 127.0.0.1 for Hummingbot's okx connector.",
        8766, "okx-sim-key", "okx-sim-secret", "okx",
    )  # fmt: skip
    parser.add_argument("--passphrase", default="okx-sim-passphrase")
    args = parser.parse_args(argv)
    specs = by_hand.markets(args)
    mids = {f"{m.base}-{m.quote}": m.mid for m in specs}
    markets = [okx_market(m.base, m.quote) for m in specs]
    sim = OkxSim(args.api_key, args.api_secret, args.passphrase, markets, by_hand.balances(args), mids, port=args.port)  # type: ignore[arg-type]
    sim.key_can_trade = not args.read_only_key
    by_hand.serve_forever(
        sim, mids, args.walk_bps,
        lambda: f"OKX simulator on {sim.url} (REST {sim.url}/api/v5, WS {sim.ws_url}/ws/v5/public and "
                f"{sim.ws_url}/ws/v5/private); key {args.api_key!r}; Ctrl-C stops it",
    )  # fmt: skip


if __name__ == "__main__":
    main()
