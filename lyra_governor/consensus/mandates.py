"""Mandates: the council approves an envelope once; orders inside it pass in microseconds.

`MandateBook` implements the governor's `MandateProvider`. `find` is a dictionary lookup.
`request` never blocks the caller: with local voters it decides inline (sub-millisecond,
deterministic, so replays are reproducible); with network voters it hands the question to a
background thread running its own event loop, and a later `find` sees the answer.

Envelope: connector, pair, both sides, max order notional (the risk limit, scaled under
PROCEED_WITH_CAUTION), max total notional, a price band around the mid, expiry at most 15
minutes on the caller's clock. A refusal is remembered for a minute so a strategy proposing
every tick does not turn into a council call every tick.

The price band covers what the pre-trade checks admit: the mid may drift PRICE_BAND_PCT from
the mid the council judged, and a quote may sit a collar (`risk.price_collar_pct`) from the
mid, so the band is their sum. A mandate is not re-judged by waiting out its 15 minutes: it is
revoked (and asked for again on the next order) when the market's mid leaves the band it was
granted in, and when the governor says so (`revoke`: a circuit breaker tripped, or the
exchange's reject/failure rate jumped).

Per-order mode (`consensus.per_order: true`): every order is its own question. The envelope
is that one order (its side, a band of one collar around its mid, at most 60 s) and `find`
consumes it, so the next order asks again: 8 model calls per order instead of 8 per market
per 15 minutes. (The band used to be 0.5 % while the collar admits 3 %, so a quote 1-3 %
from mid stayed PENDING forever, paying for a council call on every tick.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

from lyra_governor.config import Settings
from lyra_governor.consensus.council import Council
from lyra_governor.models import ConsensusResult, CouncilContext, Mandate, OrderProposal, Side
from lyra_governor.sentiment import SentimentFeed

log = logging.getLogger(__name__)

MAX_TTL_S = 900.0
REFUSAL_BACKOFF_S = 60.0
PRICE_BAND_PCT = Decimal(5)  # how far the mid may drift from the judged one before re-asking
PER_ORDER_TTL_S = 60.0

Key = tuple[str, str]
VerdictListener = Callable[[ConsensusResult, CouncilContext], None]


class MandateBook:
    def __init__(self, settings: Settings, council: Council) -> None:
        self.settings = settings
        self.council = council
        self._mandates: dict[Key, Mandate] = {}
        self._refused_until: dict[Key, float] = {}
        self._in_flight: set[Key] = set()
        self._listeners: list[VerdictListener] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.results: list[ConsensusResult] = []
        self.requests = 0
        self.sentiment = SentimentFeed.from_settings(settings)  # None unless consensus.sentiment.enabled
        self.revocations = 0

    # --- MandateProvider ----------------------------------------------------------------

    @property
    def per_order(self) -> bool:
        return self.settings.consensus.per_order

    def open_mandates(self, now: float) -> list[Mandate]:
        """The mandates not yet expired (what Hummingbot's `status` lists for a governed bot)."""
        with self._lock:
            return [m for m in self._mandates.values() if now < m.expires_at]

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        key = (proposal.connector, proposal.trading_pair)
        mandate = self._mandates.get(key)
        if mandate is not None and not self._mid_inside(mandate, proposal.mid_price):
            self._revoke_keys([key], f"the mid {proposal.mid_price} left the band the mandate was granted in")
            return None
        if mandate is not None and mandate.covers(proposal, notional_usd, now):
            if self.per_order:  # one order, one consensus: used up here
                with self._lock:
                    self._mandates.pop(key, None)
            return mandate
        return None

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        key = (proposal.connector, proposal.trading_pair)
        with self._lock:
            if key in self._in_flight or context.now < self._refused_until.get(key, float("-inf")):
                return
            self._in_flight.add(key)
            self.requests += 1
        if self.sentiment is not None:  # news for the base asset, as data (a lookup: never waits)
            base = proposal.trading_pair.split("-")[0]
            context = context.model_copy(update={"sentiment": self.sentiment.summary(base, context.now)})
        if self.council.local:
            self._settle(key, context, self.council.decide_local(context))
            return
        future = asyncio.run_coroutine_threadsafe(self.council.adecide(context), self._background_loop())
        future.add_done_callback(lambda f: self._settle_future(key, context, f))

    def revoke(self, exchange: str | None, why: str) -> int:
        """Drop the mandates of one exchange (its live and paper connectors), or all of them
        with None; the next order on those markets asks the council again. Returns how many."""
        with self._lock:
            keys = [
                k for k in self._mandates
                if exchange is None or Settings.exchange_of(k[0]) == exchange
            ]  # fmt: skip
        return self._revoke_keys(keys, why)

    def _revoke_keys(self, keys: list[Key], why: str) -> int:
        with self._lock:
            dropped = [k for k in keys if self._mandates.pop(k, None) is not None]
            self.revocations += len(dropped)
        if dropped:
            log.info("mandates revoked for %s: %s", ", ".join(f"{c} {p}" for c, p in dropped), why)
        return len(dropped)

    def _collar(self) -> Decimal:
        return Decimal(str(self.settings.risk.price_collar_pct))

    def _mid_inside(self, mandate: Mandate, mid: Decimal) -> bool:
        """Whether the market's mid is still within the band the mandate was granted for (its
        price band less the collar a quote may sit away from the mid)."""
        if self.per_order or not mid.is_finite():
            return True
        granted = (mandate.price_low + mandate.price_high) / 2
        drift = granted * PRICE_BAND_PCT / 100
        return granted - drift <= mid <= granted + drift

    # --- verdicts -----------------------------------------------------------------------

    def subscribe(self, listener: VerdictListener) -> None:
        """Called with every result and its question: the governor audits each verdict, halts on
        ABORT and goes reduce-only on GRADUAL_STOP."""
        self._listeners.append(listener)

    def _settle_future(self, key: Key, context: CouncilContext, future: Future[ConsensusResult]) -> None:
        try:
            result = future.result()
        except Exception:
            log.exception("council request for %s failed; treated as no answer", key)
            with self._lock:
                self._in_flight.discard(key)
                self._refused_until[key] = context.now + REFUSAL_BACKOFF_S
            return
        self._settle(key, context, result)

    def _settle(self, key: Key, context: CouncilContext, result: ConsensusResult) -> None:
        self.results.append(result)
        if len(self.results) > 1000:
            del self.results[:500]
        with self._lock:
            self._in_flight.discard(key)
            if result.verdict.permits_new_exposure and context.proposal is not None:
                self._mandates[key] = self._envelope(context, result)
                self._refused_until.pop(key, None)
            else:
                self._mandates.pop(key, None)
                self._refused_until[key] = context.now + REFUSAL_BACKOFF_S
        for listener in list(self._listeners):
            try:
                listener(result, context)
            except Exception:
                log.exception("verdict listener failed")

    def _envelope(self, context: CouncilContext, result: ConsensusResult) -> Mandate:
        proposal = context.proposal
        assert proposal is not None
        scale = Decimal(str(result.size_scale))
        mid = proposal.mid_price
        band = mid * ((self._collar() if self.per_order else PRICE_BAND_PCT + self._collar()) / 100)
        ttl = min(self.settings.consensus.mandate_ttl_s, PER_ORDER_TTL_S if self.per_order else MAX_TTL_S)
        return Mandate(
            consensus_id=result.consensus_id,
            connector=proposal.connector,
            trading_pair=proposal.trading_pair,
            sides=frozenset({proposal.side}) if self.per_order else frozenset(Side),
            max_order_notional_usd=self.settings.risk.max_order_notional_usd * scale,
            max_total_notional_usd=self.settings.consensus.mandate_max_total_usd * scale,
            price_low=mid - band,
            price_high=mid + band,
            size_scale=result.size_scale,
            issued_at=context.now,
            expires_at=context.now + ttl,
            verdict=result.verdict,
        )

    # --- background loop for network voters ---------------------------------------------

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="lyra-council", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.council.aclose(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "llm_calls": self.council.calls,
            "cost_usd": self.council.cost_usd,
            "open_mandates": len(self._mandates),
            "revocations": self.revocations,
        }
