"""The soak (issue 17 point 7): a long-running `lyra-governor serve` and three governed paper
bots (real OS processes) on one PostgreSQL store, while the store is restarted twice and the
MQTT broker once, and 16 clients read /metrics and /forensic/status (a bounded number of
requests each).

What is real: a private PostgreSQL cluster (initdb + pg_ctl, stopped with ``-m fast`` and
started again: every connection is dropped, new ones are refused while it is down), a private
Mosquitto on a free port (the machine's own broker is left alone), the server and the bots as
processes of their own. What is simulated: the market and the exchange. Each bot watches one
market whose mid moves every simulated second, rests a small buy below the mid and a
reduce-only sell above it, fills an order when the mid crosses its price and cancels it after
20 simulated seconds. The bots share one simulated clock, ``t0 + speed * (time.time() - t0)``,
so 30 simulated minutes take 30 / speed wall minutes; the server keeps the wall clock.

An order event the store could not take (it was down) is kept and sent again on the next step,
as Hummingbot's connector would report it again: fills carry the exchange's trade id, so a
fill that did reach the store is never counted twice. At the end the operator halts with
`lyra-governor halt` over the restarted broker: each bot must hear it over MQTT, cancel what
rests and exit. Then the store must reconcile: no reservation left open, every invariant
(deployed + reserved + orphaned <= cap, each scope equal to its reservations) and the audit
chain hold.

`run_soak(store="sqlite")` runs the same on one SQLite file, where the store is away while
another process holds its write lock (SQLite has no server to restart; see `SqliteStore`), and
samples the largest WAL file.

`run_soak` returns the figures; tests/e2e/failure/test_soak.py runs a short one, bench/soak.py
the 30 simulated minutes. `python -m tests.soak bot ...` is one bot (started by `run_soak`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.serving import serving_url

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("lyra-governor"))
BOTS = (("soak-bot-1", "binance_paper_trade"), ("soak-bot-2", "okx_paper_trade"), ("soak-bot-3", "binance_paper_trade"))
PAIR = "BTC-USDT"
MID = Decimal(60000)
AMOUNT = Decimal("0.0005")  # about 30 USD an order: three bots stay far below the paper cap
REST_S = 20.0  # simulated seconds an order rests before the bot cancels it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


# --- the services, started privately ---------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"{name} not found: install PostgreSQL's server binaries (Debian: postgresql)")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, restartable (as user postgres under root:
    PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lyra-soak-pg-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip()[-400:]}")

    def init(self) -> PrivatePostgres:
        initdb = str(Path(_pg_bin("pg_ctl")).resolve().with_name("initdb"))
        self._run(initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        self.stop("fast")  # every connection dropped; new ones refused until the start
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class SqliteStore:
    """The soak on one SQLite file. SQLite has no server to restart: here the store is away
    while another process holds its write lock (a backup, a VACUUM, a stuck writer), so no
    reservation can be written and every review must be denied; readers still read (WAL).
    The largest WAL file is sampled every 20 ms."""

    def __init__(self, home: Path) -> None:
        self.path = home / "lyra.db"
        self.url = f"sqlite:///{self.path}"
        self.wal_peak = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        wal = Path(str(self.path) + "-wal")
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self.wal_peak = max(self.wal_peak, wal.stat().st_size)

    def init(self) -> SqliteStore:
        self._watch.start()
        return self

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        from tests.store_faults import sqlite_write_lock_held

        with sqlite_write_lock_held(str(self.path), 600):
            yield

    def close(self) -> None:
        self._stop.set()
        self._watch.join(timeout=5)


class PrivateMosquitto:
    """A Mosquitto broker of our own on a free port of 127.0.0.1, restartable."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lyra-soak-mqtt-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateMosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto not found: install it (Debian: mosquitto)")
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port, 30)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- one paper bot (its own process) ---------------------------------------------------------


def _settings(db_url: str, mqtt_port: int) -> Any:
    from lyra_governor.config import load_settings
    from tests.watched import UNTHROTTLED

    return load_settings(
        None, use_env=False, db_url=db_url, mqtt={"enabled": True, "port": mqtt_port, "discover_s": 0.5}, **UNTHROTTLED
    )


