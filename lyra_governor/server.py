"""`lyra-governor serve`: /forensic/status, /metrics and /healthz over the shared store.

Why the standard library: three read-only GET routes need no framework, and every extra
dependency is one more thing in the trading host's supply chain. The routes are answered on one
asyncio event loop and the store is read in worker threads (`GovernorServer`), so neither a slow
client nor a store read holds up another request, and a cached answer costs the host's CPU
almost nothing while bots trade beside it.

Freshness: /metrics and /forensic/status are computed at most once per second however many
clients ask (`Refreshed`): an answer is at most twice `METRICS_CACHE_S` (`STATUS_CACHE_S`) old,
2 s, and up to `STALE_MAX_S` only while a slow computation of the next one is under way.

Security: binds 127.0.0.1 by default. Any request that does not come from loopback must carry
``Authorization: Bearer <token>`` (compared in constant time); binding a non-loopback address
is refused unless the operator passes ``--allow-remote`` *and* a token exists
(``LYRA_SERVER_TOKEN`` or the vault secret ``server/token``). Status output never contains
secrets: it is built from the ledger and audit trail only.

The server also drives the compliance schedule (`CheckpointRunner.run_due`) once a minute, so
checkpoint ages stay fresh while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import importlib
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import Any

import sqlalchemy as sa
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from lyra_governor.config import Settings
from lyra_governor.errors import ConfigError, LyraError, StoreUnavailable
from lyra_governor.ledger import Ledger
from lyra_governor.metrics import LyraCollector, VerifyCache, build_registry
from lyra_governor.redact import redact
from lyra_governor.status import ActivityWindow, collect_status
from lyra_governor.store import is_sqlite
from lyra_governor.store_budget import acquire_checkpointer, release_checkpointer

log = logging.getLogger(__name__)

TOKEN_ENV = "LYRA_SERVER_TOKEN"  # noqa: S105 - the variable's name, not a secret
TOKEN_SECRET = "server/token"  # noqa: S105 - the vault entry's name, not a secret
CHECKPOINT_EVERY_S = 60.0
STATUS_CACHE_S = 1.0
METRICS_CACHE_S = 1.0  # Prometheus scrapes every 15 s or so: one computation serves every client
STALE_MAX_S = 30.0  # the oldest answer served while a newer one is being computed
VERIFY_EVERY_S = 1.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


def resolve_token(settings: Settings) -> str | None:
    """The access token: ``LYRA_SERVER_TOKEN``, else the vault's ``server/token``, else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        vault_module = importlib.import_module("lyra_governor.vault")
    except ImportError:
        return None
    try:
        vault: Any = vault_module.open_vault(settings)
        if vault is not None and TOKEN_SECRET in vault.names():
            secret = str(vault.get(TOKEN_SECRET)).strip()
            return secret or None
    except LyraError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"could not read {TOKEN_SECRET} from the vault ({type(exc).__name__}); set {TOKEN_ENV}"
        ) from None
    return None


