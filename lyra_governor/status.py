"""`collect_status(settings) -> dict`: the one picture of a running Lyra.

The single source of truth for `lyra-governor status --json` and `/forensic/status`. It reads
only the shared store (ledger rows, evidence, audit trail), never a bot's memory, so it is
right from any terminal or container while bots trade elsewhere.

Sections that cannot be computed degrade to ``"unknown"`` with the reason instead of failing
the whole answer; only an unreachable store is an error (`StoreUnavailable`), because then
nothing here would be true.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import importlib
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lyra_governor import audit, phases
from lyra_governor.config import Settings
from lyra_governor.errors import StoreUnavailable
from lyra_governor.ladder import EvidenceRecord
from lyra_governor.ledger import Ledger, ScopeExposure
from lyra_governor.money import from_musd
from lyra_governor.redact import redact
from lyra_governor.store_health import classify, is_damage

UNKNOWN = "unknown"
COUNCIL_EVENTS = ("council_verdict", "consensus")
EVIDENCE_KINDS = ("phase1", "phase2", "phase3_paper", "drill")
NO_VERDICT = "no council verdict on the evidence"


def usd(value: Decimal) -> float:
    """Money for JSON: a number (scripts compare it), exact to the micro-dollar."""
    return float(value.quantize(Decimal("0.000001")))


def _scope(s: ScopeExposure) -> dict[str, Any]:
    return {
        "cap_usd": usd(s.cap_usd),
        "reserved_usd": usd(s.reserved_usd),
        "deployed_usd": usd(s.deployed_usd),
        "orphaned_usd": usd(s.orphaned_usd),  # silent bots' orders that may still be live (still counted)
        "used_usd": usd(s.used_usd),
        "remaining_usd": usd(s.remaining_usd),
        "utilization": float(s.used_usd / s.cap_usd) if s.cap_usd > 0 else 0.0,
    }


def day_start(now: float) -> float:
    """Midnight UTC of `now`'s day: "spend today" is counted per UTC day."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def audit_rows(
    ledger: Ledger, events: tuple[str, ...], since: float, limit: int = 50_000, after_seq: int | None = None
) -> list[dict[str, Any]]:
    """Audit records of `events` since `since` (and after `after_seq`), newest `limit` of them,
    oldest first, parsed."""
    found = audit.records(ledger.engine, events=events, since=since, after_seq=after_seq, limit=limit, newest=True)
    return [{"seq": r.seq, "ts": r.ts, "actor": r.actor, "event": r.event, "p": r.payload} for r in found]


def ladder_summary(settings: Settings, ledger: Ledger) -> dict[str, Any]:
    state = ledger.state()
    exposure = ledger.exposure()
    rungs_usd = settings.ladder.rungs_usd
    rungs: dict[str, Any] = {}
    if state.phase == 4:
        for name, idx in sorted(state.rungs.items()):
            i = max(0, min(idx, len(rungs_usd) - 1))
            rungs[name] = {"rung": i + 1, "of": len(rungs_usd), "cap_usd": usd(rungs_usd[i])}
    lowest = min((r["rung"] for r in rungs.values()), default=None)
    exchanges = {name: {**_scope(s), "rung": rungs.get(name, {}).get("rung")} for name, s in exposure.exchanges.items()}
    return {
        "phase": state.phase,
        "phase_name": phases.PHASE_NAMES[state.phase],
        "phase_since": state.phase_since,
        # Phase 4 only: the lowest rung (1 = the first, $100) over the exchanges; per exchange below.
        "rung": lowest,
        "rungs": rungs,
        "trading_state": state.trading_state.value,
        "halted": state.halted,
        "reason": state.reason,
        "state_since": state.updated_at,
        "book": exposure.book,
        "threshold": settings.threshold(state.phase),
        "deployed_usd": usd(exposure.total.deployed_usd),
        "reserved_usd": usd(exposure.total.reserved_usd),
        "cap_usd": usd(exposure.total.cap_usd),
        "remaining_usd": usd(exposure.total.remaining_usd),
        "exchanges": exchanges,
    }


