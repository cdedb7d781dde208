"""Phase-2 exchange validation through ccxt: the adapter that collects facts, nothing more.

Why it is built this way:
- This module talks to exchanges and returns plain facts (`ExchangeFacts`); what they mean
  (validated or not) is decided by `commissioning.phase2`, a pure function. So the judgement is
  testable without a network and the network part has no opinions.
- Only read-only calls: server time, status, markets, balance, one ticker and, where ccxt
  exposes it, the key's permissions. Nothing here can place an order or move funds.
- Sandbox first: where ccxt knows a sandbox (`urls['test']`), it is used unless
  `commissioning.sandbox` is false.
- `commissioning.exchange_api_url` routes every ccxt URL to ``<url>/<real host>/<real path>``:
  a local fake exchange in tests, or a recording proxy. Unset (the default), ccxt talks to the
  real exchanges: going live is that one config change.
- Errors are classified through ccxt's exception hierarchy (`classify`), refined by the HTTP
  status where an exchange's ccxt class only raises a bare ExchangeError.
- Every request's time and rate-limit cost is recorded so rate-limit compliance is measured,
  not assumed.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from lyra_governor.config import ExchangeSettings, Settings

# --- error classification (pure) -------------------------------------------------------------


class ErrorKind(StrEnum):
    """What an exchange error means for Lyra, and so what to do about it."""

    CREDENTIALS = "credentials"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    NETWORK = "network"
    BAD_SYMBOL = "bad_symbol"
    NOT_SUPPORTED = "not_supported"
    EXCHANGE = "exchange"
    UNKNOWN = "unknown"


ACTIONS: dict[ErrorKind, str] = {
    ErrorKind.CREDENTIALS: "fix the API key (value, IP allow-list, permissions); retrying will not help",
    ErrorKind.RATE_LIMITED: "back off and retry later; Lyra keeps ccxt's rate limiter on",
    ErrorKind.UNAVAILABLE: "the exchange is unavailable or in maintenance; market data fails over to another source",
    ErrorKind.TIMEOUT: "the exchange did not answer in time; market data fails over, retry later",
    ErrorKind.NETWORK: "network problem reaching the exchange; market data fails over, check connectivity",
    ErrorKind.BAD_SYMBOL: "a configured pair does not exist there; fix exchanges.<name>.pairs",
    ErrorKind.NOT_SUPPORTED: "ccxt has no such call for this exchange; nothing to fix",
    ErrorKind.EXCHANGE: "the exchange rejected the request; read the message",
    ErrorKind.UNKNOWN: "unexpected error; read the message",
}

FAILOVER_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.NETWORK, ErrorKind.RATE_LIMITED})

_STATUS_KINDS = {
    401: ErrorKind.CREDENTIALS,
    403: ErrorKind.CREDENTIALS,
    429: ErrorKind.RATE_LIMITED,
    418: ErrorKind.RATE_LIMITED,
    503: ErrorKind.UNAVAILABLE,
    502: ErrorKind.UNAVAILABLE,
    504: ErrorKind.TIMEOUT,
}


def classify(exc: BaseException, http_status: int | None = None) -> ErrorKind:
    """Map a ccxt exception (most specific class first) to an `ErrorKind`.

    A bare `ExchangeError` (some ccxt classes, e.g. BTC Markets, raise nothing finer) is refined
    by the HTTP status of the failed response when it is known.
    """
    e = ccxt_errors
    ordered: list[tuple[type[BaseException], ErrorKind]] = [
        (e.NotSupported, ErrorKind.NOT_SUPPORTED),
        (e.PermissionDenied, ErrorKind.CREDENTIALS),
        (e.AuthenticationError, ErrorKind.CREDENTIALS),
        (e.RateLimitExceeded, ErrorKind.RATE_LIMITED),
        (e.DDoSProtection, ErrorKind.RATE_LIMITED),
        (e.OnMaintenance, ErrorKind.UNAVAILABLE),
        (e.ExchangeNotAvailable, ErrorKind.UNAVAILABLE),
        (e.RequestTimeout, ErrorKind.TIMEOUT),
        (e.NetworkError, ErrorKind.NETWORK),
        (e.BadSymbol, ErrorKind.BAD_SYMBOL),
    ]
    for cls, kind in ordered:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, e.ExchangeError):
        return _STATUS_KINDS.get(http_status or 0, ErrorKind.EXCHANGE)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, OSError):
        return ErrorKind.NETWORK
    return ErrorKind.UNKNOWN


_QUERY = re.compile(r"\?[^\s\"']*")


def scrub(message: str, secrets: Sequence[str] = (), limit: int = 240) -> str:
    """Error text safe for reports: no query strings (signatures), no credential values."""
    text = _QUERY.sub("?…", message)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """An exchange API key as Lyra's vault holds it. `repr` never shows the values."""

    api_key: str | None = None
    secret: str | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        present = [n for n in ("api_key", "secret", "passphrase") if getattr(self, n)]
        return f"Credentials(present={present})"

    def values(self) -> list[str]:
        return [v for v in (self.api_key, self.secret, self.passphrase) if v]


