"""Test doubles shared by the unit, guarantee and load tests: one settable clock, one ordinary
proposal, one wide council mandate, and the review that waits out a market's first mandate.
The conftest files build their fixtures from these (never copies of them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra_governor.models import Decision, Mandate, OrderEvent, OrderEventKind, OrderProposal, Side

START = 1_800_000_000.0


class Clock:
    """A settable clock: the ledger, governor and checkpoints all read time from it."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def proposal(now: float, **overrides: Any) -> OrderProposal:
    """A 0.001 BTC limit buy at 60,000 on the paper connector, mid 60,010 stamped `now`."""
    fields: dict[str, Any] = {
        "bot_id": "bot-1",
        "connector": "binance_paper_trade",
        "trading_pair": "BTC-USDT",
        "side": Side.BUY,
        "amount": Decimal("0.001"),
        "price": Decimal(60000),
        "mid_price": Decimal(60010),
        "mid_price_ts": now,
    }
    fields.update(overrides)
    return OrderProposal(**fields)


def wide_mandate(
    p: OrderProposal,
    now: float,
    consensus_id: str = "cns-test",
    max_order_usd: Decimal = Decimal(10**6),
    max_total_usd: Decimal = Decimal(10**12),
    price_high: Decimal = Decimal(10**12),
) -> Mandate:
    """A mandate on the proposal's market, both sides, any price up to `price_high`, 15 minutes."""
    return Mandate(
        consensus_id=consensus_id,
        connector=p.connector,
        trading_pair=p.trading_pair,
        sides=frozenset(Side),
        max_order_notional_usd=max_order_usd,
        max_total_notional_usd=max_total_usd,
        price_low=Decimal(0),
        price_high=price_high,
        issued_at=now,
        expires_at=now + 900,
    )


def decide(gov: Any, p: OrderProposal) -> Decision:
    """Review; once more if the market's first proposal waited for its mandate."""
    decision: Decision = gov.review(p)
    if decision.status.value == "PENDING":
        decision = gov.review(p.model_copy(update={"proposal_id": p.proposal_id + "b"}))
    return decision


def bought_and_filled(gov: Any, p: OrderProposal, fill_price: Decimal | int = 60000) -> Decision:
    """`p` (a buy) allowed (`decide`) and filled whole at `fill_price`: a position to mark."""
    bought = decide(gov, p)
    assert bought.allowed, bought.message
    gov.on_order_event(OrderEvent(kind=OrderEventKind.FILLED, reservation_id=bought.reservation_id,
                                  filled_amount=p.amount, fill_price=Decimal(fill_price)))  # fmt: skip
    return bought
