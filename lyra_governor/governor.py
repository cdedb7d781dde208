"""`Governor.review(proposal) -> Decision`: the one hook every Lyra strategy calls.

CONTRACT (other modules code against this; the implementation may change, the API may not
without updating its callers):

    governor = Governor.from_settings(settings, bot_id="mm-binance-1", mandates=council)
    governor.observe_market(MarketSnapshot(...))   # each tick, per market: latest book facts
    decision = governor.review(OrderProposal(...))  # sync, never waits on the network
    if decision.allowed:                            # carries reservation_id, mandate_id
        order_id = place(...)
    governor.on_order_event(OrderEvent(kind=FILLED, reservation_id=decision.reservation_id, ...))
    governor.heartbeat()                            # each tick; reservations of silent bots expire
    governor.capacity_usd("binance")                # remaining USD for sizing proposals
    governor.trading_state()                        # ACTIVE | REDUCING | HALTED (from the store)
    governor.close()

`review` checks, cheapest first, and audits every outcome: halted / reducing -> phase permits
this connector -> input sanity -> price collar -> max order notional -> rate throttle and max
open orders -> mandate covers it (else PENDING + background request) -> atomic reservation.
Any exception inside `review` becomes a DENIED decision with code INTERNAL_ERROR or
STORE_UNAVAILABLE: the governor fails closed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from lyra_governor.models import CouncilContext, Mandate, OrderProposal


class MandateProvider(Protocol):
    """Where the governor gets AI approval; implemented by `lyra_governor.consensus`.

    Both methods are called from `review` and must return in microseconds: `find` looks in
    memory, `request` only schedules work in the background (a thread or another loop) and
    returns at once. A later `find` sees the mandate once the council has approved it.
    """

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        """A live mandate that covers this proposal, or None."""
        ...

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        """Ask the council (in the background) for a mandate covering proposals like this one."""
        ...
