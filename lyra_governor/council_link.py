"""What a governor tells the council and does with its answers.

The question (`context`): the proposal, the market as the governor saw it, the exchange's
capital and this bot's recent error and reject rates. The answer (`on_result`): every verdict
is audited (verdict, agreement, latency, cost: what `status` and `/metrics` report), then its
emergency rules applied: ABORT halts, GRADUAL_STOP goes reduce-only (both audited by the ladder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from lyra_governor import audit
from lyra_governor.checks import Review
from lyra_governor.ledger import ScopeExposure
from lyra_governor.mandate_provider import verdict_record
from lyra_governor.market_context import MarketHistory, sampled_rate
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import ConsensusResult, CouncilContext, Verdict
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS
from lyra_governor.store_budget import EVENT_BUDGET_MS

log = logging.getLogger(__name__)


@dataclass(eq=False)
class CouncilLink:
    """One governor's questions to the council (`context`) and what it does with the answers."""

    seat: Seat
    watch: MarketWatch
    history: MarketHistory
    # one exchange's capital in one book (`Governor.exchange_exposure`: its row and the total's
    # read, not the whole book's with a LIKE), None without its row
    exchange_exposure: Callable[[str, str], ScopeExposure | None]

    def context(self, r: Review) -> CouncilContext:
        ex = self.exchange_exposure(r.book, r.exchange)
        decisions, failures, denials = self.seat.tally.recent(r.now)
        return CouncilContext(
            phase=r.state.phase,
            question="mandate",
            proposal=r.p,
            market=self.watch.snapshot(r.p.connector, r.p.trading_pair),
            cap_usd=ex.cap_usd if ex else Decimal(0),
            deployed_usd=ex.deployed_usd if ex else Decimal(0),
            reserved_usd=ex.reserved_usd if ex else Decimal(0),
            error_rate=sampled_rate(failures, decisions),
            reject_rate=sampled_rate(denials, decisions),
            rate_samples=decisions,
            # the strategy's drawdown is judged against the capital it may deploy here (the cap, in the quote)
            market_context=self.history.context(
                r.p.connector, r.p.trading_pair, r.now, float(ex.cap_usd / r.rate) if ex and r.rate > 0 else 0.0
            ),
            now=r.now,
        )

    def on_result(self, result: ConsensusResult, context: CouncilContext) -> None:
        """Every council answer is a decision: audited, then its emergency rules applied."""
        record = verdict_record(result, context)
        try:
            self.seat.store.audit(
                "council_verdict", audit.canonical_json(record), self.seat.bot_id, self.seat.clock(), EVENT_BUDGET_MS
            )
        except STORE_ERRORS as exc:
            log.error("could not audit council verdict %s: %s", result.consensus_id, exc)
        self.apply_verdict(result)

    def apply_verdict(self, result: ConsensusResult) -> None:
        """Council emergency rules: ABORT halts, GRADUAL_STOP goes reduce-only (both audited)."""
        reasons = "; ".join(result.reasons)[:300]
        try:
            if result.verdict is Verdict.ABORT:
                self.seat.ledger.halt(f"council ABORT ({reasons})", "council", demote=False)
            elif result.verdict is Verdict.GRADUAL_STOP:
                self.seat.ledger.reduce_only(f"council GRADUAL_STOP ({reasons})", "council")
            else:
                return
            self.seat.state_changed()
        except STORE_ERRORS:
            log.exception("could not record the council's %s verdict", result.verdict)
