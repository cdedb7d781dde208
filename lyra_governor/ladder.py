"""The commissioning ladder's moves and the evidence they stand on.

`phases` holds the rules (pure: caps per phase and rung, which connectors a phase permits,
what blocks a promotion); this module applies them to the store: the trading state (halt,
gradual stop, resume, drill), phase and rung moves (`set_phase`, `promote`, `demote`), the caps
each move implies (written through `order_store.set_caps`, the capital table's one writer), and
the facts a promotion is judged on (evidence records, live PnL per rung, critical alerts).
Each move is one `write_tx` transaction with its audit record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra_governor import audit, phases
from lyra_governor.config import Settings
from lyra_governor.errors import LyraError
from lyra_governor.models import ConsensusResult, Side, TradingState
from lyra_governor.money import from_musd, scope, to_musd
from lyra_governor.order_store import append_audit, set_caps
from lyra_governor.store import capital, evidence, fills, ladder, read_tx, rungs, write_tx


@dataclass(frozen=True)
class LadderState:
    phase: int
    trading_state: TradingState
    reason: str
    rungs: dict[str, int]
    phase_since: float
    updated_at: float

    @property
    def halted(self) -> bool:
        return self.trading_state is TradingState.HALTED

    @property
    def book(self) -> str | None:
        return phases.book_for_phase(self.phase)


@dataclass(frozen=True)
class EvidenceRecord:
    id: int
    kind: str
    passed: bool
    payload: dict[str, Any]
    actor: str
    ts: float
    audit_seq: int


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    blockers: list[str] = field(default_factory=list)
    state: LadderState | None = None
    audit_seq: int | None = None


def _evidence_record(row: Any) -> EvidenceRecord:
    return EvidenceRecord(
        int(row.id), row.kind, bool(row.passed), json.loads(row.payload), row.actor, float(row.ts), int(row.audit_seq)
    )


class Ladder:
    """The ladder's state and moves on one store (see the module docstring)."""

    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock

    def state(self, conn: Connection | None = None) -> LadderState:
        if conn is None:
            with read_tx(self.engine) as own:
                return self.state(own)
        row = conn.execute(sa.select(ladder).where(ladder.c.id == 1)).one()
        rung_rows = conn.execute(sa.select(rungs.c.exchange, rungs.c.rung)).all()
        return LadderState(
            phase=int(row.phase),
            trading_state=TradingState(row.trading_state),
            reason=row.reason,
            rungs={r.exchange: int(r.rung) for r in rung_rows},
            phase_since=float(row.phase_since),
            updated_at=float(row.updated_at),
        )

    def latest_evidence(self, kind: str) -> EvidenceRecord | None:
        with read_tx(self.engine) as conn:
            row = conn.execute(
                sa.select(evidence).where(evidence.c.kind == kind).order_by(evidence.c.id.desc()).limit(1)
            ).first()
        return None if row is None else _evidence_record(row)

    def latest_evidences(self, kinds: Iterable[str]) -> dict[str, EvidenceRecord]:
        """The latest record of each of `kinds` that has one, in one statement (a scrape of
        /metrics or /forensic/status asks for a dozen kinds: a dozen transactions before)."""
        wanted = sorted(set(kinds))
        if not wanted:
            return {}
        newest = sa.union_all(
            *(sa.select(sa.func.max(evidence.c.id)).where(evidence.c.kind == kind) for kind in wanted)
        )
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(evidence).where(evidence.c.id.in_(newest.scalar_subquery()))).all()
        return {row.kind: _evidence_record(row) for row in rows}

    def fill_rows(
        self, since: float = 0.0, exchange: str | None = None, book: str | None = None
    ) -> list[dict[str, Any]]:
        query = sa.select(fills).where(fills.c.ts >= since).order_by(fills.c.id)
        if exchange is not None:
            query = query.where(fills.c.exchange == exchange)
        if book is not None:
            query = query.where(fills.c.book == book)
        with read_tx(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    # --- audit and evidence -----------------------------------------------------------------

    def audit_append(self, event: str, payload: dict[str, Any], actor: str) -> int:
        """Append one audit record on its own (for events that change no ledger state)."""
        with write_tx(self.engine) as conn:
            return append_audit(conn, event, payload, actor, self.clock())

    def record_evidence(self, kind: str, payload: dict[str, Any], passed: bool, actor: str) -> int:
        """Store evidence (commissioning results, paper runs, drills) with its audit record."""
        now = self.clock()
        with write_tx(self.engine) as conn:
            seq = append_audit(conn, "evidence", {"kind": kind, "passed": passed, **payload}, actor, now)
            conn.execute(
                evidence.insert().values(
                    kind=kind, passed=passed, payload=audit.canonical_json(payload), actor=actor, ts=now, audit_seq=seq
                )
            )
        return seq

    # --- trading state ----------------------------------------------------------------------

    def _set_trading_state(
        self, conn: Connection, new: TradingState, reason: str, actor: str, event: str, extra: dict[str, Any]
    ) -> int:
        now = self.clock()
        before = self.state(conn)
        conn.execute(
            ladder.update().where(ladder.c.id == 1).values(trading_state=new.value, reason=reason, updated_at=now)
        )
        return append_audit(
            conn, event, {"from": before.trading_state.value, "to": new.value, "reason": reason, **extra}, actor, now
        )

    def halt(self, reason: str, actor: str, demote: bool = True) -> LadderState:
        """Emergency stop: nothing passes until `resume`; in phases 4-5 the ladder drops one rung."""
        with write_tx(self.engine) as conn:
            demoted = self._demote_in_tx(conn, None, f"emergency stop: {reason}", actor) if demote else {}
            self._set_trading_state(conn, TradingState.HALTED, reason, actor, "halt", {"demoted": demoted})
            return self.state(conn)

    def reduce_only(self, reason: str, actor: str) -> LadderState:
        """Gradual stop: only orders that reduce exposure pass."""
        with write_tx(self.engine) as conn:
            self._set_trading_state(conn, TradingState.REDUCING, reason, actor, "reduce_only", {})
            return self.state(conn)

    def resume(self, actor: str, reason: str = "operator resumed") -> LadderState:
        """Trade again. Refused while a fill holds a cap past its limit (slippage or an overfill
        is booked and stops trading, order_store.fill): resumed, the store would be ACTIVE over
        a cap. Reduce-only orders pass in the stop; once they brought it back under, resume."""
        with write_tx(self.engine) as conn:
            passed = [
                f"{r.scope} {from_musd(used)} USD > cap {from_musd(int(r.cap_musd))} USD"
                for r in conn.execute(sa.select(capital)).all()
                if (used := int(r.reserved_musd) + int(r.deployed_musd) + int(r.orphaned_musd)) > int(r.cap_musd)
            ]
            if passed:
                raise LyraError(
                    f"cannot resume: a cap is passed ({'; '.join(passed[:3])}); close positions with reduce-only "
                    "orders (they pass in a gradual stop) until every scope is under its cap, then resume"
                )
            self._set_trading_state(conn, TradingState.ACTIVE, reason, actor, "resume", {})
            return self.state(conn)

    def drill(self, actor: str) -> bool:
        """Emergency-stop drill: halt (without demotion), read the halt back on a fresh
        connection as any bot would, resume, and record the result as evidence."""
        before = self.state()
        self.halt("emergency-stop drill", actor, demote=False)
        with read_tx(self.engine) as conn:
            seen = self.state(conn).trading_state
        passed = seen is TradingState.HALTED
        if before.trading_state is TradingState.ACTIVE:  # back as it was, whatever the caps say
            with write_tx(self.engine) as conn:
                self._set_trading_state(conn, TradingState.ACTIVE, "emergency-stop drill finished", actor, "resume", {})
        else:
            with write_tx(self.engine) as conn:
                self._set_trading_state(conn, before.trading_state, before.reason, actor, "drill_restore", {})
        self.record_evidence("drill", {"seen_state": seen.value, "phase": before.phase}, passed, actor)
        return passed

    # --- ladder -----------------------------------------------------------------------------

    def set_phase(self, phase: int, actor: str, reason: str) -> LadderState:
        """Put the ladder in `phase` directly, audited. For a paper run's own store and for
        tests; operators go through `promote`, which demands evidence."""
        if phase not in phases.PHASES:
            raise LyraError(f"phase must be one of 1-5, not {phase}")
        now = self.clock()
        with write_tx(self.engine) as conn:
            before = self.state(conn)
            conn.execute(ladder.update().where(ladder.c.id == 1).values(phase=phase, phase_since=now, updated_at=now))
            if phase >= 4:
                self._init_rungs(conn, now)
            append_audit(conn, "set_phase", {"from": before.phase, "to": phase, "reason": reason}, actor, now)
            self._write_caps(conn)
            return self.state(conn)

    def _init_rungs(self, conn: Connection, now: float, rung: int = 0) -> None:
        existing = {r.exchange for r in conn.execute(sa.select(rungs.c.exchange)).all()}
        for name in self.live_exchanges():
            if name not in existing:
                conn.execute(rungs.insert().values(exchange=name, rung=rung, since=now))

    def live_exchanges(self) -> list[str]:
        """Exchanges Hummingbot can trade live: the only ones with a Phase-4 rung and a live cap
        (WhiteBIT and Digital Surge serve market data and validation only)."""
        return [name for name, spec in self.settings.exchanges.items() if spec.hummingbot]

    def promotion_facts(self) -> phases.PromotionFacts:
        state = self.state()
        passed = {}
        for kind in ("phase1", "phase2", "phase3_paper"):
            record = self.latest_evidence(kind)
            passed[kind] = bool(record and record.passed)
        paper = self.latest_evidence("phase3_paper")
        rung_facts: list[phases.RungFacts] = []
        critical = 0
        drill_ok = False
        if state.phase >= 4:
            now = self.clock()
            with read_tx(self.engine) as conn:
                rows = conn.execute(sa.select(rungs)).all()
            oldest = min((float(r.since) for r in rows), default=now)
            for row in rows:
                pnl, n = self._pnl_since(float(row.since), row.exchange)
                rung_facts.append(
                    phases.RungFacts(row.exchange, int(row.rung), (now - float(row.since)) / 3600, pnl, n)
                )
            critical = self._critical_alerts_since(oldest)
            drill = self.latest_evidence("drill")
            drill_ok = bool(drill and drill.passed and drill.ts >= oldest)
        return phases.PromotionFacts(
            phase=state.phase,
            halted=state.halted,
            evidence_passed=passed,
            paper_success_rate=float(paper.payload.get("success_rate", 0.0)) if paper else None,
            paper_limits_respected=bool(paper.payload.get("limits_respected", False)) if paper else None,
            rungs=rung_facts,
            critical_alerts_since_rung=critical,
            drill_passed_since_rung=drill_ok,
        )

    def _pnl_since(self, since: float, exchange: str) -> tuple[Decimal, int]:
        """Realised plus marked PnL in USD of live fills on `exchange` since `since`."""
        cash = Decimal(0)
        position: dict[str, Decimal] = {}
        last_price: dict[str, Decimal] = {}
        usd_rate: dict[str, Decimal] = {}
        rows = self.fill_rows(since, exchange, phases.LIVE_BOOK)
        for row in rows:
            amount, price = Decimal(row["amount"]), Decimal(row["price"])
            notional = from_musd(row["notional_musd"])
            sign = Decimal(1) if row["side"] == Side.BUY.value else Decimal(-1)
            cash += -sign * notional - from_musd(row["fee_musd"])
            pair = row["trading_pair"]
            position[pair] = position.get(pair, Decimal(0)) + sign * amount
            last_price[pair] = price
            usd_rate[pair] = notional / (amount * price) if amount * price else Decimal(1)
        marked = sum((position[p] * last_price[p] * usd_rate[p] for p in position), Decimal(0))
        return cash + marked, len(rows)

    def _critical_alerts_since(self, since: float) -> int:
        found = audit.records(self.engine, events=audit.CRITICAL_EVENTS, since=since)
        return sum(1 for record in found if audit.is_critical(record))

    def promote(self, actor: str, consensus: ConsensusResult | None) -> PromotionOutcome:
        """Go one step up the ladder if the evidence, the council and the operator agree.

        Refuses (returns the blockers, changes nothing but the audit trail) otherwise.
        """
        facts = self.promotion_facts()
        blockers = phases.promotion_blockers(facts, self.settings.ladder, consensus)
        consensus_info = (
            {
                "verdict": consensus.verdict.value,
                "agreement": consensus.agreement,
                "consensus_id": consensus.consensus_id,
            }
            if consensus
            else None
        )
        if blockers:
            seq = self.audit_append(
                "promote_refused", {"phase": facts.phase, "blockers": blockers, "consensus": consensus_info}, actor
            )
            return PromotionOutcome(False, blockers, self.state(), seq)
        step = phases.next_step(facts, len(self.settings.ladder.rungs_usd))
        assert step is not None  # no blockers means a next step exists
        now = self.clock()
        with write_tx(self.engine) as conn:
            if step.to_phase == facts.phase:  # phase 4: the named exchanges go up one rung
                for name in step.rung_up:
                    conn.execute(
                        rungs.update().where(rungs.c.exchange == name).values(rung=rungs.c.rung + 1, since=now)
                    )
            else:
                conn.execute(
                    ladder.update().where(ladder.c.id == 1).values(phase=step.to_phase, phase_since=now, updated_at=now)
                )
                if step.to_phase == 4:
                    self._init_rungs(conn, now)
            seq = append_audit(
                conn,
                "promote",
                {
                    "from_phase": facts.phase,
                    "to_phase": step.to_phase,
                    "rung_up": step.rung_up,
                    "consensus": consensus_info,
                },
                actor,
                now,
            )
            self._write_caps(conn)
            return PromotionOutcome(True, [], self.state(conn), seq)

    def demote(self, exchange: str | None, reason: str, actor: str) -> LadderState:
        with write_tx(self.engine) as conn:
            self._demote_in_tx(conn, exchange, reason, actor)
            return self.state(conn)

    def _demote_in_tx(self, conn: Connection, exchange: str | None, reason: str, actor: str) -> dict[str, Any]:
        """Phase 4: named exchange (or all) down one rung; phase 5 -> phase 4 at the top rung;
        phases 1-3 -> one phase down (operator demotion only)."""
        state = self.state(conn)
        now = self.clock()
        change: dict[str, Any] = {"from_phase": state.phase}
        if state.phase == 4:
            targets = [exchange] if exchange else list(state.rungs)
            for name in targets:
                if name in state.rungs:
                    new = phases.demoted_rung(state.rungs[name])
                    conn.execute(rungs.update().where(rungs.c.exchange == name).values(rung=new, since=now))
                    change[name] = {"from": state.rungs[name], "to": new}
        elif state.phase == 5:
            top = len(self.settings.ladder.rungs_usd) - 1
            conn.execute(ladder.update().where(ladder.c.id == 1).values(phase=4, phase_since=now, updated_at=now))
            self._init_rungs(conn, now, top)
            conn.execute(rungs.update().values(rung=top, since=now))
            change["to_phase"] = 4
        else:
            return change  # below phase 4 there is no live rung to lose: an emergency stop only halts
        change["to_phase"] = change.get("to_phase", state.phase)
        append_audit(conn, "demote", {"reason": reason, **change}, actor, now)
        self._write_caps(conn)
        return change

    def operator_demote_phase(self, reason: str, actor: str) -> LadderState:
        """One phase down (5 -> 4 -> 3 -> 2 -> 1), for an operator who wants to step back."""
        now = self.clock()
        with write_tx(self.engine) as conn:
            state = self.state(conn)
            new = max(1, state.phase - 1)
            conn.execute(ladder.update().where(ladder.c.id == 1).values(phase=new, phase_since=now, updated_at=now))
            append_audit(conn, "demote", {"reason": reason, "from_phase": state.phase, "to_phase": new}, actor, now)
            self._write_caps(conn)
            return self.state(conn)

    # --- caps -------------------------------------------------------------------------------

    def _ensure_caps(self) -> None:
        with write_tx(self.engine) as conn:
            self._write_caps(conn)

    def _write_caps(self, conn: Connection) -> None:
        """Set every scope's cap from the phase and rungs; the inactive book gets cap 0."""
        state = self.state(conn)
        ladder_cfg = self.settings.ladder
        active = state.book
        caps_musd: dict[str, int] = {}
        for book in (phases.PAPER_BOOK, phases.LIVE_BOOK):
            caps: dict[str, Decimal] = {}
            tradable = set(self.live_exchanges()) if book == phases.LIVE_BOOK else set(self.settings.exchanges)
            for name in self.settings.exchanges:
                caps[name] = (
                    phases.exchange_cap_usd(ladder_cfg, state.phase, state.rungs.get(name, 0))
                    if book == active and name in tradable
                    else Decimal(0)
                )
            total = phases.total_cap_usd(ladder_cfg, state.phase, list(caps.values())) if book == active else Decimal(0)
            caps[phases.TOTAL] = total
            caps_musd.update({scope(book, name): to_musd(cap) for name, cap in caps.items()})
        set_caps(conn, caps_musd)
