"""kill -9 of real bot processes inside a simulation (issue 14, "Prove it").

Several OS processes (`python -m tests.kill9 worker ...`), each one bot with its own governor,
trade on one store: hostile proposals (`tests.simulation.hostile_proposal`), fills, partial,
duplicate, late and impossible fills, cancels and failures. The parent, from a seeded schedule,
SIGKILLs one of them at a random moment (inside a write transaction or not: the OS decides),
moves the operator's controls (halt, gradual stop, resume, lift a bot's restriction, release a
dead bot's orphans), sometimes leaves a killed bot dead past the heartbeat timeout (its
reservations become ORPHANED), and restarts it (the new process reclaims and reconciles).

After every kill and at the end, read from the store alone (`lyra_governor.invariants`):
deployed + reserved + orphaned <= every cap while trading is ACTIVE; each TOTAL row is the sum
over its exchanges; every scope's reserved and orphaned capital equal its reservations'; the
audit chain verifies; no ALLOWED decision after a committed halt, none that does not reduce in
a gradual stop (replayed from the audit trail).

Every process runs on one shared accelerated clock (`SPEED` governor seconds per wall second,
anchored by the parent), so the 5 s reference warm-up and the heartbeat timeout take a
fraction of a wall second each. The schedule is seeded; where each kill lands is the OS's.
Short in CI (tests/unit/guard/test_kill9.py), long in `bench/simulate.py --kill9 N`.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from lyra_governor.config import Settings, load_settings
from lyra_governor.errors import LyraError
from lyra_governor.invariants import TrailCursor, check_invariants, stopped_but_allowed
from lyra_governor.ledger import Ledger
from lyra_governor.models import OrderEvent, OrderEventKind, ReservationStatus, TradingState
from tests.simulation import STORE_FAILURES, patient

SPEED = 10.0  # governor seconds per wall second, for every process
CONNECTORS = ("binance_paper_trade", "okx_paper_trade", "kraken_paper_trade")
ROOT = Path(__file__).resolve().parents[1]


def settings_for(db_url: str) -> Settings:
    """The workers' and the parent's settings: defaults, except a heartbeat timeout as short as
    allowed (45 s = 4.5 wall s) so a bot left dead orphans its reservations within a test, the
    warm-up as short as allowed, loss limits wide (a random walk is not a strategy)."""
    return load_settings(
        None, use_env=False, db_url=db_url,
        risk={"order_rate_max": 50, "max_open_orders": 30, "heartbeat_timeout_s": 45, "reference_min_history_s": 2},
        breakers={"storm_cooldown_s": 30, "duplicate_window_s": 0.5, "daily_loss_pct": 50, "drawdown_pct": 50},
    )  # fmt: skip


class SharedClock:
    """Governor time = `sim0` + (wall - `wall0`) * SPEED, the same in every process."""

    def __init__(self, wall0: float, sim0: float) -> None:
        self.wall0, self.sim0 = wall0, sim0

    def __call__(self) -> float:
        return self.sim0 + (time.time() - self.wall0) * SPEED


# --- the worker: one bot in its own process -------------------------------------------------


@dataclass
class _Live:
    reservation_id: str
    amount: Decimal
    price: Decimal
    filled: Decimal = Decimal(0)


def worker(db_url: str, bot_id: str, seed: int, wall0: float, sim0: float) -> None:
    """Trade until killed. Everything it knows at start comes from the store (a restart after a
    kill -9): its open reservations are adopted or cancelled (reconciled with the exchange)."""
    from lyra_governor.governor import Governor
    from tests.simulation import PAIR, STORE_FAILURES, SimMandates, deliver_event, hostile_proposal, patient

    logging.disable(logging.CRITICAL)  # breakers and anomalies log on purpose here
    rng = random.Random(seed)
    clock = SharedClock(wall0, sim0)
    settings = settings_for(db_url)
    gov = patient(lambda: Governor.from_settings(settings, bot_id, mandates=SimMandates(), clock=clock))
    mids = {c: Decimal(60000) for c in CONNECTORS}
    live: dict[str, _Live] = {}
    counts: Counter[str] = Counter()
    done: list[_Live] = []
    for row in patient(lambda: gov.ledger.open_reservations(bot_id)):  # its first heartbeat reclaimed orphans
        order = _Live(row["reservation_id"], Decimal(row["amount"]), Decimal(row["price"]),
                      Decimal(row["filled_amount"]))  # fmt: skip
        if rng.random() < 0.5:
            live[order.reservation_id] = order
        else:
            deliver_event(gov, OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=order.reservation_id), counts)
    trade = 0

    def event(kind: OrderEventKind, order: _Live, amount: Decimal = Decimal(0), price: Decimal = Decimal(0)) -> None:
        nonlocal trade
        trade += 1
        deliver_event(gov, OrderEvent(kind=kind, reservation_id=order.reservation_id, filled_amount=amount,
                                      fill_price=price, trade_id=f"{bot_id}-{seed}-{trade}"), counts)  # fmt: skip

    def observe() -> None:
        from lyra_governor.models import MarketSnapshot

        now = clock()
        for c in CONNECTORS:
            step = Decimal(rng.gauss(0, 0.0003)) + (60000 - mids[c]) / 60000 / 200  # around 60,000
            mids[c] = max(Decimal(1000), (mids[c] * (1 + step)).quantize(Decimal("0.01")))
            gov.observe_market(MarketSnapshot(connector=c, trading_pair=PAIR, timestamp=now, mid_price=mids[c]))
        gov.heartbeat()

    def fullness(c: str) -> tuple[float, bool]:
        exposure = gov.ledger.exposure("paper")
        held = exposure.exchanges.get(Settings.exchange_of(c))
        used = float(exposure.total.used_usd / exposure.total.cap_usd) if exposure.total.cap_usd else 1.0
        return min(1.0, used), held is not None and held.deployed_usd > 0

    while True:
        try:
            observe()
            r = rng.random()
            if r < 0.45 or not live:
                c = rng.choice(CONNECTORS)
                exchange = Settings.exchange_of(c)
                p = hostile_proposal(rng, bot_id, c, mids[c], clock(),
                                     lambda ex=exchange: gov.store.bot_position(bot_id, "paper", ex, PAIR),
                                     lambda c=c: fullness(c))  # fmt: skip
                decision = gov.review(p)
                if decision.allowed and decision.reservation_id is not None:
                    valued = p.price if p.price is not None and p.price.is_finite() else mids[c]
                    live[decision.reservation_id] = _Live(decision.reservation_id, p.amount, valued)
            else:
                order = live[rng.choice(sorted(live))]
                left = order.amount - order.filled
                if r < 0.78:  # a fill, whole or half, sometimes delivered twice
                    amount = left if rng.random() < 0.6 else (left / 2).quantize(Decimal("0.00000001"))
                    price = (order.price * Decimal(1 + rng.uniform(-0.001, 0.001))).quantize(Decimal("0.01"))
                    if amount > 0:
                        event(OrderEventKind.FILLED, order, amount, price)
                        if rng.random() < 0.05:
                            trade -= 1  # the same trade id again: applied once
                            event(OrderEventKind.FILLED, order, amount, price)
                        order.filled += amount
                elif r < 0.90:
                    event(OrderEventKind.CANCELLED, order)
                    order.filled = order.amount
                elif r < 0.96:
                    event(OrderEventKind.FAILED, order)
                    order.filled = order.amount
                elif r < 0.98 and done:  # a late fill after the order ended
                    late = rng.choice(done)
                    event(OrderEventKind.FILLED, late, late.amount / 4, late.price)
                elif r < 0.99:  # an event for a reservation that does not exist
                    event(OrderEventKind.FILLED, _Live("res-doesnotexist", Decimal("0.001"), mids[CONNECTORS[0]]),
                          Decimal("0.001"), mids[CONNECTORS[0]])  # fmt: skip
                else:  # impossible: negative, 1000x, zero price
                    amount, price = rng.choice(((Decimal("-0.001"), order.price), (order.amount * 1000, order.price),
                                                (order.amount, Decimal(0))))  # fmt: skip
                    event(OrderEventKind.FILLED, order, amount, price)
                if order.filled >= order.amount:
                    live.pop(order.reservation_id, None)
                    done.append(order)
                    del done[:-50]
        except STORE_FAILURES:  # the store did not answer in its budget: this tick is lost, as in a bot
            counts["store_failed"] += 1
        time.sleep(rng.uniform(0.0, 0.01))


# --- the parent: kills, restarts, the operator, the checks ------------------------------------


@dataclass
class KillReport:
    seed: int
    workers: int
    kills: int = 0  # every SIGKILL sent, those that end the run included
    restarts: int = 0
    left_dead: int = 0  # kills after which the bot stayed dead past the heartbeat timeout
    checks: int = 0
    operator: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    fills: int = 0
    orphaned_seen: int = 0  # reservations ever ORPHANED (a dead bot's orders)
    violations: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def allowed(self) -> int:
        return self.decisions.get("ALLOWED", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "workers": self.workers, "kills": self.kills, "restarts": self.restarts,
            "left_dead": self.left_dead, "checks": self.checks, "operator": dict(self.operator),
            "allowed": self.allowed, "proposals": sum(self.decisions.values()), "decisions": dict(self.decisions),
            "fills": self.fills, "orphaned_seen": self.orphaned_seen, "violations": len(self.violations),
            "first_violations": self.violations[:10], "wall_s": round(self.wall_s, 1),
        }  # fmt: skip


MIN_DECISIONS = 10  # what a run holds before its last kill (`KillNine._trade_until`)


class KillNine:
    """The parent of `workers` bot processes on the store at `db_url`."""

    def __init__(self, db_url: str, seed: int, workers: int = 3) -> None:
        self.db_url, self.seed, self.rng = db_url, seed, random.Random(seed)
        self.wall0, self.sim0 = time.time(), 1_800_000_000.0
        self.clock = SharedClock(self.wall0, self.sim0)
        self.settings = settings_for(db_url)
        self.ledger = Ledger.open(self.settings, self.clock)
        if self.ledger.state().phase != 3:
            self.ledger.set_phase(3, "kill9", "simulated paper trading")
        from lyra_governor.order_store import OrderStore

        self.desk = OrderStore(self.ledger.engine)
        self.report = KillReport(seed, workers)
        self.trail = TrailCursor()
        self.generation = 0
        self.procs: list[subprocess.Popen[bytes] | None] = [self._spawn(i) for i in range(workers)]
        self.dead_until: list[float] = [0.0] * workers
        self.ready_at: list[float | None] = [None] * workers  # when its first heartbeat was seen

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        self.generation += 1
        args = [sys.executable, "-m", "tests.kill9", "worker", self.db_url, f"k9-{self.seed}-{i}",
                str(self.seed * 1000 + self.generation), repr(self.wall0), repr(self.sim0)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def run(self, kills: int, gap_s: tuple[float, float] = (0.3, 1.5), progress: Any = None) -> KillReport:
        started = time.perf_counter()
        try:
            for _ in range(kills):
                self._pause(self.rng.uniform(*gap_s))
                victims = self._victims()
                while not victims:  # bots still starting (a loaded machine imports slowly)
                    self._pause(0.2)
                    victims = self._victims()
                self._kill(self.rng.choice(victims))
                self.check("after kill")
                if progress is not None and self.report.kills % 10 == 0:
                    progress(self.report)
            self._pause(1.0)
            self._trade_until(MIN_DECISIONS, within_s=30.0)
        finally:
            for i in range(len(self.procs)):  # the end is a kill -9 too
                self._kill(i, restart=False)
            self.check("at the end", chain=True)
            self._tally()
            self.report.wall_s = time.perf_counter() - started
            self.desk.close()
            self.ledger.close()
        return self.report

    def _trade_until(self, decisions: int, within_s: float) -> None:
        """Before the last kill, let the bots go on until the store holds `decisions` decisions
        (at most `within_s`): on a machine loaded enough that workers spend the kills' gaps
        importing, a run could otherwise end with almost nothing decided (2 proposals were seen
        at load 8), and the invariants would have been checked on a store with nothing in it."""
        from lyra_governor import audit

        end = time.time() + within_s
        while time.time() < end:
            if len(patient(lambda: list(audit.records(self.ledger.engine, events=("decision",))))) >= decisions:
                return
            self._pause(0.5)

    def _victims(self) -> list[int]:
        """Bots that may be killed now: those trading for at least a second (most kills), or
        any live one, still starting or reconciling (one kill in five)."""
        alive = [i for i, proc in enumerate(self.procs) if proc is not None]
        if self.rng.random() < 0.2:
            return alive
        now = time.time()
        return [i for i in alive if (ready := self.ready_at[i]) is not None and now - ready >= 1.0]

    def _pause(self, seconds: float) -> None:
        """Wait, restarting bots left dead once their time is up, and notice a worker that died
        on its own (a crash the harness did not cause is a finding: its stderr is kept)."""
        end = time.time() + seconds
        next_review = time.time() + self.rng.uniform(0.1, 0.5)
        while True:
            if any(self.procs[i] is not None and self.ready_at[i] is None for i in range(len(self.procs))):
                pids = {record.pid for record in patient(self.ledger.bots)}  # a bot is up once it heartbeat
                for i, proc in enumerate(self.procs):
                    if proc is not None and self.ready_at[i] is None and proc.pid in pids:
                        self.ready_at[i] = time.time()
            if time.time() >= next_review:
                try:
                    self._operator()
                except STORE_FAILURES:  # a command that failed on a busy store: the operator tries later
                    self.report.operator["store_failed"] += 1
                next_review = time.time() + self.rng.uniform(0.1, 0.5)
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-2000:]
                    self.report.violations.append(f"worker {i} exited by itself ({proc.returncode}): {err}")
                    self.procs[i] = None
                    self.dead_until[i] = 0.0
                if self.procs[i] is None and time.time() >= self.dead_until[i]:
                    self.procs[i] = self._spawn(i)
                    self.report.restarts += 1
            if time.time() >= end:
                return
            time.sleep(min(0.05, max(0.0, end - time.time())))

    def _kill(self, i: int, restart: bool = True) -> None:
        proc = self.procs[i]
        if proc is None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        self.procs[i], self.ready_at[i] = None, None
        self.report.kills += 1
        if restart and self.rng.random() < 0.2:  # left dead past the heartbeat timeout: orphans
            self.dead_until[i] = time.time() + self.settings.risk.heartbeat_timeout_s / SPEED + 1.5
            self.report.left_dead += 1
        else:
            self.dead_until[i] = 0.0

    def _operator(self) -> None:
        """What an operator does between kills, as the runbook has it."""
        r = self.rng.random()
        state = self.ledger.state().trading_state
        if state is not TradingState.ACTIVE:
            if r < 0.4:
                try:
                    self.ledger.resume("kill9-operator", "simulated resume")
                    self.report.operator["resume"] += 1
                except LyraError:  # a booked fill holds a cap past its limit: closes first
                    self.report.operator["resume_refused_over_cap"] += 1
        elif r < 0.05:
            self.ledger.halt("simulated halt", "kill9-operator", demote=False)
            self.report.operator["halt"] += 1
        elif r < 0.10:
            self.ledger.reduce_only("simulated gradual stop", "kill9-operator")
            self.report.operator["reduce_only"] += 1
        for i in range(len(self.procs)):
            bot_id = f"k9-{self.seed}-{i}"
            if self.rng.random() < 0.5 and self.desk.lift_restriction(bot_id, "kill9-operator", self.clock()):
                self.report.operator["lift_restriction"] += 1
            dead = self.procs[i] is None and self.rng.random() < 0.3  # the operator checked the exchange
            if dead and self.desk.release_orphans(bot_id, "kill9-operator", self.clock(), "checked the exchange"):
                self.report.operator["release_orphans"] += 1

    def check(self, when: str, chain: bool = False) -> None:
        self.report.checks += 1
        problems = patient(lambda: check_invariants(self.ledger.engine, chain=chain))
        before = len(self.trail.problems)
        self.trail = patient(lambda: stopped_but_allowed(self.ledger.engine, self.trail))
        problems += self.trail.problems[before:]
        for p in problems:
            self.report.violations.append(f"kill {self.report.kills} ({when}, seed {self.seed}): {p}")

    def _tally(self) -> None:
        from lyra_governor import audit

        for record in audit.records(self.ledger.engine, events=("decision",)):
            self.report.decisions[str(record.payload.get("code") or record.payload.get("status"))] += 1
        self.report.fills = len(self.ledger.fill_rows(book="paper"))
        self.report.orphaned_seen = sum(
            len(r.payload.get("reservations", [])) for r in audit.records(self.ledger.engine,
                                                                          events=("reservations_orphaned",))
        )  # fmt: skip
        held = [r for r in self.ledger.open_reservations() if r["status"] == ReservationStatus.OPEN.value]
        self.report.operator["open_at_end"] = len(held)


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        db_url, bot_id, seed, wall0, sim0 = argv[1:6]
        worker(db_url, bot_id, int(seed), float(wall0), float(sim0))
        return 0
    raise SystemExit("usage: python -m tests.kill9 worker DB_URL BOT_ID SEED WALL0 SIM0")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