def promotion_summary(settings: Settings, ledger: Ledger) -> dict[str, Any]:
    facts = ledger.promotion_facts()
    step = phases.next_step(facts, len(settings.ladder.rungs_usd))
    blockers = [b for b in phases.promotion_blockers(facts, settings.ladder, None) if b != NO_VERDICT]
    return {
        "next_phase": step.to_phase if step else None,
        "rung_up": list(step.rung_up) if step else [],
        "evidence_ready": not blockers,
        "blockers": blockers,
    }


class LatestEvidence:
    """The latest evidence of every kind the status shows, read in one statement when a section
    first asks (a failed read fails that section, and the next section reads again)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._found: dict[str, EvidenceRecord] | None = None

    def __call__(self, kind: str) -> EvidenceRecord | None:
        if self._found is None:
            from lyra_governor.checkpoints import SCHEDULE

            kinds = [*EVIDENCE_KINDS, *(spec.evidence_kind for spec in SCHEDULE)]  # checkpoint.ai_health among them
            self._found = self.ledger.latest_evidences(kinds)
        return self._found.get(kind)


def _evidence(latest: LatestEvidence) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in EVIDENCE_KINDS:
        rec = latest(kind)
        out[kind] = None if rec is None else {"passed": rec.passed, "ts": rec.ts, "audit_seq": rec.audit_seq}
    return out


def _checkpoints(latest: LatestEvidence, now: float) -> dict[str, Any]:
    from lyra_governor.checkpoints import GRACE, SCHEDULE

    out: dict[str, Any] = {}
    for spec in SCHEDULE:
        rec = latest(spec.evidence_kind)
        if rec is None:
            out[spec.name] = {"last_run": None, "age_s": None, "ok": None, "summary": "never run", "overdue": True}
            continue
        ran = float(rec.payload.get("ran_at", rec.ts))
        age = max(0.0, now - ran)
        out[spec.name] = {
            "last_run": ran,
            "age_s": round(age, 3),
            "interval_s": spec.interval_s,
            "ok": rec.passed,
            "summary": str(rec.payload.get("summary", ""))[:300],
            "overdue": age > spec.interval_s * (1 + GRACE),
        }
    return out


def _council(
    settings: Settings, ledger: Ledger, latest: LatestEvidence, now: float, checkpoints: dict[str, Any]
) -> dict[str, Any]:
    roles = settings.consensus.roles
    council: dict[str, Any] = {
        "backend": settings.consensus.backend,
        "voters": len(roles),
        "voters_up": UNKNOWN,
        "response_rate": UNKNOWN,
        "last_health_check": None,
        "keys_left": "not needed (local voters)" if settings.consensus.backend == "local" else UNKNOWN,
        "spend_today_usd": UNKNOWN,
        "daily_budget_usd": settings.consensus.daily_budget_usd,
        "verdicts_today": {},
    }
    health = latest("checkpoint.ai_health")
    if health is not None and isinstance(health.payload.get("response_rate"), int | float):
        rate = float(health.payload["response_rate"])
        council["response_rate"] = rate
        council["voters_up"] = round(rate * len(roles))
        council["last_health_check"] = float(health.payload.get("ran_at", health.ts))
        council["last_verdict"] = health.payload.get("verdict")
    verdicts = audit_rows(ledger, COUNCIL_EVENTS, day_start(now))
    costs = [r["p"].get("cost_usd") for r in verdicts]
    known = [float(c) for c in costs if isinstance(c, int | float)]
    if verdicts or settings.consensus.backend == "local":
        council["spend_today_usd"] = round(sum(known), 6)
    by_verdict: dict[str, int] = {}
    for r in verdicts:
        v = str(r["p"].get("verdict", UNKNOWN))
        by_verdict[v] = by_verdict.get(v, 0) + 1
    council["verdicts_today"] = by_verdict
    council["degraded_today"] = sum(1 for r in verdicts if r["p"].get("degraded") is True)
    council["quorum"] = settings.consensus.quorum
    if verdicts:
        council["last_degraded"] = bool(verdicts[-1]["p"].get("degraded", False))
    if settings.consensus.backend == "openrouter":
        recorded = openrouter_spend_today(settings)
        if recorded is not None:
            council["spend_today_usd"] = round(recorded, 6)
        council["keys_left"] = openrouter_keys_configured(settings)
    # The consensus package may persist more (key pool, budget): an optional `health(settings)`.
    try:
        hook = getattr(importlib.import_module("lyra_governor.consensus"), "health", None)
        if callable(hook):
            extra = hook(settings)
            if isinstance(extra, dict):
                council.update(extra)
    except Exception as exc:  # the hook is optional; its failure must not hide the rest
        council["health_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return council


def openrouter_spend_today(settings: Settings) -> float | None:
    """Today's OpenRouter spend from the budget file every voter process shares, or None."""
    try:
        openrouter = importlib.import_module("lyra_governor.consensus.openrouter")
        path = Path(settings.data_dir) / "openrouter_spend.json"
        if not path.exists():
            return None
        return float(openrouter.Budget(path, settings.consensus.daily_budget_usd).spent_today())
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def openrouter_keys_configured(settings: Settings) -> int | str:
    """How many OpenRouter keys are configured (names only, never values). Keys a bot found
    revoked (401/402) are only known inside that bot, so this is the pool before rotation."""
    in_env = sum(1 for i in range(1, 9) if os.environ.get(f"LYRA_OPENROUTER_KEY{i}"))
    if not in_env and os.environ.get("OPENROUTER_API_KEY"):
        in_env = 1
    try:
        vault = importlib.import_module("lyra_governor.vault").open_vault(settings)
    except ImportError:
        vault = None
    except Exception:  # a locked vault (no LYRA_VAULT_PASSWORD here) is not a status error
        return in_env or "unknown (vault locked: set LYRA_VAULT_PASSWORD to count its keys)"
    if vault is None:
        return in_env
    in_vault = sum(1 for name in vault.names() if name.startswith("openrouter/key"))
    return in_vault or in_env


