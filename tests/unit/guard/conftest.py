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
from lyra_governor.mandate_provider import NoCouncil
from lyra_governor.models import CouncilContext, Mandate, MarketSnapshot, OrderProposal
from tests import fixtures
from tests.fixtures import Clock, proposal, wide_mandate


class WideMandates(NoCouncil):
    """Approves a wide envelope on the first request for a market (the code path is real)."""

    def __init__(self) -> None:
        super().__init__()
        self.approved: set[tuple[str, str]] = set()
        self.revoked: list[tuple[str | None, str]] = []

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        if (proposal.connector, proposal.trading_pair) not in self.approved:
            return None
        return wide_mandate(proposal, now)

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        self.approved.add((proposal.connector, proposal.trading_pair))

    def revoke(self, exchange: str | None, why: str) -> int:
        self.revoked.append((exchange, why))
        self.approved = {k for k in self.approved if exchange is not None and not k[0].startswith(exchange)}
        return 0


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
        return proposal(clock.now, **overrides)

    return make


decide = fixtures.decide  # review; once more if the market's first proposal waited for its mandate
bought_and_filled = fixtures.bought_and_filled  # a buy allowed and filled whole: a position to mark
