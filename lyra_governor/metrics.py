"""Prometheus metrics computed from the shared store at scrape time.

Why at scrape time: bots run in other processes and containers; in-process counters in the
server would only count the server. Everything here is read from the ledger and the audit
trail, so a scrape is right no matter which process made the decision.

The audit trail is append-only, so decision and consensus counters are tallied
incrementally: each scrape reads only the records after the last one it saw (by sequence
number, on the indexed event column), which keeps scrapes cheap on a long trail and the
counters monotonic, as Prometheus expects of a ``_total``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from lyra_governor import audit, phases
from lyra_governor.chain import GENESIS_HASH
from lyra_governor.config import Settings
from lyra_governor.ledger import Ledger
from lyra_governor.models import TradingState
from lyra_governor.status import COUNCIL_EVENTS, day_start, openrouter_spend_today

TALLIED_EVENTS = ("decision", "alert", "evidence", "breaker", *COUNCIL_EVENTS)
HEALTH_EVIDENCE = "checkpoint.ai_health"  # the 15-minute council health check is a council decision too
LATENCY_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
BATCH = 10_000


@dataclass
class AuditTally:
    """Running totals over the audit trail, advanced by `advance`."""

    cursor: int = 0
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    cost_by_day: dict[float, float] = field(default_factory=dict)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0
    alerts: dict[str, int] = field(default_factory=dict)
    degraded: int = 0  # consultations where fewer than the quorum answered
    no_answer: dict[str, int] = field(default_factory=dict)  # voters without an answer, by why
    breakers: dict[tuple[str, str], int] = field(default_factory=dict)  # (code, action) -> trips

    def reset(self) -> None:
        fresh = AuditTally()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def add(self, event: str, ts: float, payload: dict[str, Any]) -> None:
        if event == "decision":
            key = (str(payload.get("status") or "UNKNOWN"), str(payload.get("code") or ""))
            self.decisions[key] = self.decisions.get(key, 0) + 1
        elif event == "evidence":
            if payload.get("kind") == HEALTH_EVIDENCE:
                self.add("consensus", ts, payload)
        elif event == "alert":
            level = str(payload.get("level") or "UNKNOWN")
            self.alerts[level] = self.alerts.get(level, 0) + 1
        elif event == "breaker":
            trip = (str(payload.get("code") or "UNKNOWN"), str(payload.get("action") or "UNKNOWN"))
            self.breakers[trip] = self.breakers.get(trip, 0) + 1
        else:
            verdict = str(payload.get("verdict") or "UNKNOWN")
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
            if payload.get("degraded") is True:
                self.degraded += 1
            missing = payload.get("no_answer")
            if isinstance(missing, dict):
                for kind, n in missing.items():
                    if isinstance(n, int) and n > 0:
                        self.no_answer[str(kind)] = self.no_answer.get(str(kind), 0) + n
            cost = payload.get("cost_usd")
            if isinstance(cost, int | float) and math.isfinite(cost) and cost >= 0:
                self.cost_usd += cost
                day = day_start(ts)
                self.cost_by_day[day] = self.cost_by_day.get(day, 0.0) + cost
                for old in [d for d in self.cost_by_day if d < day - 86_400 * 2]:
                    del self.cost_by_day[old]
            latency = payload.get("latency_s")
            if isinstance(latency, int | float) and math.isfinite(latency) and latency >= 0:
                self.latency_count += 1
                self.latency_sum += latency
                for i, bound in enumerate(LATENCY_BUCKETS):
                    if latency <= bound:
                        self.latency_buckets[i] += 1

    def advance(self, engine: sa.engine.Engine) -> None:
        """Read the records after `cursor`; start over if the store was replaced (head went back)."""
        head_seq, _ = audit.head(engine)
        if head_seq < self.cursor:
            self.reset()  # a new store: counters restart (Prometheus sees a counter reset)
        while True:
            rows = audit.records(engine, events=TALLIED_EVENTS, after_seq=self.cursor, limit=BATCH)
            for row in rows:
                self.add(row.event, row.ts, row.payload)
                self.cursor = row.seq
            if len(rows) < BATCH:
                break


class VerifyCache:
    """The audit chain's verification for a long-running reader (the server), kept current
    incrementally (`audit.verify_since`): each check walks only the records appended since the
    last verified one, in one short snapshot up to the head it read, at most every `every_s`;
    the whole chain is walked again every `full_every_s`. So scrapes stay cheap on a long trail
    and no long read transaction keeps SQLite's WAL from being checkpointed."""

    def __init__(self, every_s: float = 5.0, full_every_s: float = 3600.0) -> None:
        self.every_s = every_s
        self.full_every_s = full_every_s
        self.result: dict[str, Any] | None = None
        self._at = -math.inf
        self._full_at = -math.inf
        self._seq, self._hash = 0, GENESIS_HASH
        self._lock = threading.Lock()

    def get(self, engine: sa.engine.Engine) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self.result is not None and now - self._at < self.every_s:
                return self.result
            if now - self._full_at >= self.full_every_s:
                self._seq, self._hash, self._full_at = 0, GENESIS_HASH, now
            if self.result is not None and not self.result["ok"] and self._seq:
                return self.result  # broken stays broken until the next full walk
            r, self._seq, self._hash = audit.verify_since(engine, self._seq, self._hash)
            self.result = {
                "ok": r.ok,
                "verified": True,
                "records": r.count,
                "head_seq": r.head_seq,
                "head_hash": r.head_hash,
                "first_broken": r.first_broken,
                "problem": r.problem,
                "verified_at": time.time(),
            }
            self._at = now
            return self.result