class ActivityWindow:
    """The decision records of the last `window_s`, kept by a long-running reader (the server):
    each request reads only the records appended since the last one (by sequence number) and
    drops those that left the window, instead of re-reading the whole window every time.

    The counts by outcome and the rows of each mandate are kept as rows enter and leave, so a
    summary costs the records appended since the last one plus the 50 mandates it shows, not a
    walk over the whole window: with two bots trading, that walk (tens of thousands of rows of
    Python) held the server's GIL for 50-100 ms once a second, the /metrics p99 of issue 17."""

    LIMIT = 50_000
    SHOWN = 50

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.cursor = 0
        self.rows: collections.deque[dict[str, Any]] = collections.deque()
        self.counts: dict[str, int] = {}
        self.mandates: dict[str, collections.deque[dict[str, Any]]] = {}

    @staticmethod
    def _key(row: dict[str, Any]) -> str:
        p = row["p"]
        return str(p.get("code") or p.get("status") or UNKNOWN)

    @staticmethod
    def _mandate(row: dict[str, Any]) -> str | None:
        p = row["p"]
        mandate_id = p.get("mandate_id")
        return str(mandate_id) if p.get("status") == "ALLOWED" and mandate_id else None

    def _clear(self) -> None:
        self.rows.clear()
        self.counts.clear()
        self.mandates.clear()

    def _add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        key = self._key(row)
        self.counts[key] = self.counts.get(key, 0) + 1
        mandate = self._mandate(row)
        if mandate is not None:
            self.mandates.setdefault(mandate, collections.deque()).append(row)

    def _drop_oldest(self) -> None:
        row = self.rows.popleft()
        key = self._key(row)
        left = self.counts[key] - 1
        if left:
            self.counts[key] = left
        else:
            del self.counts[key]
        mandate = self._mandate(row)
        if mandate is not None:
            kept = self.mandates[mandate]
            kept.popleft()
            if not kept:
                del self.mandates[mandate]

    def feed(self, fresh: list[dict[str, Any]], now: float) -> None:
        """Add `fresh` (oldest first, after `cursor`) and drop what left the window."""
        if fresh and self.rows and fresh[0]["seq"] <= self.rows[-1]["seq"]:  # a new store: start over
            self._clear()
        for row in fresh:
            self._add(row)
        if fresh:
            self.cursor = int(fresh[-1]["seq"])
        horizon = now - self.window_s
        while self.rows and (self.rows[0]["ts"] < horizon or len(self.rows) > self.LIMIT):
            self._drop_oldest()

    def advance(self, ledger: Ledger, now: float) -> ActivityWindow:
        self.feed(audit_rows(ledger, ("decision",), now - self.window_s, self.LIMIT, after_seq=self.cursor), now)
        return self

    def summary(self, window: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """(activity, open mandates) of the rows in the window: the newest `SHOWN` mandates by
        last use (ties: first seen first)."""
        newest = sorted(self.mandates.items(), key=lambda kv: (-kv[1][-1]["ts"], kv[1][0]["seq"]))[: self.SHOWN]
        shown = []
        for _, rows in newest:
            first = rows[0]["p"]
            notional = 0.0
            for r in rows:
                with contextlib.suppress(ValueError, TypeError):
                    notional = round(notional + float(r["p"].get("notional_usd") or 0), 6)
            shown.append(
                {
                    "mandate_id": first.get("mandate_id"),
                    "consensus_id": first.get("consensus_id"),
                    "connector": first.get("connector"),
                    "pair": first.get("pair"),
                    "orders": len(rows),
                    "notional_usd": notional,
                    "first_used": rows[0]["ts"],
                    "last_used": rows[-1]["ts"],
                }
            )
        activity = {"window_s": window, "decisions": len(self.rows), "by_outcome": dict(self.counts)}
        open_mandates = {
            "source": f"decisions in the last {window:g} s (mandates live in each bot's memory)",
            "count": len(self.mandates),
            "mandates": shown,
        }
        return activity, open_mandates


def _activity(
    settings: Settings, ledger: Ledger, now: float, kept: ActivityWindow | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decisions of the last mandate window and the mandates they were approved under.

    Mandates live in each bot's memory; the decisions that used them are in the audit trail,
    so "open mandates" here are the ones decisions used within the mandate lifetime.
    """
    window = settings.consensus.mandate_ttl_s
    if kept is None:
        kept = ActivityWindow(window)
        kept.feed(audit_rows(ledger, ("decision",), now - window), now)
    else:
        kept.advance(ledger, now)
    return kept.summary(window)


def _breakers(ledger: Ledger, now: float) -> dict[str, Any]:
    """Circuit-breaker trips today (audit event ``breaker``, lyra_governor/breakers) by code, and
    the latest ones with their scope and sentence."""
    rows = audit_rows(ledger, ("breaker",), day_start(now), limit=5000)
    by_code: dict[str, int] = {}
    for r in rows:
        code = str(r["p"].get("code") or UNKNOWN)
        by_code[code] = by_code.get(code, 0) + 1
    latest = [
        {"ts": r["ts"], "bot_id": r["actor"], "code": r["p"].get("code"), "action": r["p"].get("action"),
         "scope": r["p"].get("scope"), "message": r["p"].get("message")}
        for r in rows[-10:]
    ]  # fmt: skip
    return {"trips_today": len(rows), "by_code": by_code, "latest": latest[::-1]}


def _alerts(ledger: Ledger, now: float) -> dict[str, Any]:
    rows = audit_rows(ledger, ("alert",), now - 86_400, limit=5000)
    levels: dict[str, int] = {}
    for r in rows:
        level = str(r["p"].get("level", UNKNOWN))
        levels[level] = levels.get(level, 0) + 1
    last = [
        {"ts": r["ts"], "level": r["p"].get("level"), "message": str(r["p"].get("message", ""))[:200]}
        for r in rows[-5:]
    ]
    return {"last_24h": levels, "latest": last}


def _audit(ledger: Ledger, verify: bool) -> dict[str, Any]:
    if verify:
        result = audit.verify(ledger.engine)
        return {
            "ok": result.ok,
            "verified": True,
            "records": result.count,
            "head_seq": result.head_seq,
            "head_hash": result.head_hash,
            "first_broken": result.first_broken,
            "problem": result.problem,
        }
    tail = audit.tail(ledger.engine, 1)
    return {
        "ok": None,
        "verified": False,
        "records": tail[0].seq if tail else 0,
        "head_seq": tail[0].seq if tail else 0,
        "head_hash": tail[0].hash if tail else "",
        "first_broken": None,
        "problem": "",
    }


def _bots(settings: Settings, ledger: Ledger, now: float) -> list[dict[str, Any]]:
    timeout = settings.risk.heartbeat_timeout_s
    return [
        {
            "bot_id": b.bot_id,
            "last_heartbeat": b.last_heartbeat,
            "age_s": round(max(0.0, now - b.last_heartbeat), 3),
            "alive": now - b.last_heartbeat <= timeout,
            "host": b.host,
            "pid": b.pid,
        }
        for b in ledger.bots()
    ]


def _strays(ledger: Ledger) -> list[dict[str, Any]]:
    """Orders found resting that no reservation held (placed before a crash, by hand, or
    released while they rested): counted against the caps until they end."""
    keys = ("reservation_id", "bot_id", "connector", "trading_pair", "side", "amount", "price", "filled_amount",
            "client_order_id", "status")  # fmt: skip
    rows = sorted(ledger.stray_reservations(), key=lambda r: (float(r["created_at"]), r["reservation_id"]))
    return [
        {**{k: r[k] for k in keys}, "reserved_usd": usd(from_musd(int(r["reserved_musd"]))),
         "found_at": r["created_at"]}
        for r in rows
    ]


def _section(status: dict[str, Any], name: str, build: Any) -> Any:
    """Run one section; on failure record ``unknown`` and why, keep the rest."""
    try:
        return build()
    except StoreUnavailable:
        raise
    except sa.exc.OperationalError:
        raise
    except Exception as exc:
        if is_damage(exc):
            raise  # a damaged or foreign store: nothing here would be true; name the damage instead
        status.setdefault("errors", {})[name] = redact(f"{type(exc).__name__}: {exc}")[:300]
        return UNKNOWN


def collect_status(
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    now: float | None = None,
    verify_audit: bool = True,
    audit_result: dict[str, Any] | None = None,
    activity: ActivityWindow | None = None,
) -> dict[str, Any]:
    """Everything an operator needs, as one JSON-ready dict (see module docstring).

    `audit_result` lets a long-running caller (the server) pass a cached verification
    instead of walking the whole chain on every request.
    """
    now = time.time() if now is None else now
    own = ledger is None
    try:
        if ledger is None:
            ledger = Ledger.open(settings, read_only=True)
        status: dict[str, Any] = {
            "generated_at": now,
            "generated_at_utc": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "store": sa.engine.make_url(settings.db_url).render_as_string(hide_password=True),
            "config": settings.source,
        }
        status.update(ladder_summary(settings, ledger))
        lg = ledger
        status["promotion"] = _section(status, "promotion", lambda: promotion_summary(settings, lg))
        latest = LatestEvidence(lg)
        status["evidence"] = _section(status, "evidence", lambda: _evidence(latest))
        checkpoints = _section(status, "checkpoints", lambda: _checkpoints(latest, now))
        status["checkpoints"] = checkpoints
        status["council"] = _section(
            status,
            "council",
            lambda: _council(settings, lg, latest, now, checkpoints if isinstance(checkpoints, dict) else {}),
        )
        kept = activity
        activity = _section(status, "activity", lambda: _activity(settings, lg, now, kept))
        status["activity"], status["mandates"] = activity if isinstance(activity, tuple) else (UNKNOWN, UNKNOWN)
        status["alerts"] = _section(status, "alerts", lambda: _alerts(lg, now))
        status["breakers"] = _section(status, "breakers", lambda: _breakers(lg, now))
        audit_info = audit_result
        if audit_info is None:
            audit_info = _section(status, "audit", lambda: _audit(lg, verify_audit))
        status["audit"] = audit_info
        status["audit_ok"] = audit_info.get("ok") if isinstance(audit_info, dict) else None
        status["bots"] = _section(status, "bots", lambda: _bots(settings, lg, now))
        status["stray_orders"] = _section(status, "stray_orders", lambda: _strays(lg))
        return status
    except sa.exc.SQLAlchemyError as exc:
        raise classify(settings.db_url, exc) from None
    finally:
        if own and ledger is not None:
            ledger.close()