@dataclass
class _Order:
    reservation_id: str
    side: str
    price: Decimal
    amount: Decimal
    created: float


@dataclass
class _Bot:
    gov: Any
    bot_id: str
    connector: str
    clock: Any
    log: Any
    orders: dict[str, _Order] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)  # events the store did not take yet
    position: Decimal = Decimal(0)
    fills: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    event_retries: int = 0

    def flush(self) -> None:
        from lyra_governor.store import STORE_ERRORS

        while self.pending:
            try:
                self.gov.on_order_event(self.pending[0])
            except STORE_ERRORS:
                self.event_retries += 1
                return  # the store is away: the same event again on the next step
            self.pending.pop(0)

    def review(self, side: str, price: Decimal, amount: Decimal, mid: Decimal, reduce_only: bool) -> None:
        from lyra_governor.models import OrderProposal, Side

        now = self.clock()
        proposal = OrderProposal(
            bot_id=self.bot_id,
            connector=self.connector,
            trading_pair=PAIR,
            side=Side(side),
            amount=amount,
            price=price,
            mid_price=mid,
            mid_price_ts=now,
            reduce_only=reduce_only,
        )
        started = time.time()
        decision = self.gov.review(proposal)
        ended = time.time()
        key = "ALLOWED" if decision.allowed else str(decision.code.value if decision.code else decision.status.value)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.log.write(json.dumps({"t0": started, "t1": ended, "code": key}) + "\n")
        if decision.allowed and decision.reservation_id:
            self.orders[decision.reservation_id] = _Order(decision.reservation_id, side, price, amount, now)

    def step(self, mid: Decimal, n: int) -> None:
        from lyra_governor.models import MarketSnapshot, OrderEvent, OrderEventKind

        now = self.clock()
        seen = MarketSnapshot(connector=self.connector, trading_pair=PAIR, timestamp=now, mid_price=mid)
        self.gov.observe_market(seen)
        self.gov.heartbeat()
        for order in list(self.orders.values()):
            crossed = mid <= order.price if order.side == "BUY" else mid >= order.price
            if crossed:
                self.fills += 1
                self.position += order.amount if order.side == "BUY" else -order.amount
                event = OrderEvent(
                    kind=OrderEventKind.FILLED,
                    reservation_id=order.reservation_id,
                    filled_amount=order.amount,
                    fill_price=order.price,
                    trade_id=f"{self.bot_id}-{order.reservation_id}",
                    timestamp=now,
                )
            elif now - order.created > REST_S:
                event = OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=order.reservation_id)
            else:
                continue
            del self.orders[order.reservation_id]
            self.pending.append(event)
        self.flush()  # once a step: a held write lock costs one event's wait (2 s budget), not one per event
        sides = {o.side for o in self.orders.values()}
        if "BUY" not in sides and self.position < 10 * AMOUNT:
            size = AMOUNT + Decimal(n % 97) / 10**8  # never the same order twice
            self.review("BUY", (mid * Decimal("0.9999")).quantize(Decimal("0.01")), size, mid, False)
        if "SELL" not in sides and self.position > 0:
            chunk = min(self.position, 4 * AMOUNT)  # under risk.max_order_notional_usd
            self.review("SELL", (mid * Decimal("1.0001")).quantize(Decimal("0.01")), chunk, mid, True)

    def cancel_all(self) -> None:
        from lyra_governor.models import OrderEvent, OrderEventKind

        for order in list(self.orders.values()):
            self.pending.append(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=order.reservation_id))
        self.orders.clear()
        deadline = time.monotonic() + 30
        while self.pending and time.monotonic() < deadline:
            self.flush()
            if self.pending:
                time.sleep(0.2)