class LyraCollector(Collector):
    """A prometheus_client collector over one ledger (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
        verify: VerifyCache | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.clock = clock
        self.verify = verify or VerifyCache()
        self.tally = AuditTally()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("lyra_up", "1 when the store could be read for this scrape")
        try:
            with self._lock:
                families = list(self._families())
        except (sa.exc.SQLAlchemyError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily("lyra_scrape_duration_seconds", "Time to read the store for this scrape")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self) -> Iterator[Metric]:
        now = self.clock()
        ledger, settings = self.ledger, self.settings
        state = ledger.state()
        yield _gauge("lyra_phase", "Commissioning phase (1-5)", state.phase)
        yield _gauge("lyra_halted", "1 while trading is halted", int(state.halted))
        ts = GaugeMetricFamily("lyra_trading_state", "1 for the current trading state", labels=["state"])
        for each in TradingState:
            ts.add_metric([each.value], int(state.trading_state is each))
        yield ts
        rung = GaugeMetricFamily("lyra_rung", "Phase-4 rung per exchange (1 = first)", labels=["exchange"])
        for name, idx in sorted(state.rungs.items()):
            if state.phase == 4:
                rung.add_metric([name], idx + 1)
        yield rung

        capital = GaugeMetricFamily(
            "lyra_capital_usd",
            "Capital per book and exchange (TOTAL = book total)",
            labels=["book", "exchange", "kind"],
        )
        ratio = GaugeMetricFamily(
            "lyra_exposure_ratio", "(deployed + reserved) / cap in the active book", labels=["exchange"]
        )
        active = state.book or phases.LIVE_BOOK
        for book in (phases.PAPER_BOOK, phases.LIVE_BOOK):
            exp = ledger.exposure(book)
            for name, s in [*exp.exchanges.items(), (phases.TOTAL, exp.total)]:
                for kind, value in (("cap", s.cap_usd), ("reserved", s.reserved_usd), ("deployed", s.deployed_usd)):
                    capital.add_metric([book, name, kind], float(value))
                if book == active:
                    ratio.add_metric([name], float(s.used_usd / s.cap_usd) if s.cap_usd > 0 else 0.0)
        yield capital
        yield ratio
        yield _gauge("lyra_open_reservations", "Open reservations over all bots", len(ledger.open_reservations()))

        self.tally.advance(ledger.engine)
        t = self.tally
        yield _counts(
            "lyra_decisions", "Governor decisions by status and denial code (from the audit trail)",
            ["status", "code"], t.decisions,
        )  # fmt: skip
        yield _counts("lyra_consensus_requests", "Council verdicts recorded", ["verdict"], t.verdicts)
        degraded = CounterMetricFamily(
            "lyra_consensus_degraded", "Council consultations below the quorum (never PROCEED)"
        )
        degraded.add_metric([], t.degraded)
        yield degraded
        yield _counts(
            "lyra_consensus_no_answer", "Voters that gave no answer, by why (billing = HTTP 402)", ["kind"], t.no_answer
        )
        cost = CounterMetricFamily("lyra_consensus_cost_usd", "Council spend (OpenRouter usage) in USD")
        cost.add_metric([], t.cost_usd)
        yield cost
        spend = openrouter_spend_today(settings) if settings.consensus.backend == "openrouter" else None
        yield _gauge(
            "lyra_consensus_spend_today_usd",
            "Council spend this UTC day (OpenRouter budget file, else audited verdicts)",
            spend if spend is not None else t.cost_by_day.get(day_start(now), 0.0),
        )
        yield _gauge(
            "lyra_consensus_daily_budget_usd", "Configured daily council budget", settings.consensus.daily_budget_usd
        )
        buckets = []
        for bound, n in zip(LATENCY_BUCKETS, t.latency_buckets, strict=True):
            buckets.append((repr(bound), n))
        buckets.append(("+Inf", t.latency_count))
        latency = HistogramMetricFamily("lyra_consensus_latency_seconds", "Council decision latency")
        latency.add_metric([], buckets, t.latency_sum)
        yield latency
        yield _counts("lyra_alerts", "Alerts in the audit trail by level", ["level"], t.alerts)
        yield _counts(
            "lyra_breaker_trips", "Circuit-breaker trips in the audit trail by code and action",
            ["code", "action"], t.breakers,
        )  # fmt: skip

        from lyra_governor.checkpoints import SCHEDULE

        latest = ledger.latest_evidences(spec.evidence_kind for spec in SCHEDULE)  # HEALTH_EVIDENCE among them
        health = latest.get(HEALTH_EVIDENCE)
        rate = health.payload.get("response_rate") if health else None
        yield _gauge(
            "lyra_council_response_rate",
            "Share of voters that answered the last AI health check (NaN: never run)",
            float(rate) if isinstance(rate, int | float) else math.nan,
        )

        age = GaugeMetricFamily(
            "lyra_checkpoint_age_seconds", "Seconds since each checkpoint last ran (+Inf: never)", labels=["checkpoint"]
        )
        ok = GaugeMetricFamily("lyra_checkpoint_ok", "1 if the checkpoint's last run passed", labels=["checkpoint"])
        interval = GaugeMetricFamily("lyra_checkpoint_interval_seconds", "Checkpoint schedule", labels=["checkpoint"])
        for spec in SCHEDULE:
            rec = latest.get(spec.evidence_kind)
            ran = float(rec.payload.get("ran_at", rec.ts)) if rec else None
            age.add_metric([spec.name], max(0.0, now - ran) if ran is not None else math.inf)
            ok.add_metric([spec.name], int(rec.passed) if rec else 0)
            interval.add_metric([spec.name], spec.interval_s)
        yield age
        yield ok
        yield interval

        verified = self.verify.get(ledger.engine)
        yield _gauge("lyra_audit_ok", "1 if the audit chain verified at its last check", int(bool(verified["ok"])))
        yield _gauge("lyra_audit_records", "Records in the audit chain (head sequence)", verified["head_seq"])

        bots = ledger.bots()
        hb = GaugeMetricFamily(
            "lyra_bot_heartbeat_age_seconds", "Seconds since each bot's heartbeat", labels=["bot_id"]
        )
        alive = 0
        for b in bots:
            seconds = max(0.0, now - b.last_heartbeat)
            hb.add_metric([b.bot_id], seconds)
            alive += seconds <= settings.risk.heartbeat_timeout_s
        yield hb
        yield _gauge("lyra_bots_alive", "Bots whose heartbeat is within the timeout", alive)


def _counts(name: str, doc: str, labels: list[str], counts: Mapping[Any, float]) -> CounterMetricFamily:
    """A labelled counter from a tally's counts, in key order; a key is one label value or a
    tuple of them (in `labels` order)."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g


def build_registry(collector: LyraCollector) -> CollectorRegistry:
    """A registry holding only Lyra's collector (no process metrics of the server itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
