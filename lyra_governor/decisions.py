"""A review's outcome as the strategy receives it: a `Decision`, audited and counted.

`deny` is the one path of every refusal and every wait (PENDING): its audit record is appended
in its own transaction (unless the store itself is what failed), and a store that fails while
auditing turns the code into STORE_BUSY / STORE_UNAVAILABLE. An allowed decision's record was
written with its reservation (`reservation.reserve`); `allowed` only counts and builds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from lyra_governor.checks import Review, decision_json
from lyra_governor.models import Decision, DecisionStatus, Denial, DenialCode, OrderProposal
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS
from lyra_governor.store_budget import StoreBusy

log = logging.getLogger(__name__)
ALLOWED = str(DecisionStatus.ALLOWED)  # counted once per allowed review (`.value` is a Python-level property)
_ALLOWED = DecisionStatus.ALLOWED  # read through its class, an enum member costs ~100 ns (EnumType.__getattr__)
# The allowed decision validated by the model's own validator: `Decision(**fields)` runs the same
# one through BaseModel.__init__ (a Python frame, the keywords packed, `self_instance`), ~5k of its
# ~21k instructions (callgrind); the same model, its fields set the same (test_governor checks one)
_validate_decision = Decision.__pydantic_validator__.validate_python


@dataclass(eq=False)
class Decisions:
    """One governor's decisions: every refusal and wait audited and counted; allowed ones counted."""

    seat: Seat

    def deny(self, p: OrderProposal, denial: Denial, notional: Decimal = Decimal(0)) -> Decision:
        """The one deny path: audited (unless the store itself is what failed), counted."""
        code, message, status = denial.code, denial.message, denial.status
        now = self.seat.clock()
        store_failed = code in (DenialCode.STORE_UNAVAILABLE, DenialCode.STORE_BUSY)
        if status is DecisionStatus.DENIED and not store_failed:
            self.seat.tally.denied(now)
        seq: int | None = None
        if not store_failed:
            try:
                payload_json = decision_json(p, status, code, message, notional, None, None)
                seq = self.seat.store.audit("decision", payload_json, self.seat.bot_id, now)
            except StoreBusy as exc:
                log.warning("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_BUSY, f"{message} (and the store is busy: {exc})"
            except STORE_ERRORS as exc:
                log.error("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_UNAVAILABLE, f"{message} (and the store is unavailable)"
        self.seat.tally.count(code.value if status is DecisionStatus.DENIED else status.value)
        return Decision(
            proposal_id=p.proposal_id,
            status=status,
            code=code,
            message=message,
            notional_usd=notional if notional.is_finite() else Decimal(0),
            audit_seq=seq,
        )

    def allowed(self, r: Review, reservation_id: str, audit_seq: int) -> Decision:
        mandate = r.mandate
        self.seat.tally.count(ALLOWED)
        decision: Decision = _validate_decision(
            {
                "proposal_id": r.p.proposal_id,
                "status": _ALLOWED,
                "message": "allowed",
                "notional_usd": r.notional_usd,
                "reservation_id": reservation_id,
                "mandate_id": mandate.mandate_id if mandate else None,
                "consensus_id": mandate.consensus_id if mandate else None,
                "size_scale": mandate.size_scale if mandate else 1.0,
                "audit_seq": audit_seq,
            }
        )
        return decision
