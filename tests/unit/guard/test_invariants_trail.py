"""`invariants.stopped_but_allowed`: the audit-trail replay the simulations use to prove that
nothing is ALLOWED after a committed halt, and only reduce-only orders in a gradual stop."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.invariants import check_invariants, stopped_but_allowed
from lyra_governor.ledger import Ledger
from lyra_governor.models import OrderProposal
from lyra_governor.store import reservations

from .conftest import decide

Propose = Callable[..., OrderProposal]


def _decision(ledger: Ledger, reduce_only: bool, status: str = "ALLOWED") -> None:
    payload = {"status": status, "side": "BUY", "amount": "0.001", "connector": "binance_paper_trade",
               "reduce_only": reduce_only}  # fmt: skip
    ledger.audit_append("decision", payload, "bot-1")


def test_an_allowed_decision_under_a_halt_is_found_and_one_after_the_resume_is_not(settings: Settings) -> None:
    ledger = Ledger.open(settings)
    try:
        _decision(ledger, reduce_only=False)
        ledger.halt("test", "operator", demote=False)
        _decision(ledger, reduce_only=False, status="DENIED")  # denials under a halt are what should happen
        _decision(ledger, reduce_only=True)  # a reduce-only order is no exception to a halt
        cursor = stopped_but_allowed(ledger.engine)
        assert len(cursor.problems) == 1 and "after a committed halt" in cursor.problems[0], cursor.problems
        ledger.resume("operator")
        _decision(ledger, reduce_only=False)
        ledger.reduce_only("test", "operator")
        _decision(ledger, reduce_only=True)
        _decision(ledger, reduce_only=False)  # an opening order in a gradual stop
        cursor = stopped_but_allowed(ledger.engine, cursor)  # goes on where it stopped
        assert len(cursor.problems) == 2 and "gradual stop" in cursor.problems[1], cursor.problems
        assert cursor.allowed == 5
        assert stopped_but_allowed(ledger.engine, cursor).problems == cursor.problems  # nothing new: nothing added
    finally:
        ledger.close()


def test_a_closed_reservation_that_still_holds_capital_is_found(governor: Governor, propose: Propose) -> None:
    """check_invariants reads only the rows that can break it (held, or holding): a terminal
    row that still holds capital is one of them."""
    d = decide(governor, propose())
    assert d.allowed and check_invariants(governor.ledger.engine) == []
    with governor.ledger.engine.begin() as conn:  # a bug that closes without releasing
        conn.execute(sa.update(reservations).where(reservations.c.reservation_id == d.reservation_id)
                     .values(status="CANCELLED"))  # fmt: skip
    problems = check_invariants(governor.ledger.engine)
    assert any("CANCELLED reservation" in p and "still holds" in p for p in problems), problems
    assert any("open reservations sum to 0" in p for p in problems), problems