CCXT_CREDENTIAL_NAMES = {"apiKey": "api_key", "secret": "secret", "password": "passphrase"}


@dataclass(frozen=True)
class CallOutcome:
    name: str
    ok: bool
    latency_ms: float
    kind: ErrorKind | None = None
    error: str = ""


@dataclass(frozen=True)
class RequestStamp:
    t: float
    cost: float
    method: str
    path: str


@dataclass(frozen=True)
class Permissions:
    """The key's permissions; None means ccxt offers no way to read that one here."""

    read: bool | None = None
    trade: bool | None = None
    withdraw: bool | None = None
    source: str = "unverified"


@dataclass
class ExchangeFacts:
    """Everything the probe of one exchange saw; judged by `commissioning.phase2`."""

    name: str
    ccxt_id: str | None
    hummingbot: bool
    supported: bool
    pairs: list[str]
    sandbox_available: bool = False
    sandbox_used: bool = False
    hosts: list[str] = field(default_factory=list)
    routed_to: str | None = None
    missing_credentials: list[str] = field(default_factory=list)
    calls: dict[str, CallOutcome] = field(default_factory=dict)
    server_skew_ms: float | None = None
    status: str | None = None
    markets: int = 0
    missing_pairs: list[str] = field(default_factory=list)
    balance_currencies: int = 0
    ticker_last: float | None = None
    permissions: Permissions = field(default_factory=Permissions)
    rate_limit_ms: float = 0.0
    requests: list[RequestStamp] = field(default_factory=list)


@dataclass(frozen=True)
class FailoverFacts:
    """A market-data failover exercise: the primary failed, did the second source serve?"""

    symbol: str
    primary: str
    primary_kind: ErrorKind | None
    drill: bool
    served_by: str | None
    last: float | None
    attempts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ValidationFacts:
    exchanges: list[ExchangeFacts]
    failover: FailoverFacts | None
    api_url: str | None
    sandbox: bool
    phase: int


# --- ccxt plumbing ---------------------------------------------------------------------------


def ccxt_symbol(pair: str) -> str:
    """Lyra/Hummingbot ``BTC-USDT`` -> ccxt ``BTC/USDT``."""
    return pair.replace("-", "/")


def rewrite_urls(urls: Any, base_url: str, hostname: str | None) -> Any:
    """Every ``https://host/path`` in ccxt's URL tree -> ``<base_url>/host/path``."""
    if isinstance(urls, dict):
        return {k: rewrite_urls(v, base_url, hostname) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        text = urls.replace("{hostname}", hostname or "")
        parts = urlsplit(text)
        return f"{base_url.rstrip('/')}/{parts.netloc}{parts.path}"
    return urls


def api_hosts(urls: Any) -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and node.startswith("http"):
            found.add(urlsplit(node).netloc)

    walk(urls)
    return sorted(found)


class _Recorder:
    """Request stamps and the last HTTP status of one ccxt instance."""

    def __init__(self) -> None:
        self.stamps: list[RequestStamp] = []
        self.pending_cost = 1.0
        self.last_status: int | None = None


def _recording_class(base: type[Any]) -> type[Any]:
    """A subclass of a ccxt exchange class that records each request's time and cost."""

    class Recording(base):  # type: ignore[misc]
        lyra_recorder: _Recorder

        async def throttle(self, cost: Any = None) -> Any:
            self.lyra_recorder.pending_cost = float(cost) if cost is not None else 1.0
            return await super().throttle(cost)

        async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            rec = self.lyra_recorder
            rec.stamps.append(RequestStamp(time.time(), rec.pending_cost, method, urlsplit(url).path))
            rec.pending_cost = 1.0
            rec.last_status = None
            return await super().fetch(url, method, headers, body)

        def handle_errors(
            self,
            code: Any,
            reason: Any,
            url: Any,
            method: Any,
            headers: Any,
            body: Any,
            response: Any,
            request_headers: Any,
            request_body: Any,
        ) -> Any:
            self.lyra_recorder.last_status = int(code) if code else None
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


def make_exchange(
    ccxt_id: str,
    credentials: Credentials | None,
    *,
    sandbox: bool,
    api_url: str | None,
    timeout_s: float,
) -> Any:
    """A rate-limited async ccxt instance, sandboxed where possible, routed if asked."""
    base = getattr(ccxt_async, ccxt_id)
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_s * 1000)}
    if credentials is not None:
        for ccxt_name, ours in CCXT_CREDENTIAL_NAMES.items():
            value = getattr(credentials, ours)
            if value:
                config[ccxt_name] = value
    exchange = _recording_class(base)(config)
    exchange.lyra_recorder = _Recorder()
    exchange.options["fetchMarkets"] = {"types": ["spot"]}  # Lyra trades spot; skip futures listings
    if sandbox and exchange.urls.get("test"):
        exchange.set_sandbox_mode(True)
    if api_url:
        exchange.urls["api"] = rewrite_urls(exchange.urls["api"], api_url, getattr(exchange, "hostname", None))
    return exchange


