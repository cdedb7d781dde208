"""A fill that took a cap past its limit (slippage, a real overfill) is booked and stops
trading; the stop must not be lifted while the cap is still passed, or the store is ACTIVE
over a cap (what `invariants.check_invariants` and the simulation report as a violation)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from lyra_governor.errors import LyraError
from lyra_governor.governor import Governor
from lyra_governor.invariants import check_invariants
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal, Side, TradingState

from .conftest import decide

Propose = Callable[..., OrderProposal]


def _fill(gov: Governor, reservation_id: str | None, amount: str, price: str) -> None:
    gov.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=reservation_id or "",
                                  filled_amount=Decimal(amount), fill_price=Decimal(price)))  # fmt: skip


@pytest.mark.parametrize("stop", ["slippage", "halt"])
def test_no_resume_while_a_fill_holds_a_cap_past_its_limit(governor: Governor, propose: Propose, stop: str) -> None:
    d = decide(governor, propose(amount=Decimal("0.004")))  # 240 USD of the 1,000 USD cap
    assert d.allowed, d
    if stop == "halt":  # halted when the fill comes: it stays halted, and resuming would make it ACTIVE
        governor.ledger.halt("test", "operator", demote=False)
    _fill(governor, d.reservation_id, "0.004", "300000")  # 1,200 USD deployed: it happened, it is booked
    assert governor.ledger.state().trading_state is not TradingState.ACTIVE
    with pytest.raises(LyraError, match="cap"):  # old code: resumed, ACTIVE at 1,200 USD on a 1,000 USD cap
        governor.ledger.resume("operator")
    assert governor.ledger.state().trading_state is not TradingState.ACTIVE
    assert check_invariants(governor.ledger.engine) == []
    if stop == "halt":  # from a halt, the way back under the cap is a gradual stop
        governor.ledger.reduce_only("closing what the fill passed", "operator")
        governor.ladder_state(fresh=True)
    sold = decide(governor, propose(side=Side.SELL, amount=Decimal("0.004"), price=Decimal(60000), reduce_only=True))
    assert sold.allowed, sold  # reducing still passes in the stop: that is how the operator gets back under
    _fill(governor, sold.reservation_id, "0.004", "60000")  # 960 USD deployed
    governor.ledger.resume("operator")
    assert governor.ledger.state().trading_state is TradingState.ACTIVE
    assert check_invariants(governor.ledger.engine) == []
