"""The governor's port to the AI council: `MandateProvider`, and `NoCouncil` when there is none.

`lyra_governor.consensus.MandateBook` implements it; the governor calls nothing else on a
provider. The consensus package is imported by name (`default_mandate_provider`) so the core
has no static dependency on it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from lyra_governor.config import Settings
from lyra_governor.models import ConsensusResult, CouncilContext, Mandate, OrderProposal

log = logging.getLogger(__name__)

VerdictListener = Callable[[ConsensusResult, CouncilContext], None]


class MandateProvider(Protocol):
    """Where the governor gets AI approval; implemented by `lyra_governor.consensus`.

    `find` and `request` are called from `review` and must return in microseconds: `find`
    looks in memory, `request` only schedules work in the background (a thread or another
    loop) and returns at once. A later `find` sees the mandate once the council approved it.
    With `per_order`, `request` answers inline (local voters), so `find` is asked again at once.
    """

    @property
    def per_order(self) -> bool:
        """One consensus per order (True) or one mandate per market (False)."""
        ...

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        """A live mandate that covers this proposal, or None."""
        ...

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        """Ask the council (in the background) for a mandate covering proposals like this one."""
        ...

    def subscribe(self, listener: VerdictListener) -> None:
        """Call `listener` with every council result (the governor audits and applies them)."""
        ...

    def stats(self) -> dict[str, float]:
        """At least ``requests`` and ``cost_usd`` (USD spent on model calls) so far."""
        ...

    def revoke(self, exchange: str | None, why: str) -> int:
        """Drop the mandates of one exchange (all with None): the next order asks again.
        Returns how many were dropped."""
        ...

    def close(self) -> None:
        """Stop any background work."""
        ...


class NoCouncil:
    """The provider used when no council can be built: nothing is ever covered (fail closed).

    Also the base of test doubles that only override `find` and `request`."""

    per_order = False

    def __init__(self, why: str = "no council configured") -> None:
        self.why = why

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return None

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None

    def subscribe(self, listener: VerdictListener) -> None:
        return None

    def stats(self) -> dict[str, float]:
        return {"requests": 0, "cost_usd": 0.0}

    def revoke(self, exchange: str | None, why: str) -> int:
        return 0

    def close(self) -> None:
        return None


def default_mandate_provider(settings: Settings) -> MandateProvider:
    """The consensus package's provider (local voters by default), or `NoCouncil` without it."""
    try:
        factory = importlib.import_module("lyra_governor.consensus").mandate_provider
    except (ImportError, AttributeError) as exc:
        log.error("no AI council available (%s); every order will wait for a mandate", exc)
        return NoCouncil(f"the consensus package could not be loaded: {exc}")
    provider: MandateProvider = factory(settings)
    return provider


def verdict_record(result: ConsensusResult, context: CouncilContext) -> dict[str, Any]:
    """A council answer as its audit record: verdict, agreement, latency and cost, what
    `status` and `/metrics` report."""
    proposal = context.proposal
    return {
        "question": context.question,
        "connector": proposal.connector if proposal else None,
        "trading_pair": proposal.trading_pair if proposal else None,
        "consensus_id": result.consensus_id,
        "phase": result.phase,
        "verdict": result.verdict.value,
        "agreement": round(result.agreement, 4),
        "threshold": result.threshold,
        "response_rate": round(result.response_rate, 4),
        "degraded": result.degraded,
        "no_answer": result.no_answer,
        "size_scale": result.size_scale,
        "reasons": result.reasons[:8],
        "latency_s": round(result.latency_s, 4),
        "cost_usd": round(result.cost_usd, 6),
    }