def ccxt_supports(ccxt_id: str | None) -> bool:
    return bool(ccxt_id) and ccxt_id in ccxt_async.exchanges


def required_credentials(ccxt_id: str) -> list[str]:
    """Lyra vault names (api_key, secret, passphrase) this exchange's ccxt class requires."""
    cls = getattr(ccxt_async, ccxt_id)
    required = cls().describe().get("requiredCredentials", {})
    return [ours for theirs, ours in CCXT_CREDENTIAL_NAMES.items() if required.get(theirs)]


async def _timed(name: str, coro: Any, exchange: Any, secrets: Sequence[str]) -> tuple[CallOutcome, Any]:
    started = time.perf_counter()
    try:
        result = await coro
    except Exception as exc:  # every failure becomes a classified fact, never a crash
        kind = classify(exc, exchange.lyra_recorder.last_status)
        return CallOutcome(
            name, False, (time.perf_counter() - started) * 1000, kind, scrub(f"{type(exc).__name__}: {exc}", secrets)
        ), None
    return CallOutcome(name, True, (time.perf_counter() - started) * 1000), result


async def _permissions(exchange: Any, ccxt_id: str, secrets: Sequence[str]) -> tuple[CallOutcome, Permissions]:
    """Read the key's permissions where ccxt exposes an endpoint (Binance, OKX)."""
    if ccxt_id == "binance":
        outcome, raw = await _timed("permissions", exchange.sapi_get_account_apirestrictions(), exchange, secrets)
        if outcome.ok and isinstance(raw, dict):
            return outcome, Permissions(
                read=bool(raw.get("enableReading")),
                trade=bool(raw.get("enableSpotAndMarginTrading")) or bool(raw.get("enableMargin")),
                withdraw=bool(raw.get("enableWithdrawals")),
                source="binance GET /sapi/v1/account/apiRestrictions",
            )
        return outcome, Permissions()
    if ccxt_id == "okx":
        outcome, raw = await _timed("permissions", exchange.private_get_account_config(), exchange, secrets)
        data = raw.get("data") if isinstance(raw, dict) else None
        if outcome.ok and isinstance(data, list) and data:
            perms = {p.strip() for p in str(data[0].get("perm", "")).split(",") if p.strip()}
            return outcome, Permissions(
                read="read_only" in perms or bool(perms),
                trade="trade" in perms,
                withdraw="withdraw" in perms,
                source="okx GET /api/v5/account/config",
            )
        return outcome, Permissions()
    return CallOutcome(
        "permissions", False, 0.0, ErrorKind.NOT_SUPPORTED, "no permissions endpoint in ccxt"
    ), Permissions()


