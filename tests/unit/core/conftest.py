"""Fixtures for the governor core: a ledger on a fresh SQLite file, a controllable clock, a
deterministic mandate provider (the issue allows a test double here: the code path is real)."""

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
from tests.fixtures import Clock, wide_mandate

FakeClock = Clock


class EnvelopeMandates(NoCouncil):
    """Approves a wide envelope for every request; `refuse=True` never approves anything."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse
        self.requests: list[CouncilContext] = []
        self.approved: set[tuple[str, str]] = set()

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        if (proposal.connector, proposal.trading_pair) not in self.approved:
            return None
        mandate = wide_mandate(proposal, now, max_order_usd=Decimal(10_000), max_total_usd=Decimal(10**9))
        return mandate if mandate.covers(proposal, notional_usd, now) else None

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        self.requests.append(context)
        if not self.refuse:
            self.approved.add((proposal.connector, proposal.trading_pair))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


WATCHED: list[Governor] = []  # the governors built during the current test (see `watching`)


@pytest.fixture(autouse=True)
def watching(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every governor built in a test is remembered, so `propose` can give it what a live bot
    gives it each tick: the market it trades, watched for 30 s (the flash-move reference needs
    history before any non-reducing order passes; tests that observe a market themselves keep
    exactly what they observed)."""
    original = Governor.__init__

    def remember(self: Governor, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        WATCHED.append(self)

    monkeypatch.setattr(Governor, "__init__", remember)
    yield
    WATCHED.clear()


def _watch(proposal: OrderProposal, now: float) -> None:
    mid = proposal.mid_price
    if not (mid.is_finite() and mid > 0):
        return  # a broken book is not something a live bot would observe
    for gov in WATCHED:
        if gov.watch.history(proposal.connector, proposal.trading_pair) is None:
            for t in (now - 30, now):
                gov.observe_market(MarketSnapshot(connector=proposal.connector, trading_pair=proposal.trading_pair,
                                                  timestamp=t, mid_price=proposal.mid_price))  # fmt: skip


@pytest.fixture
def mandates() -> EnvelopeMandates:
    return EnvelopeMandates()


@pytest.fixture
def governor(settings: Settings, clock: FakeClock, mandates: EnvelopeMandates) -> Iterator[Governor]:
    gov = Governor.from_settings(settings, "bot-1", mandates=mandates, clock=clock)
    gov.ledger.set_phase(3, "test", "paper trading under test")
    yield gov
    gov.close()


@pytest.fixture
def propose(clock: FakeClock) -> Callable[..., OrderProposal]:
    def make(**overrides: Any) -> OrderProposal:
        proposal = fixtures.proposal(clock.now, **overrides)
        _watch(proposal, clock.now)
        return proposal

    return make


allowed = fixtures.decide  # review twice if needed: the first proposal of a market waits for its mandate