def bot_main(db_url: str, bot_id: str, connector: str, speed: float, sim_s: float, mqtt_port: int, out: str) -> None:
    """One governed paper bot; prints 'ready', reads t0 from stdin, trades until the operator's
    MQTT halt (or `sim_s` simulated seconds and a grace), then writes its summary to `out`."""
    from lyra_governor.governor import Governor
    from lyra_governor.mqtt import HaltListener
    from tests.standing_mandate import StandingMandate

    settings = _settings(db_url, mqtt_port)
    origin = [time.time()]

    def clock() -> float:
        return origin[0] + speed * (time.time() - origin[0])

    gov = Governor.from_settings(settings, bot_id, mandates=StandingMandate(), clock=clock)  # type: ignore[arg-type]
    halted = threading.Event()
    listener = HaltListener(settings, on_halt=lambda _m: halted.set(), instance_id=bot_id, bot_id=bot_id).start()
    print("ready", flush=True)
    origin[0] = float(sys.stdin.readline())
    seed = sum(map(ord, bot_id))
    with open(out + ".jsonl", "w") as log:
        bot = _Bot(gov, bot_id, connector, clock, log)
        from lyra_governor.models import MarketSnapshot

        for t in (clock() - 10, clock()):  # a market watched for a while before the first order
            gov.observe_market(MarketSnapshot(connector=connector, trading_pair=PAIR, timestamp=t, mid_price=MID))
        n = 0
        end = origin[0] + sim_s / speed
        grace = end + 30
        while not halted.is_set() and time.time() < grace:
            n += 1
            sim_t = clock() - origin[0]
            wave = math.sin(sim_t / 40 + seed) * 2 + math.sin(sim_t / 7.3 + seed) * 0.7  # within +-0.27 %
            mid = (MID * (1 + Decimal(str(round(wave, 6))) / 1000)).quantize(Decimal("0.01"))
            bot.step(mid, n)
            time.sleep(max(0.0, (origin[0] + n / speed) - time.time()))
        heard = halted.is_set()
        bot.cancel_all()
    gov.close()
    with contextlib.suppress(Exception):
        listener.stop()
    summary = {
        "bot_id": bot_id,
        "counts": bot.counts,
        "fills": bot.fills,
        "steps": n,
        "mqtt_halt_heard": heard,
        "events_unsent": len(bot.pending),
        "event_retries": bot.event_retries,
        "position": str(bot.position),
    }
    Path(out).write_text(json.dumps(summary))


# --- the driver ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class _Readers:
    """`clients` threads, each `requests` requests spread over `span_s`, alternating routes."""

    def __init__(self, url: str, clients: int, requests: int, span_s: float) -> None:
        self.url = url
        self.times: dict[str, list[float]] = {"/metrics": [], "/forensic/status": []}
        self.when: dict[str, list[tuple[float, float]]] = {"/metrics": [], "/forensic/status": []}  # (start, took)
        self.statuses: dict[str, int] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(i, requests, span_s), daemon=True) for i in range(clients)
        ]

    def start(self) -> _Readers:
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))

    def _run(self, i: int, requests: int, span_s: float) -> None:
        start = time.monotonic()
        for k in range(requests):
            route = "/metrics" if (i + k) % 2 == 0 else "/forensic/status"
            t0 = time.perf_counter()
            started = time.time()
            try:
                with urllib.request.urlopen(self.url + route, timeout=30) as response:
                    response.read()
                    code = response.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except Exception as exc:
                with self.lock:
                    self.errors.append(f"{route}: {type(exc).__name__}: {exc}")
                code = 0
            took = time.perf_counter() - t0
            with self.lock:
                self.statuses[f"{route} {code}"] = self.statuses.get(f"{route} {code}", 0) + 1
                if code:
                    self.times[route].append(took)
                    self.when[route].append((started, took))
            wait = start + (k + 1) * span_s / requests - time.monotonic()
            if wait > 0:
                time.sleep(wait)


