"""Fixtures for the guarantees of issue 14: a governor on a fresh SQLite file, a controllable
clock, a wide standing mandate (the council is not under test here), and markets the
governor has watched long enough to have a reference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import CouncilContext, Mandate, MarketSnapshot, OrderProposal, Side

START = 1_800_000_000.0


class Clock:
    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WideMandates:
    """Approves a wide envelope on the first request for a market (the code path is real)."""

    per_order = False

    def __init__(self) -> None:
        self.approved: set[tuple[str, str]] = set()
        self.revoked: list[tuple[str | None, str]] = []

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        if (proposal.connector, proposal.trading_pair) not in self.approved:
            return None
        return Mandate(
            consensus_id="cns-test",
            connector=proposal.connector,
            trading_pair=proposal.trading_pair,
            sides=frozenset(Side),
            max_order_notional_usd=Decimal(10**6),
            max_total_notional_usd=Decimal(10**12),
            price_low=Decimal(0),
            price_high=Decimal(10**12),
            issued_at=now,
            expires_at=now + 900,
        )

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        self.approved.add((proposal.connector, proposal.trading_pair))

    def revoke(self, exchange: str | None, why: str) -> None:
        self.revoked.append((exchange, why))
        self.approved = {k for k in self.approved if exchange is not None and not k[0].startswith(exchange)}

    def subscribe(self, listener: Any) -> None:
        return None

    def stats(self) -> dict[str, float]:
        return {"requests": 0, "cost_usd": 0.0}

    def close(self) -> None:
        return None


def watch(gov: Governor, connector: str, pair: str, mid: Decimal | int, start: float, seconds: int) -> None:
    """The governor sees `mid` once a second for `seconds` seconds from `start`."""
    for i in range(seconds + 1):
        gov.observe_market(
            MarketSnapshot(connector=connector, trading_pair=pair, timestamp=start + i, mid_price=Decimal(mid))
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mandates() -> WideMandates:
    return WideMandates()


def make_governor(settings: Settings, clock: Clock, bot_id: str = "bot-1", mandates: Any = None) -> Governor:
    gov = Governor.from_settings(settings, bot_id, mandates=mandates or WideMandates(), clock=clock)
    if gov.ladder_state(fresh=True).phase != 3:
        gov.ledger.set_phase(3, "test", "paper trading under test")
    gov.ladder_state(fresh=True)
    return gov


@pytest.fixture
def governor(settings: Settings, clock: Clock, mandates: WideMandates) -> Iterator[Governor]:
    gov = make_governor(settings, clock, mandates=mandates)
    clock.advance(-30)
    for connector in ("binance_paper_trade", "okx_paper_trade"):
        watch(gov, connector, "BTC-USDT", 60010, clock.now, 30)
    clock.advance(30)
    yield gov
    gov.close()


@pytest.fixture
def propose(clock: Clock) -> Callable[..., OrderProposal]:
    def make(**overrides: Any) -> OrderProposal:
        fields: dict[str, Any] = {
            "bot_id": "bot-1",
            "connector": "binance_paper_trade",
            "trading_pair": "BTC-USDT",
            "side": Side.BUY,
            "amount": Decimal("0.001"),
            "price": Decimal("60000"),
            "mid_price": Decimal("60010"),
            "mid_price_ts": clock.now,
        }
        fields.update(overrides)
        return OrderProposal(**fields)

    return make


def decide(gov: Governor, proposal: OrderProposal) -> Any:
    """Review; once more if the market's first proposal waited for its mandate."""
    decision = gov.review(proposal)
    if decision.status.value == "PENDING":
        decision = gov.review(proposal.model_copy(update={"proposal_id": proposal.proposal_id + "b"}))
    return decision