async def probe_exchange(
    name: str,
    cfg: ExchangeSettings,
    credentials: Credentials | None,
    *,
    sandbox: bool,
    api_url: str | None,
    timeout_s: float,
) -> ExchangeFacts:
    """Run the read-only calls against one exchange and return what was seen."""
    facts = ExchangeFacts(name, cfg.ccxt_id, cfg.hummingbot, ccxt_supports(cfg.ccxt_id), list(cfg.pairs))
    if not facts.supported or cfg.ccxt_id is None:
        return facts
    ccxt_id = cfg.ccxt_id
    creds = credentials or Credentials()
    facts.missing_credentials = [n for n in required_credentials(ccxt_id) if not getattr(creds, n)]
    usable = creds if not facts.missing_credentials else None
    exchange = make_exchange(ccxt_id, usable, sandbox=sandbox, api_url=api_url, timeout_s=timeout_s)
    secrets = creds.values()
    try:
        facts.sandbox_available = bool(exchange.urls.get("test"))
        facts.sandbox_used = bool(exchange.isSandboxModeEnabled) if hasattr(exchange, "isSandboxModeEnabled") else False
        facts.rate_limit_ms = float(exchange.rateLimit)
        facts.routed_to = api_url
        facts.hosts = api_hosts(exchange.urls["api"]) if api_url is None else _original_hosts(ccxt_id, sandbox)

        await _run_calls(exchange, facts, cfg, usable, secrets)
    finally:
        facts.requests = list(exchange.lyra_recorder.stamps)
        await exchange.close()
    return facts


STOP_KINDS = FAILOVER_KINDS | {ErrorKind.CREDENTIALS}


async def _run_calls(
    exchange: Any, facts: ExchangeFacts, cfg: ExchangeSettings, usable: Credentials | None, secrets: Sequence[str]
) -> None:
    """The read-only calls in order (status last). After an outage, timeout, 429 or bad key the rest are
    skipped: hammering a rate-limited or broken exchange proves nothing and can get a key banned."""

    def stop(outcome: CallOutcome) -> bool:
        return not outcome.ok and outcome.kind in STOP_KINDS

    outcome, server_ms = await _timed("time", exchange.fetch_time(), exchange, secrets)
    facts.calls["time"] = outcome
    if outcome.ok and isinstance(server_ms, int | float):
        facts.server_skew_ms = float(server_ms) - time.time() * 1000
    if stop(outcome):
        return

    outcome, markets = await _timed("markets", exchange.load_markets(), exchange, secrets)
    facts.calls["markets"] = outcome
    if outcome.ok and isinstance(markets, dict):
        facts.markets = len(markets)
        facts.missing_pairs = [p for p in cfg.pairs if ccxt_symbol(p) not in markets]
    if stop(outcome):
        return

    listed = [p for p in cfg.pairs if p not in facts.missing_pairs]
    if outcome.ok and listed:
        outcome, ticker = await _timed("ticker", exchange.fetch_ticker(ccxt_symbol(listed[0])), exchange, secrets)
        facts.calls["ticker"] = outcome
        if outcome.ok and isinstance(ticker, dict) and ticker.get("last") is not None:
            facts.ticker_last = float(ticker["last"])
        if stop(outcome):
            return

    if usable is None:
        await _status(exchange, facts, secrets)
        return
    outcome, balance = await _timed("balance", exchange.fetch_balance(), exchange, secrets)
    facts.calls["balance"] = outcome
    if outcome.ok and isinstance(balance, dict):
        facts.balance_currencies = len([k for k, v in balance.get("total", {}).items() if v])
    if stop(outcome):
        return
    outcome, perms = await _permissions(exchange, facts.ccxt_id or "", secrets)
    facts.calls["permissions"] = outcome
    facts.permissions = perms
    await _status(exchange, facts, secrets)


async def _status(exchange: Any, facts: ExchangeFacts, secrets: Sequence[str]) -> None:
    """Last on purpose: OKX charges 50 rate-limit units for it, so ccxt then waits 5.5 s."""
    outcome, status = await _timed("status", exchange.fetch_status(), exchange, secrets)
    facts.calls["status"] = outcome
    if outcome.ok and isinstance(status, dict):
        facts.status = str(status.get("status") or "unknown")


def _original_hosts(ccxt_id: str, sandbox: bool) -> list[str]:
    plain = make_exchange(ccxt_id, None, sandbox=sandbox, api_url=None, timeout_s=1)
    hosts = api_hosts(plain.urls["api"])
    return hosts


# --- market-data failover --------------------------------------------------------------------


