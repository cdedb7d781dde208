"""`lyra-governor serve`: /forensic/status, /metrics and /healthz over the shared store.

Why the standard library: three read-only GET routes need no framework, and every extra
dependency is one more thing in the trading host's supply chain. `ThreadingHTTPServer` keeps a
slow scrape from blocking a health probe.

Security: binds 127.0.0.1 by default. Any request that does not come from loopback must carry
``Authorization: Bearer <token>`` (compared in constant time); binding a non-loopback address
is refused unless the operator passes ``--allow-remote`` *and* a token exists
(``LYRA_SERVER_TOKEN`` or the vault secret ``server/token``). Status output never contains
secrets: it is built from the ledger and audit trail only.

The server also drives the compliance schedule (`CheckpointRunner.run_due`) once a minute, so
checkpoint ages stay fresh while it runs.
"""

from __future__ import annotations

import hmac
import importlib
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

    def get(self) -> Any:
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
            found, answer = self._answer(now)
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


class GovernorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the listen backlog: socketserver's default of 5 drops the connections of a sixth concurrent
    # client, which the kernel retries a second later (a 1 s p99 with 16 readers)
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
        self.verify = VerifyCache()
        self.collector = LyraCollector(settings, ledger, clock, self.verify)
        self.registry = build_registry(self.collector)
        self._status = Refreshed(self._compute_status, STATUS_CACHE_S)
        self._metrics = Refreshed(lambda: generate_latest(self.registry), METRICS_CACHE_S)
        self.activity = ActivityWindow(settings.consensus.mandate_ttl_s)
        self.wal = acquire_checkpointer(ledger.engine.url.database if is_sqlite(ledger.engine) else None)
        self.started_at = clock()
        super().__init__((host, port), Handler)

    def server_close(self) -> None:
        release_checkpointer(self.wal)
        self.wal = None
        super().server_close()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

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


class Handler(BaseHTTPRequestHandler):
    server: GovernorServer
    server_version = "lyra-governor"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], format % args)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, data: dict[str, Any]) -> None:
        self._send(code, _json_body(data), "application/json")

    def _authorized(self) -> bool:
        if is_loopback(self.client_address[0]):
            return True
        token = self.server.token
        offered = self.headers.get("Authorization", "")
        if not token or not offered.startswith("Bearer "):
            return False
        return hmac.compare_digest(offered[len("Bearer ") :].strip().encode(), token.encode())

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._authorized():
            self._json(401, {"error": "a bearer token is required for requests from other machines"})
            return
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            if path == "/healthz":
                ok, detail = self.server.healthy()
                self._json(200 if ok else 503, {"ok": ok, "trading_state" if ok else "error": detail})
            elif path == "/forensic/status":
                self._send(200, self.server.status_body(), "application/json")
            elif path == "/metrics":
                self._send(200, self.server.metrics(), CONTENT_TYPE_LATEST)
            elif path == "/":
                self._json(200, {"routes": ["/forensic/status", "/metrics", "/healthz"]})
            else:
                self._json(404, {"error": f"no route {path}; try /forensic/status, /metrics or /healthz"})
        except (StoreUnavailable, sa.exc.SQLAlchemyError) as exc:
            self._json(503, {"error": redact(f"store unavailable: {str(exc).splitlines()[0][:300]}")})
        except BrokenPipeError:
            pass
        except Exception:
            log.exception("error serving %s", path)
            self._json(500, {"error": "internal error; see the server log"})


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