def check_bind(host: str, allow_remote: bool, token: str | None) -> None:
    """Refuse an exposed bind without the explicit flag and a token (one clear sentence each)."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(
            f"binding {host} would expose the governor beyond this machine; pass --allow-remote "
            f"(and set {TOKEN_ENV}) or use --host 127.0.0.1"
        )
    if not token:
        raise ConfigError(
            f"--allow-remote needs an access token: set {TOKEN_ENV} or store it in the vault as {TOKEN_SECRET}"
        )


class Refreshed:
    """A value computed from the store at most once per `every_s`, however many clients ask.

    While clients keep asking, one background thread computes the next value and they get the
    last one at once, never queueing behind a computation (it is at most `every_s` plus one
    computation old). A value older than `2 * every_s` (an idle server) is computed while the
    request waits, one request at a time, so the first answer after a pause is fresh.

    A failed computation (the store is away) is the answer for `every_s`: requests fail at once
    with its error, then the next request computes again. Before, the error was kept until a
    background computation succeeded, but none was started once the last value had aged: after
    a store restart the server answered 503 for good (found by the soak, tests/soak.py)."""

    def __init__(self, compute: Callable[[], Any], every_s: float) -> None:
        self.compute = compute
        self.every_s = every_s
        self._lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._value: tuple[float, Any] | None = None
        self._error: tuple[float, Exception] | None = None
        self._refreshing = False

    @property
    def last_error(self) -> Exception | None:
        return None if self._error is None else self._error[1]

    def _answer(self, now: float) -> tuple[bool, Any]:
        """(True, value) or raises when a cached value or a recent failure answers at once."""
        value, error, busy = self._value, self._error, self._refreshing
        if error is not None and now - error[0] <= self.every_s:
            raise error[1]
        if error is None and value is not None:
            age = now - value[0]
            if age <= 2 * self.every_s or (busy and age <= STALE_MAX_S):
                return True, value[1]  # the next one is being computed: do not queue behind it
        return False, None

    def ready(self) -> tuple[bool, Any]:
        """(True, value) when an answer can be given at once (a recent failure is raised), and
        the background refresh started when one is due; (False, None) when `get` would compute
        while the caller waits. The event loop asks this, and runs `get` in a worker thread
        only when it says False, so the loop itself never waits for the store."""
        now = time.monotonic()
        with self._lock:
            value = self._value
            if (
                value is not None
                and self._error is None
                and self.every_s < now - value[0] <= 2 * self.every_s
                and not self._refreshing
            ):
                self._refreshing = True
                threading.Thread(target=self._refresh, daemon=True).start()
            return self._answer(now)

    def get(self) -> Any:
        found, answer = self.ready()
        if found:
            return answer
        with self._compute_lock:
            with self._lock:  # another request may have computed it (or failed) meanwhile
                found, answer = self._answer(time.monotonic())
            if found:
                return answer
            try:
                fresh = self.compute()
            except Exception as exc:
                with self._lock:
                    self._error = (time.monotonic(), exc)
                raise
            with self._lock:
                self._value, self._error = (time.monotonic(), fresh), None
            return fresh

    def _refresh(self) -> None:
        try:
            with self._compute_lock:
                fresh = self.compute()
        except Exception as exc:  # the store went away: the next requests say so
            with self._lock:
                self._error = (time.monotonic(), exc)
        else:
            with self._lock:
                self._value, self._error = (time.monotonic(), fresh), None
        finally:
            self._refreshing = False


def _json_body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, default=str, sort_keys=True).encode()


class GovernorServer:
    """The routes on one asyncio event loop (`serve_forever`'s thread), the store read in
    worker threads.

    Why one loop and not a thread per connection (`ThreadingHTTPServer`, before): a cached
    answer is bytes already made, yet each request cost ~450 us of the server's CPU and a dozen
    handovers of the GIL: a new thread (whose start the accept loop waits for), the headers
    parsed by the email package, the headers and the body sent in two calls. On a 2-core host
    shared with trading bots, 16 readers' threads queued for the GIL behind each other and
    behind the cache's refresh (the /metrics p99 of issue 17). On the loop a cached answer is
    one read and one write of the socket, and no request waits for another: what reads the
    store (`/healthz`, an answer that has to be computed while the client waits) runs in a
    worker thread and the loop goes on serving.

    Same interface as the socketserver it replaces: `serve_forever` (until `shutdown`, from
    another thread), `server_close`, `server_address`, `url`."""

    # the listen backlog: a small one drops the connections of concurrent clients past it,
    # which the kernel retries a second later (a 1 s p99 with 16 readers)
    request_queue_size = 128

    def __init__(
        self,
        settings: Settings,
        host: str,
        port: int,
        token: str | None,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.token = token
        self.ledger = ledger
        self.clock = clock
        # the chain's records since the last check, walked each second: with two bots trading
        # ~20 ms holding the GIL, where every 5 s (VerifyCache's default) it was ~95 ms at once,
        # which every request in flight waited for
        self.verify = VerifyCache(every_s=VERIFY_EVERY_S)
        self.collector = LyraCollector(settings, ledger, clock, self.verify)
        self.registry = build_registry(self.collector)
        self._status = Refreshed(self._compute_status, STATUS_CACHE_S)
        self._metrics = Refreshed(lambda: generate_latest(self.registry), METRICS_CACHE_S)
        self.activity = ActivityWindow(settings.consensus.mandate_ttl_s)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=self.request_queue_size)
        self.socket.setblocking(False)
        name = self.socket.getsockname()
        self.server_address: tuple[str, int] = (str(name[0]), int(name[1]))
        self.wal = acquire_checkpointer(ledger.engine.url.database if is_sqlite(ledger.engine) else None)
        self.started_at = clock()
        self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lyra-serve")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown = threading.Event()
        self._stopped = threading.Event()
        self._answers_per_s = float(settings.server.max_answers_per_s)
        self._next_slot = 0.0  # the event loop's time at which the next answer may be sent

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until `shutdown` (`poll_interval` is socketserver's; the loop needs none)."""
        del poll_interval
        self._stopped.clear()
        # What exists now (modules, settings, this server) lives as long as the process: frozen
        # out of the cyclic collector's full passes, which walk every tracked object holding the
        # GIL, and so every request in flight. With two bots trading those passes took 110-238 ms
        # in the server every few seconds; 9-35 ms frozen (tests/e2e/operator/test_server_loop.py).
        gc.collect()
        gc.freeze()
        try:
            asyncio.run(self._serve())
        finally:
            self._stopped.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop = loop
        if self._shutdown.is_set():
            return
        served = await loop.create_server(lambda: _Connection(self), sock=self.socket, backlog=self.request_queue_size)
        try:
            await self._stop.wait()
        finally:
            self._loop = None
            served.close()
            self._workers.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop `serve_forever` and wait until it has returned (call it from another thread)."""
        self._shutdown.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
            self._stopped.wait()

    def server_close(self) -> None:
        release_checkpointer(self.wal)
        self.wal = None
        self._workers.shutdown(wait=False, cancel_futures=True)
        self.socket.close()

    def _compute_status(self) -> tuple[dict[str, Any], bytes]:
        """The status and its JSON body, encoded once per computation: 16 clients each
        encoding 15 kB of JSON per request was CPU the other requests queued behind."""
        audit_result = self.verify.get(self.ledger.engine)
        status = collect_status(
            self.settings, ledger=self.ledger, now=self.clock(), audit_result=audit_result, activity=self.activity
        )
        return status, _json_body(status)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._status.get()[0]
        return result

    def status_body(self) -> bytes:
        """/forensic/status's body: at most `STATUS_CACHE_S` plus one computation old."""
        result: bytes = self._status.get()[1]
        return result

    def metrics(self) -> bytes:
        result: bytes = self._metrics.get()
        return result

    def healthy(self) -> tuple[bool, str]:
        try:
            state = self.ledger.state()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            return False, f"store unavailable: {type(exc).__name__}"
        return True, state.trading_state.value

    def authorized(self, client: str, authorization: str) -> bool:
        if is_loopback(client):
            return True
        token = self.token
        if not token or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), token.encode())

    async def paced(self) -> None:
        """Wait for this answer's turn: at most `server.max_answers_per_s` answers a second,
        one every 1/rate seconds, however many clients ask at once.

        Why: on a host shared with trading bots every answer costs CPU twice, the server's and
        the client's, and readers asking as fast as they can took a core from the bots (their
        review p99 3.35x while 16 readers read, bench/store_readers.py). A client waiting its
        turn costs neither. Prometheus asks a target every 15 s or so: a budget of hundreds of
        answers a second holds no scraper back."""
        if self._answers_per_s <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self._answers_per_s
        if slot > now:
            await asyncio.sleep(slot - now)

    async def answer(self, path: str) -> tuple[int, bytes, str]:
        """(status code, body, content type) for a GET of `path` by an authorized client."""
        await self.paced()
        try:
            if path == "/metrics":
                return 200, await self._cached(self._metrics, lambda v: v), CONTENT_TYPE_LATEST
            if path == "/forensic/status":
                return 200, await self._cached(self._status, lambda v: v[1]), JSON
            if path == "/healthz":
                ok, detail = await asyncio.get_running_loop().run_in_executor(self._workers, self.healthy)
                return 200 if ok else 503, _json_body({"ok": ok, "trading_state" if ok else "error": detail}), JSON
            if path == "/":
                return 200, _json_body({"routes": ["/forensic/status", "/metrics", "/healthz"]}), JSON
            body = {"error": f"no route {path}; try /forensic/status, /metrics or /healthz"}
            return 404, _json_body(body), JSON
        except (StoreUnavailable, sa.exc.SQLAlchemyError) as exc:
            body = {"error": redact(f"store unavailable: {str(exc).splitlines()[0][:300]}")}
            return 503, _json_body(body), JSON
        except Exception:
            log.exception("error serving %s", path)
            return 500, _json_body({"error": "internal error; see the server log"}), JSON

    async def _cached(self, cached: Refreshed, body: Callable[[Any], bytes]) -> bytes:
        """The cached answer's bytes at once, or computed in a worker thread while the loop serves on."""
        found, value = cached.ready()
        if not found:
            value = await asyncio.get_running_loop().run_in_executor(self._workers, cached.get)
        return body(value)


