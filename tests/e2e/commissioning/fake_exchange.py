"""A fake exchange: a real HTTP server on 127.0.0.1 (port 0) that ccxt is pointed at.

It speaks just enough of six exchanges' REST APIs (Binance, OKX, Kraken, Gate.io, BTC Markets,
WhiteBIT) for Lyra's read-only validation: server time, system status, markets, balance, ticker
and the key-permission endpoints. Each exchange can be told to play a scenario instead:

- ``auth``: the exchange's own "invalid API key" answer on private calls (HTTP 401);
- ``rate_limit``: HTTP 429 with the exchange's "too many requests" body on every call;
- ``timeout``: the server holds the request longer than the client's timeout;
- ``maintenance``: the status endpoint reports maintenance and every other call answers 503;
- ``withdraw``: the key-permission endpoint reports withdrawal enabled;
- ``trade``: the key-permission endpoint reports trading enabled.

Requests are recorded (time, exchange, host, method, path, headers) so tests can check the
sandbox host was used, the OKX demo header was sent and calls were spaced as ccxt's rate limit
requires. The URL layout is ``http://127.0.0.1:<port>/<real host>/<real path>``: Lyra rewrites
every ccxt API URL that way when ``commissioning.exchange_api_url`` is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOSTS = {
    "api.binance.com": "binance",
    "testnet.binance.vision": "binance",
    "www.okx.com": "okx",
    "api.kraken.com": "kraken",
    "api.gateio.ws": "gate",
    "api-testnet.gateapi.io": "gate",
    "api.btcmarkets.net": "btcmarkets",
    "whitebit.com": "whitebit",
}

PRICES = {"BTC": "65000.5", "ETH": "3200.25", "SOL": "150.1"}

Reply = tuple[int, Any]


@dataclass(frozen=True)
class Recorded:
    t: float
    exchange: str
    host: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeExchange:
    """Start with `start()` (or the `serving()` context manager); stop with `stop()`."""

    scenarios: dict[str, str] = field(default_factory=dict)
    hold_s: float = 3.0
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def play(self, exchange: str, scenario: str) -> None:
        self.scenarios[exchange] = scenario

    def calls(self, exchange: str) -> list[Recorded]:
        return [r for r in self.requests if r.exchange == exchange]

    def start(self) -> FakeExchange:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                split = urlsplit(self.path)
                host, _, path = split.path.lstrip("/").partition("/")
                exchange = HOSTS.get(host, "unknown")
                fake.requests.append(
                    Recorded(time.time(), exchange, host, self.command, "/" + path, dict(self.headers.items()))
                )
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                status, payload = fake.answer(exchange, self.command, "/" + path, query, body)
                if status == 0:  # a timeout: hold the connection past the client's deadline
                    time.sleep(fake.hold_s)
                    status, payload = 504, {"error": "held too long"}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- answers -------------------------------------------------------------------------------

    def answer(self, exchange: str, method: str, path: str, query: dict[str, str], body: str) -> Reply:
        scenario = self.scenarios.get(exchange, "ok")
        routes = ROUTES.get(exchange)
        if routes is None:
            return 404, {"error": f"unknown host for {path}"}
        if scenario == "timeout":
            return 0, None
        if scenario == "rate_limit":
            return RATE_LIMITED[exchange]
        if scenario == "maintenance":
            if path in STATUS_PATHS[exchange]:
                return MAINTENANCE_STATUS[exchange]
            return MAINTENANCE_OTHER.get(exchange, (503, {"error": "service unavailable: maintenance"}))
        private = any(path.startswith(p) for p in PRIVATE_PREFIXES[exchange])
        if scenario == "auth" and private:
            return AUTH_ERRORS[exchange]
        handler = routes.get((method, path))
        if handler is None:
            for (m, prefix), h in routes.items():
                if m == method and prefix.endswith("*") and path.startswith(prefix[:-1]):
                    handler = h
                    break
        if handler is None:
            return 404, {"error": f"{method} {path} is not served by the fake {exchange}"}
        return 200, handler(Call(path, query, body, scenario))


@dataclass(frozen=True)
class Call:
    path: str
    query: dict[str, str]
    body: str
    scenario: str


def now_ms() -> int:
    return int(time.time() * 1000)


# --- Binance --------------------------------------------------------------------------------------


def _binance_symbol(base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
        ],
    }


def _binance_restrictions(call: Call) -> dict[str, Any]:
    return {
        "ipRestrict": False,
        "enableReading": True,
        "enableSpotAndMarginTrading": call.scenario == "trade",
        "enableWithdrawals": call.scenario == "withdraw",
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": False,
        "createTime": 1700000000000,
    }


BINANCE: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/api/v3/time"): lambda c: {"serverTime": now_ms()},
    ("GET", "/sapi/v1/system/status"): lambda c: {"status": 0, "msg": "normal"},
    ("GET", "/api/v3/exchangeInfo"): lambda c: {
        "timezone": "UTC",
        "serverTime": now_ms(),
        "symbols": [_binance_symbol(b, q) for b, q in (("BTC", "USDT"), ("ETH", "USDT"), ("SOL", "USDT"))],
    },
    ("GET", "/sapi/v1/capital/config/getall"): lambda c: [],
    ("GET", "/sapi/v1/margin/allPairs"): lambda c: [],
    ("GET", "/sapi/v1/margin/isolated/allPairs"): lambda c: [],
    ("GET", "/api/v3/account"): lambda c: {
        "canTrade": c.scenario == "trade",
        "canWithdraw": c.scenario == "withdraw",
        "updateTime": now_ms(),
        "accountType": "SPOT",
        "balances": [
            {"asset": "USDT", "free": "1000.0", "locked": "0.0"},
            {"asset": "BTC", "free": "0.01", "locked": "0"},
        ],
    },
    ("GET", "/sapi/v1/account/apiRestrictions"): _binance_restrictions,
    ("GET", "/api/v3/ticker/24hr"): lambda c: {
        "symbol": c.query.get("symbol", "BTCUSDT"),
        "lastPrice": PRICES["BTC"],
        "bidPrice": "65000.0",
        "askPrice": "65001.0",
        "openTime": now_ms() - 86_400_000,
        "closeTime": now_ms(),
        "volume": "100",
        "quoteVolume": "6500000",
    },
}

# --- OKX ------------------------------------------------------------------------------------------


def _okx(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


def _okx_instrument(base: str, quote: str) -> dict[str, Any]:
    return {
        "instType": "SPOT",
        "instId": f"{base}-{quote}",
        "baseCcy": base,
        "quoteCcy": quote,
        "settleCcy": "",
        "ctVal": "",
        "ctMult": "",
        "ctValCcy": "",
        "listTime": "1606468572000",
        "expTime": "",
        "lever": "10",
        "tickSz": "0.1",
        "lotSz": "0.00000001",
        "minSz": "0.00001",
        "ctType": "",
        "alias": "",
        "state": "live",
        "maxLmtSz": "10000",
        "maxMktSz": "1000000",
        "uly": "",
        "instFamily": "",
    }


def _okx_perm(call: Call) -> str:
    perms = ["read_only"]
    if call.scenario == "trade":
        perms.append("trade")
    if call.scenario == "withdraw":
        perms.append("withdraw")
    return ",".join(perms)


OKX: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/api/v5/public/time"): lambda c: _okx([{"ts": str(now_ms())}]),
    ("GET", "/api/v5/system/status"): lambda c: _okx([]),
    ("GET", "/api/v5/public/instruments"): lambda c: _okx(
        [_okx_instrument(b, q) for b, q in (("BTC", "USDT"), ("ETH", "USDT"), ("SOL", "USDT"))]
    ),
    ("GET", "/api/v5/asset/currencies"): lambda c: _okx([]),
    ("GET", "/api/v5/account/balance"): lambda c: _okx(
        [{"uTime": str(now_ms()), "details": [{"ccy": "USDT", "eq": "1000", "availBal": "1000", "frozenBal": "0"}]}]
    ),
    ("GET", "/api/v5/account/config"): lambda c: _okx(
        [{"uid": "1", "acctLv": "1", "perm": _okx_perm(c), "posMode": "net_mode", "label": "lyra"}]
    ),
    ("GET", "/api/v5/market/ticker"): lambda c: _okx(
        [
            {
                "instType": "SPOT",
                "instId": c.query.get("instId", "BTC-USDT"),
                "last": PRICES["BTC"],
                "bidPx": "65000",
                "askPx": "65001",
                "ts": str(now_ms()),
            }
        ]
    ),
}

# --- Kraken ---------------------------------------------------------------------------------------


def _kraken(result: Any) -> dict[str, Any]:
    return {"error": [], "result": result}


def _kraken_pair(altname: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "altname": altname,
        "wsname": f"{base}/{quote}",
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "pair_decimals": 1,
        "cost_decimals": 5,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [[0, 0.26]],
        "fees_maker": [[0, 0.16]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.0001",
        "costmin": "0.5",
        "tick_size": "0.1",
        "status": "online",
    }


KRAKEN: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/0/public/Time"): lambda c: _kraken({"unixtime": now_ms() // 1000, "rfc1123": ""}),
    ("GET", "/0/public/SystemStatus"): lambda c: _kraken({"status": "online", "timestamp": "2026-11-25T00:00:00Z"}),
    ("GET", "/0/public/Assets"): lambda c: _kraken(
        {
            code: {"aclass": "currency", "altname": alt, "decimals": 8, "display_decimals": 5, "status": "enabled"}
            for code, alt in (("XXBT", "XBT"), ("XETH", "ETH"), ("ZUSD", "USD"), ("USDT", "USDT"))
        }
    ),
    ("GET", "/0/public/AssetPairs"): lambda c: _kraken(
        {
            "XXBTZUSD": _kraken_pair("XBTUSD", "XXBT", "ZUSD"),
            "XETHZUSD": _kraken_pair("ETHUSD", "XETH", "ZUSD"),
            "XBTUSDT": _kraken_pair("XBTUSDT", "XXBT", "USDT"),
        }
    ),
    ("POST", "/0/private/BalanceEx"): lambda c: _kraken(
        {"ZUSD": {"balance": "1000.0000", "hold_trade": "0"}, "XXBT": {"balance": "0.0100000000", "hold_trade": "0"}}
    ),
    ("GET", "/0/public/Ticker"): lambda c: _kraken(
        {
            "XXBTZUSD": {
                "a": [PRICES["BTC"], "1", "1.0"],
                "b": ["65000.0", "1", "1.0"],
                "c": [PRICES["BTC"], "0.1"],
                "v": ["100", "200"],
                "p": [PRICES["BTC"], PRICES["BTC"]],
                "t": [10, 20],
                "l": ["64000", "64000"],
                "h": ["66000", "66000"],
                "o": "64500",
            }
        }
    ),
}

# --- Gate.io --------------------------------------------------------------------------------------


def _gate_pair(base: str, quote: str) -> dict[str, Any]:
    return {
        "id": f"{base}_{quote}",
        "base": base,
        "quote": quote,
        "fee": "0.2",
        "min_base_amount": "0.0001",
        "min_quote_amount": "1",
        "amount_precision": 4,
        "precision": 2,
        "trade_status": "tradable",
        "sell_start": 0,
        "buy_start": 0,
    }


GATE: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/api/v4/spot/time"): lambda c: {"server_time": now_ms()},
    ("GET", "/api/v4/spot/currencies"): lambda c: [],
    ("GET", "/api/v4/account/detail"): lambda c: {"user_id": 1, "ip_whitelist": [], "key": {"mode": 1}},
    ("GET", "/api/v4/margin/currency_pairs"): lambda c: [],
    ("GET", "/api/v4/spot/currency_pairs"): lambda c: [_gate_pair("BTC", "USDT"), _gate_pair("ETH", "USDT")],
    ("GET", "/api/v4/spot/accounts"): lambda c: [
        {"currency": "USDT", "available": "1000", "locked": "0"},
        {"currency": "BTC", "available": "0.01", "locked": "0"},
    ],
    ("GET", "/api/v4/spot/tickers"): lambda c: [
        {
            "currency_pair": c.query.get("currency_pair", "BTC_USDT"),
            "last": PRICES["BTC"],
            "lowest_ask": "65001",
            "highest_bid": "65000",
            "base_volume": "100",
            "quote_volume": "6500000",
        }
    ],
}

# --- BTC Markets ----------------------------------------------------------------------------------


def _btcm_market(base: str, quote: str) -> dict[str, Any]:
    return {
        "marketId": f"{base}-{quote}",
        "baseAssetName": base,
        "quoteAssetName": quote,
        "minOrderAmount": "0.0001",
        "maxOrderAmount": "1000000",
        "amountDecimals": "8",
        "priceDecimals": "2",
        "status": "Online",
    }


BTCMARKETS: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/v3/time"): lambda c: {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())},
    ("GET", "/v3/markets"): lambda c: [_btcm_market("BTC", "AUD"), _btcm_market("ETH", "AUD")],
    ("GET", "/v3/accounts/me/balances"): lambda c: [
        {"assetName": "AUD", "balance": "1500", "available": "1500", "locked": "0"},
    ],
    ("GET", "/v3/markets/*"): lambda c: {
        "marketId": c.path.split("/")[3],
        "bestBid": "99000.00",
        "bestAsk": "99010.00",
        "lastPrice": "99005.00",
        "volume24h": "10",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
    },
}

# --- WhiteBIT -------------------------------------------------------------------------------------


def _whitebit_market(base: str, quote: str) -> dict[str, Any]:
    return {
        "name": f"{base}_{quote}",
        "stock": base,
        "money": quote,
        "stockPrec": "6",
        "moneyPrec": "2",
        "feePrec": "4",
        "makerFee": "0.1",
        "takerFee": "0.1",
        "minAmount": "0.0001",
        "minTotal": "5",
        "maxTotal": "10000000",
        "tradesEnabled": True,
        "isCollateral": False,
        "type": "spot",
    }


WHITEBIT: dict[tuple[str, str], Callable[[Call], Any]] = {
    ("GET", "/api/v4/public/time"): lambda c: {"time": now_ms() // 1000},
    ("GET", "/api/v4/public/ping"): lambda c: ["pong"],
    ("GET", "/api/v4/public/assets"): lambda c: {},
    ("GET", "/api/v4/public/markets"): lambda c: [_whitebit_market("BTC", "USDT"), _whitebit_market("ETH", "USDT")],
    ("POST", "/api/v4/trade-account/balance"): lambda c: {
        "USDT": {"available": "1000", "freeze": "0"},
        "BTC": {"available": "0.01", "freeze": "0"},
    },
    ("GET", "/api/v1/public/ticker"): lambda c: {
        "success": True,
        "message": None,
        "result": {
            "bid": "65000",
            "ask": "65001",
            "open": "64000",
            "high": "66000",
            "low": "63000",
            "last": PRICES["BTC"],
            "volume": "100",
            "deal": "6500000",
            "change": "1.5",
        },
    },
}

ROUTES: dict[str, dict[tuple[str, str], Callable[[Call], Any]]] = {
    "binance": BINANCE,
    "okx": OKX,
    "kraken": KRAKEN,
    "gate": GATE,
    "btcmarkets": BTCMARKETS,
    "whitebit": WHITEBIT,
}

PRIVATE_PREFIXES = {
    "binance": ("/api/v3/account", "/sapi/v1/capital", "/sapi/v1/margin", "/sapi/v1/account"),
    "okx": ("/api/v5/account", "/api/v5/asset"),
    "kraken": ("/0/private",),
    "gate": ("/api/v4/spot/accounts", "/api/v4/account", "/api/v4/spot/currencies"),
    "btcmarkets": ("/v3/accounts",),
    "whitebit": ("/api/v4/trade-account", "/api/v4/main-account"),
}

AUTH_ERRORS: dict[str, Reply] = {
    "binance": (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
    "okx": (401, {"code": "50111", "msg": "Invalid OK-ACCESS-KEY", "data": []}),
    "kraken": (200, {"error": ["EAPI:Invalid key"]}),
    "gate": (401, {"label": "INVALID_KEY", "message": "Invalid key provided"}),
    "btcmarkets": (401, {"code": "UnAuthorized", "message": "invalid access token"}),
    "whitebit": (401, {"code": 10, "message": "Unauthorized request."}),
}

RATE_LIMITED: dict[str, Reply] = {
    "binance": (429, {"code": -1003, "msg": "Too many requests; current limit is 1200 request weight per 1 MINUTE."}),
    "okx": (429, {"code": "50011", "msg": "Too Many Requests", "data": []}),
    "kraken": (429, {"error": ["EAPI:Rate limit exceeded"]}),
    "gate": (429, {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"}),
    "btcmarkets": (429, {"code": "TooManyRequests", "message": "too many requests"}),
    "whitebit": (429, {"code": 429, "message": "Too many requests"}),
}

STATUS_PATHS = {
    "binance": ("/sapi/v1/system/status",),
    "okx": ("/api/v5/system/status",),
    "kraken": ("/0/public/SystemStatus",),
    "gate": (),
    "btcmarkets": (),
    "whitebit": (),
}

MAINTENANCE_STATUS: dict[str, Reply] = {
    "binance": (200, {"status": 1, "msg": "system maintenance"}),
    "okx": (200, _okx([{"state": "ongoing", "title": "maintenance", "begin": "0", "end": "0", "href": ""}])),
    "kraken": (200, _kraken({"status": "maintenance", "timestamp": "2026-11-25T00:00:00Z"})),
}

MAINTENANCE_OTHER: dict[str, Reply] = {
    "okx": (503, {"code": "50001", "msg": "Service temporarily unavailable, please try again later", "data": []}),
    "kraken": (200, {"error": ["EService:Unavailable"]}),
}


@contextmanager
def serving(**scenarios: str) -> Iterator[FakeExchange]:
    fake = FakeExchange(scenarios=dict(scenarios)).start()
    try:
        yield fake
    finally:
        fake.stop()
