"""`checks.decision_json` writes a decision's audit record directly: its text must be exactly
`canonical_json(decision_payload(...))`, the record it replaced (the audit chain hashes it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lyra_governor.chain import canonical_json
from lyra_governor.checks import Review, decision_json, decision_payload
from lyra_governor.ladder import LadderState
from lyra_governor.models import DecisionStatus, DenialCode, Order, OrderProposal, OrderType, Side, TradingState
from tests.fixtures import START, proposal, wide_mandate

TEXT = st.text(max_size=40)  # quotes, backslashes, control characters, any unicode
DECIMALS = st.decimals(allow_nan=True, allow_infinity=True, places=None) | st.sampled_from(
    [Decimal("6.0000000"), Decimal("1E+3"), Decimal("-0"), Decimal("0.1234567891"), Decimal("sNaN")]
)


def review(p: OrderProposal, with_mandate: bool, consensus_id: str) -> Review:
    state = LadderState(3, TradingState.ACTIVE, "", {}, START, START)
    r = Review(p, START, state, "binance")
    if with_mandate:
        r.mandate = wide_mandate(p, START, consensus_id=consensus_id)
    return r


def same_text(p: OrderProposal, status: DecisionStatus, code: DenialCode | None, message: str, notional: Decimal,
              reservation_id: str | None, r: Review | None) -> None:  # fmt: skip
    expected = canonical_json(decision_payload(p, status, code, message, notional, reservation_id, r))
    assert decision_json(Order.of(p), status, code, message, notional, reservation_id, r) == expected


@settings(max_examples=300, deadline=None)
@given(
    text=TEXT,
    amount=DECIMALS,
    price=st.none() | DECIMALS,
    mid=DECIMALS,
    notional=DECIMALS,
    status=st.sampled_from(list(DecisionStatus)),
    code=st.none() | st.sampled_from(list(DenialCode)),
    side=st.sampled_from(list(Side)),
    reduce_only=st.booleans(),
    reservation_id=st.none() | TEXT,
    with_review=st.booleans(),
    with_mandate=st.booleans(),
)
def test_the_same_text_as_the_canonical_encoding_of_the_payload(
    text: str, amount: Decimal, price: Decimal | None, mid: Decimal, notional: Decimal, status: DecisionStatus,
    code: DenialCode | None, side: Side, reduce_only: bool, reservation_id: str | None, with_review: bool,
    with_mandate: bool,
) -> None:  # fmt: skip
    fields: dict[str, Any] = {"amount": amount, "price": price, "mid_price": mid, "side": side,
                              "reduce_only": reduce_only, "strategy": text[:128], "connector": f"x{text}"[:64],
                              "trading_pair": f"{text}-USDT"[-64:], "proposal_id": text,
                              "order_type": OrderType.MARKET if price is None else OrderType.LIMIT}  # fmt: skip
    p = proposal(START, **fields)
    r = review(p, with_mandate, f"cns-{text}") if with_review else None
    same_text(p, status, code, text, notional, reservation_id, r)


def test_an_allowed_review_and_a_denial_of_the_ordinary_proposal() -> None:
    p = proposal(START, client_order_id="c-1", note='a "quoted" note\n')
    r = review(p, True, "cns-1")
    same_text(p, DecisionStatus.ALLOWED, None, "", Decimal("60.0000001"), "res-1", r)
    same_text(p, DecisionStatus.DENIED, DenialCode.PRICE_COLLAR, 'price "é" \\ \x00 \u2028', Decimal(0), None, None)
    same_text(p, DecisionStatus.PENDING, DenialCode.NO_MANDATE, "wait", Decimal("NaN"), None, None)


def test_a_notional_too_large_for_micro_dollars_is_recorded_as_it_is() -> None:
    """1E+22 USD (a huge proposal, denied) cannot be quantized to six places in 28 digits: the
    record keeps the figure as it is instead of raising InvalidOperation (the record of a denial
    must be written). Raised on 42e31ac."""
    p = proposal(START)
    same_text(p, DecisionStatus.DENIED, DenialCode.INVALID_AMOUNT, "too large", Decimal("1E+22"), None, None)
    assert '"notional_usd":"1E+22"' in decision_json(
        Order.of(p), DecisionStatus.DENIED, DenialCode.INVALID_AMOUNT, "too large", Decimal("1E+22"), None, None
    )
