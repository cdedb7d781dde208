"""`decisions.built` makes a `Decision` without validating its fields again: each kind the
governor answers (allowed, denied, pending, a store failure) must be the very model that
`Decision(...)` validates from the same fields (the same values in the same order, the same
fields set, frozen, equal, the same hash, repr and JSON)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from pydantic import ValidationError

from lyra_governor.governor import Governor
from lyra_governor.models import Decision, DecisionStatus, Denial, DenialCode, OrderProposal

from .conftest import allowed

Propose = Callable[..., OrderProposal]


def same_as_validated(decision: Decision) -> None:
    fields = {name: getattr(decision, name) for name in decision.model_fields_set}
    validated = Decision(**fields)
    assert type(decision) is Decision
    assert list(decision.__dict__.items()) == list(validated.__dict__.items())
    assert decision.model_fields_set == validated.model_fields_set
    assert decision == validated and hash(decision) == hash(validated)
    assert repr(decision) == repr(validated) and decision.model_dump_json() == validated.model_dump_json()
    assert decision.__pydantic_extra__ is None and decision.__pydantic_private__ is None
    with pytest.raises(ValidationError):
        decision.message = "changed"  # type: ignore[misc]


def test_an_allowed_decision(governor: Governor, propose: Propose) -> None:
    decision = allowed(governor, propose())
    assert decision.allowed and decision.mandate_id and decision.reservation_id
    assert decision.model_fields_set == set(Decision.model_fields) - {"code"}
    same_as_validated(decision)


@pytest.mark.parametrize(
    "denial",
    [
        Denial(DenialCode.PRICE_COLLAR, "price far from mid"),
        Denial(DenialCode.NO_MANDATE, "wait", DecisionStatus.PENDING),
        Denial(DenialCode.STORE_BUSY, "busy"),
        Denial(DenialCode.STORE_UNAVAILABLE, "gone"),
    ],
)
@pytest.mark.parametrize("notional", [Decimal(0), Decimal("60.000"), Decimal("NaN")])
def test_a_refusal_or_a_wait(governor: Governor, propose: Propose, denial: Denial, notional: Decimal) -> None:
    decision = governor.decisions.deny(propose(), denial, notional)
    assert decision.status is denial.status and decision.code is denial.code
    assert decision.notional_usd == (notional if notional.is_finite() else 0)
    assert decision.model_fields_set == {"proposal_id", "status", "code", "message", "notional_usd", "audit_seq"}
    same_as_validated(decision)


def test_each_decision_has_its_own_fields_set(governor: Governor, propose: Propose) -> None:
    first, second = allowed(governor, propose()), allowed(governor, propose())
    assert first.model_fields_set is not second.model_fields_set
