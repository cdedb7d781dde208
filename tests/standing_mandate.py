"""A mandate provider that covers every proposal, for benchmarks and load tests that measure
the governor rather than the council. Never use it to trade."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.mandate_provider import NoCouncil
from lyra_governor.models import CouncilContext, Mandate, OrderProposal
from tests.fixtures import wide_mandate


class StandingMandate(NoCouncil):
    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return wide_mandate(proposal, now, "cns-standing", price_high=Decimal(10**9))

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None