JSON = "application/json"
WORKERS = 4  # threads for what reads the store while a client waits (computations queue on one lock)
MAX_HEAD = 16 * 1024  # a request's line and headers; a GET has no body
REQUEST_TIMEOUT_S = 30.0  # a client that has not sent its request by then is closed
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}  # fmt: skip


class _Connection(asyncio.Protocol):
    """One client's connection: one request, one answer, closed (HTTP/1.0, as before)."""

    def __init__(self, server: GovernorServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.timer: asyncio.TimerHandle | None = None
        self.answering = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.answering:
            return  # one request per connection; what follows it is not read
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD or (end < 0 and len(self.buffer) > MAX_HEAD):
            self.answering = True
            self._reply("", 431, _json_body({"error": "request headers too large"}), JSON)
            return
        if end < 0:
            return
        self.answering = True
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        asyncio.get_running_loop().create_task(self._request(head))

    async def _request(self, head: list[str]) -> None:
        line = head[0]
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._reply("", 400, _json_body({"error": f"bad request line {line[:100]!r}"}), JSON)
            return
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            self._reply(method, 501, _json_body({"error": f"unsupported method {method[:20]}"}), JSON, line)
            return
        authorization = ""
        for header in head[1:]:
            name, _, value = header.partition(":")
            if name.strip().lower() == "authorization":
                authorization = value.strip()
        if not self.server.authorized(self.client, authorization):
            body = {"error": "a bearer token is required for requests from other machines"}
            self._reply(method, 401, _json_body(body), JSON, line)
            return
        path = target.split("?", 1)[0].rstrip("/") or "/"
        code, body_bytes, content_type = await self.server.answer(path)
        self._reply(method, code, body_bytes, content_type, line)

    def _reply(self, method: str, code: int, body: bytes, content_type: str, line: str = "") -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away meanwhile
        head = (
            f"HTTP/1.0 {code} {REASONS.get(code, '')}\r\nServer: lyra-governor\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        transport.write(head if method == "HEAD" else head + body)  # one write: one send on the socket
        transport.close()
        if log.isEnabledFor(logging.INFO):
            log.info('%s "%s" %d %d', self.client, line, code, len(body))


class CheckpointLoop:
    """The compliance schedule in a daemon thread (`CheckpointRunner.run_forever`), with the
    vault when one opens so the system audit can check it too."""

    def __init__(self, settings: Settings, ledger: Ledger, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self.settings = settings
        self.ledger = ledger
        self.every_s = every_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lyra-checkpoints", daemon=True)

    def start(self) -> CheckpointLoop:
        self.thread.start()
        return self

    def _run(self) -> None:
        from lyra_governor.checkpoints import CheckpointRunner

        vault: Any = None
        try:
            vault = importlib.import_module("lyra_governor.vault").open_vault(self.settings)
        except Exception as exc:  # no vault module or no password: checkpoints run without it
            log.info("checkpoints run without the vault (%s)", type(exc).__name__)
        # the checkpoints write their evidence: a writer ledger of their own, which leaves the
        # caps as the bots set them (the server's ledger is read-only)
        try:
            writer = Ledger.open(self.settings, self.ledger.clock, write_caps=False)
        except LyraError as exc:
            log.error("compliance checkpoints not running: %s", redact(str(exc)))
            return
        try:
            CheckpointRunner(self.settings, writer, vault=vault).run_forever(self.stopped, self.every_s)
        finally:
            writer.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def make_server(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    allow_remote: bool = False,
    clock: Callable[[], float] = time.time,
) -> GovernorServer:
    """Check the bind, open the store and bind the socket (port 0 = any free port)."""
    host = settings.server.host if host is None else host
    port = settings.server.port if port is None else port
    # A loopback bind only ever sees loopback requests: no token, and no vault to unlock.
    token = None if is_loopback(host) else resolve_token(settings)
    check_bind(host, allow_remote, token)
    ledger = Ledger.open(settings, clock, read_only=True)  # the routes only read: no caps written
    try:
        return GovernorServer(settings, host, port, token, ledger, clock)
    except OSError as exc:
        ledger.close()
        raise LyraError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or stop what uses it"
        ) from None