class _Poller(threading.Thread):
    """/metrics every 0.25 s through the whole run: the longest time without an answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers = 0
        self.failures: list[str] = []
        self.longest_gap_s = 0.0
        self.codes: dict[int, int] = {}
        self.store_down_answers = 0

    def run(self) -> None:
        last = time.monotonic()
        while not self.stop.wait(0.25):
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
                    body = response.read()
                    code = response.status
                    if re.search(rb"^lyra_up 0", body, re.MULTILINE):
                        self.store_down_answers += 1  # the scrape says the store could not be read
            except urllib.error.HTTPError as exc:
                code = exc.code
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            now = time.monotonic()
            self.longest_gap_s = max(self.longest_gap_s, now - last)
            last = now
            self.answers += 1
            self.codes[code] = self.codes.get(code, 0) + 1


def _serve(home: Path, db_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update({"LYRA_DB_URL": db_url, "LYRA_DATA_DIR": str(home / "data"), "PYTHONPATH": str(ROOT)})
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(
        [EXE, "serve", "--port", "0", "--no-checkpoints"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=home,
        env=env,
    )
    url = serving_url(proc, within_s=90)
    if url:
        assert proc.stdout is not None
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        return proc, url
    proc.kill()
    raise RuntimeError(f"lyra-governor serve did not start: {(home / 'serve.log').read_text()[-800:]}")


def _cli(home: Path, db_url: str, mqtt_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(
        {
            "LYRA_DB_URL": db_url,
            "LYRA_DATA_DIR": str(home / "data"),
            "LYRA_MQTT__ENABLED": "true",
            "LYRA_MQTT__PORT": str(mqtt_port),
            "PYTHONPATH": str(ROOT),
        }
    )
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=home, env=env, timeout=120, check=False)


@contextlib.contextmanager
def _window(windows: list[tuple[str, float, float]], name: str) -> Iterator[None]:
    start = time.time()
    yield
    windows.append((name, start, time.time()))


def run_soak(
    minutes: float = 30.0,
    speed: float = 10.0,
    clients: int = 16,
    requests: int = 200,
    store_down_s: float = 3.0,
    broker_down_s: float = 2.0,
    say: Any = print,
    store: str = "postgresql",
) -> dict[str, Any]:
    """The whole soak; returns its figures (see the module docstring)."""
    from lyra_governor.config import load_settings
    from lyra_governor.invariants import check_invariants
    from lyra_governor.ledger import Ledger
    from lyra_governor.store import read_tx, reservations

    sim_s = minutes * 60
    wall_s = sim_s / speed
    home = Path(tempfile.mkdtemp(prefix="lyra-soak-"))
    pg: PrivatePostgres | SqliteStore = PrivatePostgres() if store == "postgresql" else SqliteStore(home)
    broker = PrivateMosquitto()
    procs: list[subprocess.Popen[str]] = []
    server: subprocess.Popen[str] | None = None
    figures: dict[str, Any] = {"store": store, "sim_minutes": minutes, "speed": speed, "clients": clients}
    try:
        pg.init()
        broker.start()
        db_url = pg.url
        ledger = Ledger.open(load_settings(None, use_env=False, db_url=db_url))
        ledger.set_phase(3, "soak", "paper bots under the soak")
        ledger.close()
        server, url = _serve(home, db_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        env["PYTHONPATH"] = str(ROOT)
        for bot_id, connector in BOTS:
            out = str(home / f"{bot_id}.json")
            args = [db_url, bot_id, connector, str(speed), str(sim_s), str(broker.port), out]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.soak", "bot", *args],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=(home / f"{bot_id}.log").open("w"),
                    text=True,
                    cwd=ROOT,
                    env=env,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a bot did not start: {[p.args for p in procs if p.poll() is not None]}")
        for route in ("/metrics", "/forensic/status"):  # a server in use: its first (cold) answers are made
            with urllib.request.urlopen(url + route, timeout=120) as response:
                response.read()
        poller = _Poller(url)
        poller.start()
        readers = _Readers(url, clients, requests, wall_s).start()
        t0 = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{t0!r}\n")
            proc.stdin.flush()
        say(f"soak: {minutes:g} simulated minutes at {speed:g}x ({wall_s:.0f} s), 3 bots, {clients} readers")
        windows: list[tuple[str, float, float]] = []
        plan = [(8 / 30, "store"), (14 / 30, "broker"), (20 / 30, "store")]
        for fraction, what in plan:
            time.sleep(max(0.0, t0 + fraction * wall_s - time.time()))
            if what == "store":
                with pg.away(), _window(windows, "store"):
                    time.sleep(store_down_s)
            else:
                broker.stop()
                with _window(windows, "broker"):
                    time.sleep(broker_down_s)
                broker.start()
            say(f"soak: {what} away and back at simulated minute {fraction * minutes:.1f}")
        time.sleep(max(0.0, t0 + wall_s - time.time()))
        halt = _cli(home, db_url, broker.port, "halt", "--reason", "soak ends", "--json")
        figures["halt_exit"] = halt.returncode
        try:
            figures["halt_broadcast_ok"] = bool((json.loads(halt.stdout).get("mqtt") or {}).get("ok"))
        except ValueError:
            figures["halt_broadcast_ok"] = f"no JSON: {halt.stderr.strip()[-300:]}"
        for proc in procs:
            proc.wait(timeout=120)
        readers.join(120)
        poller.stop.set()
        poller.join(timeout=30)
        figures["server_alive"] = server.poll() is None
        after: dict[str, Any] = {}
        for route in ("/metrics", "/forensic/status"):
            try:
                with urllib.request.urlopen(url + route, timeout=60) as response:
                    after[route] = response.status
                    body = response.read()
                    if route == "/forensic/status":
                        after["audit_ok"] = json.loads(body).get("audit_ok")
                    else:
                        after["lyra_up"] = bool(re.search(rb"^lyra_up 1", body, re.MULTILINE))
            except urllib.error.HTTPError as exc:
                after[route] = f"{exc.code} {exc.read()[:200]!r}"
        figures["after"] = after
        verify = _cli(home, db_url, broker.port, "audit", "verify", "--json")
        figures["audit_verify_ok"] = verify.returncode == 0 and bool(json.loads(verify.stdout).get("ok"))
        ledger = Ledger.open(load_settings(None, use_env=False, db_url=db_url), read_only=True)
        try:
            figures["invariant_problems"] = check_invariants(ledger.engine, chain=True)
            with read_tx(ledger.engine) as conn:
                import sqlalchemy as sa

                figures["reservations_open"] = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(reservations).where(reservations.c.status == "OPEN")
                    ).scalar_one()
                )
            figures["trading_state"] = ledger.state().trading_state.value
        finally:
            ledger.close()
        bots = [json.loads((home / f"{b}.json").read_text()) for b, _ in BOTS]
        decisions = [json.loads(line) for b, _ in BOTS for line in (home / f"{b}.json.jsonl").read_text().splitlines()]
        store_windows = [(a, b) for name, a, b in windows if name == "store"]
        away = [d for d in decisions if any(a <= d["t0"] <= b for a, b in store_windows)]
        codes: dict[str, int] = {}
        for b in bots:
            for k, v in b["counts"].items():
                codes[k] = codes.get(k, 0) + v
        away_codes: dict[str, int] = {}
        for d in away:
            away_codes[d["code"]] = away_codes.get(d["code"], 0) + 1
        took = [d["t1"] - d["t0"] for d in decisions]
        outages = [(a, b + 2.0) for _name, a, b in windows]  # and the 2 s after each, while reconnecting

        def steady(route: str) -> list[float]:
            return [t for at, t in readers.when[route] if not any(a <= at <= b for a, b in outages)]
        back = max(b for _a, b in store_windows) if store_windows else t0
        allowed_after = sum(1 for d in decisions if d["code"] == "ALLOWED" and d["t0"] > back)
        figures.update(
            {
                "reviews": len(decisions),
                "decisions": dict(sorted(codes.items())),
                "fills": sum(b["fills"] for b in bots),
                "reviews_while_store_away": len(away),
                "allowed_while_store_away": away_codes.get("ALLOWED", 0),
                "allowed_after_last_restart": allowed_after,
                "codes_while_store_away": dict(sorted(away_codes.items())),
                "review_worst_ms": round(max(took) * 1e3, 1) if took else None,
                "review_p99_ms": round(percentile(took, 0.99) * 1e3, 1),
                "mqtt_halt_heard": [b["mqtt_halt_heard"] for b in bots],
                "events_unsent": sum(b["events_unsent"] for b in bots),
                "event_retries": sum(b["event_retries"] for b in bots),
                "windows_s": [(name, round(b - a, 2)) for name, a, b in windows],
                "readers_served": sum(len(v) for v in readers.times.values()),
                "readers_requests": clients * requests,
                "readers_errors": len(readers.errors),
                "readers_first_errors": readers.errors[:3],
                "reader_statuses": dict(sorted(readers.statuses.items())),
                "metrics_p50_ms": round(statistics.median(readers.times["/metrics"]) * 1e3, 1)
                if readers.times["/metrics"]
                else None,
                "metrics_p99_ms": round(percentile(readers.times["/metrics"], 0.99) * 1e3, 1),
                "status_p50_ms": round(statistics.median(readers.times["/forensic/status"]) * 1e3, 1)
                if readers.times["/forensic/status"]
                else None,
                "status_p99_ms": round(percentile(readers.times["/forensic/status"], 0.99) * 1e3, 1),
                "metrics_p99_ms_steady": round(percentile(steady("/metrics"), 0.99) * 1e3, 1),
                "status_p99_ms_steady": round(percentile(steady("/forensic/status"), 0.99) * 1e3, 1),
                "metrics_poll_answers": poller.answers,
                "metrics_poll_failures": len(poller.failures),
                "metrics_lyra_up_0": poller.store_down_answers,
                "metrics_poll_codes": {str(k): v for k, v in sorted(poller.codes.items())},
                "metrics_longest_gap_s": round(poller.longest_gap_s, 2),
                "wall_s": round(time.time() - t0, 1),
                "load_avg_1_5": [round(x, 1) for x in os.getloadavg()[:2]],  # the machine's, at the end
                "wal_max_mb": round(pg.wal_peak / 2**20, 2) if isinstance(pg, SqliteStore) else None,
            }
        )
        return figures
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        broker.close()
        pg.close()
        shutil.rmtree(home, ignore_errors=True)


def summary_lines(f: dict[str, Any]) -> list[str]:
    return [
        f"{f['clients']} readers, {f['readers_served']}/{f['readers_requests']} answered "
        f"({f['readers_errors']} without an answer): "
        f"/metrics p50 {f['metrics_p50_ms']} ms p99 {f['metrics_p99_ms']} ms, "
        f"/forensic/status p50 {f['status_p50_ms']} ms p99 {f['status_p99_ms']} ms; away from the outages "
        f"(and 2 s after): /metrics p99 {f['metrics_p99_ms_steady']} ms, "
        f"/forensic/status p99 {f['status_p99_ms_steady']} ms",
        f"server alive {f['server_alive']}; /metrics polled every 0.25 s: {f['metrics_poll_answers']} answers "
        f"{f['metrics_poll_codes']} ({f['metrics_lyra_up_0']} with lyra_up 0), {f['metrics_poll_failures']} failures, "
        f"longest gap {f['metrics_longest_gap_s']} s",
        f"{f['reviews']} reviews {f['decisions']}, {f['fills']} fills; while the store was away: "
        f"{f['reviews_while_store_away']} reviews, "
        f"ALLOWED {f['allowed_while_store_away']} {f['codes_while_store_away']}; "
        f"ALLOWED after the last restart {f['allowed_after_last_restart']}; "
        f"review worst {f['review_worst_ms']} ms p99 {f['review_p99_ms']} ms",
        f"reconcile: open reservations {f['reservations_open']}, invariant problems {len(f['invariant_problems'])}, "
        f"audit verify ok {f['audit_verify_ok']}, events unsent {f['events_unsent']} (retried {f['event_retries']}), "
        f"MQTT halt heard {f['mqtt_halt_heard']}, outages {f['windows_s']}, load {f['load_avg_1_5']}"
        + (f", largest WAL {f['wal_max_mb']} MB" if f.get("wal_max_mb") is not None else ""),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "bot":
        a = sys.argv[2:]
        bot_main(a[0], a[1], a[2], float(a[3]), float(a[4]), int(a[5]), a[6])
    else:
        raise SystemExit("usage: python -m tests.soak bot DB_URL BOT_ID CONNECTOR SPEED SIM_S MQTT_PORT OUT")
