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
from lyra_governor.models import Decision, DecisionStatus, Denial, DenialCode, Order, OrderProposal
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS
from lyra_governor.store_budget import StoreBusy

log = logging.getLogger(__name__)
ALLOWED = str(DecisionStatus.ALLOWED)  # counted once per allowed review (`.value` is a Python-level property)
_ZERO = Decimal(0)
_ALLOWED = DecisionStatus.ALLOWED  # read through its class, an enum member costs ~100 ns (EnumType.__getattr__)
# A decision built from fields already valid, as `Decision.model_construct` builds one (the
# four slots set through `object.__setattr__`, the frozen model's own refusing): its values
# are the ones validation would keep (the review's own enums, strings, a finite Decimal, an
# int), and validating them again cost ~15k of an allowed review's ~450k instructions
# (callgrind). `model_construct` itself loops over the fields in Python and costs more than
# the validator. tests/unit/core/test_decision_model.py compares each kind with `Decision(...)`.
_new = object.__new__
_set = object.__setattr__
ALLOWED_FIELDS = frozenset(Decision.model_fields) - {"code"}  # what `allowed` sets (model_fields_set)
DENIED_FIELDS = frozenset({"proposal_id", "status", "code", "message", "notional_usd", "audit_seq"})


def built(values: dict[str, object], fields_set: frozenset[str]) -> Decision:
    """A `Decision` of `values` (every field, in the model's order), not validated again."""
    decision: Decision = _new(Decision)
    _set(decision, "__dict__", values)
    _set(decision, "__pydantic_fields_set__", set(fields_set))
    _set(decision, "__pydantic_extra__", None)
    _set(decision, "__pydantic_private__", None)
    return decision


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
                payload_json = decision_json(Order.of(p), status, code, message, notional, None, None)
                seq = self.seat.store.audit("decision", payload_json, self.seat.bot_id, now)
            except StoreBusy as exc:
                log.warning("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_BUSY, f"{message} (and the store is busy: {exc})"
            except STORE_ERRORS as exc:
                log.error("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_UNAVAILABLE, f"{message} (and the store is unavailable)"
        self.seat.tally.count(code.value if status is DecisionStatus.DENIED else status.value)
        values: dict[str, object] = {
            "proposal_id": p.proposal_id,
            "status": status,
            "code": code,
            "message": message,
            "notional_usd": notional if notional.is_finite() else _ZERO,
            "reservation_id": None,
            "mandate_id": None,
            "consensus_id": None,
            "size_scale": 1.0,
            "audit_seq": seq,
        }
        return built(values, DENIED_FIELDS)

    def allowed(self, r: Review, reservation_id: str, audit_seq: int) -> Decision:
        mandate = r.mandate
        self.seat.tally.count(ALLOWED)
        values: dict[str, object] = {
            "proposal_id": r.o.proposal_id,
            "status": _ALLOWED,
            "code": None,
            "message": "allowed",
            "notional_usd": r.notional_usd,
            "reservation_id": reservation_id,
            "mandate_id": mandate.mandate_id if mandate else None,
            "consensus_id": mandate.consensus_id if mandate else None,
            "size_scale": mandate.size_scale if mandate else 1.0,
            "audit_seq": audit_seq,
        }
        return built(values, ALLOWED_FIELDS)