def closed_local_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: a real, local, instant connection failure."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def ticker_with_failover(
    symbol: str, sources: Sequence[tuple[str, Any]]
) -> tuple[str | None, float | None, list[tuple[str, str]]]:
    """Fetch `symbol`'s ticker from the first source that answers.

    Falls over only on errors that another source can fix (maintenance, timeout, network, rate
    limit); a credentials or symbol error stops the search, because it is a configuration
    problem that must be seen, not hidden. Returns (served_by, last, [(source, error kind)]).
    """
    attempts: list[tuple[str, str]] = []
    for name, exchange in sources:
        try:
            ticker = await exchange.fetch_ticker(symbol)
        except Exception as exc:
            kind = classify(exc, getattr(getattr(exchange, "lyra_recorder", None), "last_status", None))
            attempts.append((name, kind.value))
            if kind not in FAILOVER_KINDS:
                return None, None, attempts
            continue
        last = ticker.get("last") if isinstance(ticker, dict) else None
        attempts.append((name, "ok"))
        return name, float(last) if last is not None else None, attempts
    return None, None, attempts


async def failover_exercise(
    facts: Sequence[ExchangeFacts],
    *,
    sandbox: bool,
    api_url: str | None,
    timeout_s: float,
) -> FailoverFacts | None:
    """Exercise market-data failover once.

    If a probed exchange's market data really failed with a failover-class error, that failure
    is the exercise. Otherwise it is a drill: the first healthy exchange is pointed at a closed
    local port (a genuine connection failure) and the second source must serve the same pair.
    """
    healthy = [f for f in facts if f.supported and f.calls.get("ticker") and f.calls["ticker"].ok]
    failed = [f for f in facts if f.supported and any(c.kind in FAILOVER_KINDS for c in f.calls.values() if not c.ok)]
    if failed:
        primary, drill = failed[0], False
    elif healthy:
        primary, drill = healthy[0], True
    else:
        return None
    for pair in primary.pairs:
        secondaries = [f for f in healthy if f.name != primary.name and pair in f.pairs and pair not in f.missing_pairs]
        if secondaries:
            break
    else:
        return FailoverFacts(
            ccxt_symbol(primary.pairs[0]) if primary.pairs else "?", primary.name, None, drill, None, None, []
        )
    second = secondaries[0]
    assert primary.ccxt_id is not None and second.ccxt_id is not None
    primary_url = closed_local_url() if drill else api_url
    sources = [
        (primary.name, make_exchange(primary.ccxt_id, None, sandbox=sandbox, api_url=primary_url, timeout_s=timeout_s)),
        (second.name, make_exchange(second.ccxt_id, None, sandbox=sandbox, api_url=api_url, timeout_s=timeout_s)),
    ]
    try:
        served_by, last, attempts = await ticker_with_failover(ccxt_symbol(pair), sources)
    finally:
        for _, ex in sources:
            await ex.close()
    first_kind = ErrorKind(attempts[0][1]) if attempts and attempts[0][1] != "ok" else None
    return FailoverFacts(ccxt_symbol(pair), primary.name, first_kind, drill, served_by, last, attempts)


async def validate_exchanges(
    settings: Settings,
    credentials: Mapping[str, Credentials],
    names: Sequence[str] | None = None,
    *,
    phase: int = 2,
    progress: Callable[[str, ExchangeFacts], None] | None = None,
) -> ValidationFacts:
    """Probe the configured exchanges concurrently (each with its own rate limiter), then
    exercise market-data failover. Facts only: judge them with `commissioning.phase2`."""
    opts = settings.commissioning
    chosen = list(names) if names else list(settings.exchanges)

    async def one(name: str) -> ExchangeFacts:
        facts = await probe_exchange(
            name,
            settings.exchanges[name],
            credentials.get(name),
            sandbox=opts.sandbox,
            api_url=opts.exchange_api_url,
            timeout_s=opts.timeout_s,
        )
        if progress is not None:
            progress(name, facts)
        return facts

    probed = list(await asyncio.gather(*(one(n) for n in chosen)))
    failover = await failover_exercise(
        probed, sandbox=opts.sandbox, api_url=opts.exchange_api_url, timeout_s=opts.timeout_s
    )
    return ValidationFacts(probed, failover, opts.exchange_api_url, opts.sandbox, phase)


def credentials_from_vault(vault: Any, names: Sequence[str]) -> dict[str, Credentials]:
    """Read ``exchange/<name>/api_key|secret|passphrase`` for each exchange (absent = None)."""
    if vault is None:
        return {}
    present = set(vault.names())
    out: dict[str, Credentials] = {}
    for name in names:
        values = {
            field_name: vault.get(f"exchange/{name}/{field_name}")
            if f"exchange/{name}/{field_name}" in present
            else None
            for field_name in ("api_key", "secret", "passphrase")
        }
        out[name] = Credentials(**values)
    return out
