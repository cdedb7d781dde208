"""A mandate provider that covers every proposal, for benchmarks and load tests that measure
the governor rather than the council. Never use it to trade."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.mandate_provider import NoCouncil
from lyra_governor.models import CouncilContext, Mandate, OrderProposal, Side


class StandingMandate(NoCouncil):
    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return Mandate(
            consensus_id="cns-standing",
            connector=proposal.connector,
            trading_pair=proposal.trading_pair,
            sides=frozenset(Side),
            max_order_notional_usd=Decimal(10**6),
            max_total_notional_usd=Decimal(10**12),
            price_low=Decimal(0),
            price_high=Decimal(10**9),
            issued_at=now,
            expires_at=now + 900,
        )

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None
