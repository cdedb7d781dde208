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

`review` runs the checks of `checks.Checks.pipeline`, cheapest first, and audits every
outcome: halted / reducing -> phase permits this connector -> input sanity -> valued in USD ->
price collar -> max order notional -> rate throttle and max open orders -> a close that
reduces this bot's position (needs no mandate) -> mandate covers it (else PENDING + background
request) -> atomic reservation (`order_store.OrderStore.reserve`). Any exception inside
`review` becomes a DENIED decision with code INTERNAL_ERROR or STORE_UNAVAILABLE: the
governor fails closed.

Who does what: `MarketWatch` remembers the markets, `BotOrders` this bot's open orders and
positions, `Tally` the outcomes; `OrderStore` is the only writer of reservations, fills,
capital and their audit records; `Ledger` reads the store and moves the ladder.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from decimal import Decimal

from lyra_governor import audit, phases
from lyra_governor.bot_orders import BotOrders, MarketKey, Tally
from lyra_governor.breakers import Action, Trip
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.breakers.exchange_rate import check_exchange_rate
from lyra_governor.checks import Checks, Review, bot_reducing, cap_denial, decision_payload, halted, reducing
from lyra_governor.config import HEARTBEAT_INTERVAL_S, Settings
from lyra_governor.ladder import LadderState
from lyra_governor.ledger import Exposure, Ledger, exposure_from_rows
from lyra_governor.mandate_provider import (
    MandateProvider,
    NoCouncil,
    default_mandate_provider,
    verdict_record,
)
from lyra_governor.market_context import MarketHistory, sampled_rate
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import (
    ConsensusResult,
    CouncilContext,
    Decision,
    DecisionStatus,
    Denial,
    DenialCode,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    ReservationStatus,
    Side,
    TradingState,
    Verdict,
    new_id,
)
from lyra_governor.money import from_musd, to_musd
from lyra_governor.order_store import (
    BOT_REDUCE_ONLY,
    CapExceeded,
    NotReducing,
    OrderStore,
    RateBudgetSpent,
    ReservationRow,
    TradingStopped,
)
from lyra_governor.store import STORE_ERRORS
from lyra_governor.store_budget import (
    EVENT_BUDGET_MS,
    MarketMovedOn,
    StoreBusy,
    acquire_checkpointer,
    release_checkpointer,
)

__all__ = ["Governor", "MandateProvider", "NoCouncil", "default_mandate_provider"]

log = logging.getLogger(__name__)

STATE_REFRESH_S = 0.25  # wall-clock: a halt written by another process is seen within this
HEARTBEAT_EVERY_S = HEARTBEAT_INTERVAL_S  # governor-clock seconds between heartbeat writes (config checks the timeout)
HOUSEKEEPING_EVERY = 4  # heartbeats between expiry sweeps and WAL checkpoints
_HOST = socket.gethostname()

OPEN = ReservationStatus.OPEN.value
_ENDS = {  # order events that end an order without (more) fills, and the state they leave
    OrderEventKind.CANCELLED: ReservationStatus.CANCELLED,
    OrderEventKind.FAILED: ReservationStatus.FAILED,
    OrderEventKind.EXPIRED: ReservationStatus.EXPIRED,
    OrderEventKind.COMPLETED: ReservationStatus.FILLED,
}


class Governor:
    """The one hook between a strategy and an exchange. See the module docstring."""

    #: When the cached ladder state is re-read: wall clock live; a replay sets its simulated one.
    state_clock: Callable[[], float] = time.monotonic
    state_refresh_s: float = STATE_REFRESH_S

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        bot_id: str,
        mandates: MandateProvider,
        clock: Callable[[], float] = time.time,
        strategy: str = "unknown",
    ) -> None:
        self._settings = settings
        self.ledger = ledger
        self.bot_id = bot_id
        self.strategy = strategy
        self.mandates = mandates
        self.clock = clock
        self.store = OrderStore(ledger.engine, settings.store.budget_ms)
        # SQLite's WAL is checkpointed off the order path, twice a second (store_budget.WalCheckpointer)
        self._wal = acquire_checkpointer(ledger.engine.url.database if self.store.sqlite else None)
        self.watch = MarketWatch(settings)
        self.orders = BotOrders(self._position_from_store)
        self.tally = Tally()
        self.market_history = MarketHistory()  # the council's market context (returns, volatility, fills)
        self.breakers = BreakerBoard(settings.breakers)
        self.counts = self.tally.counts  # outcome counts by ALLOWED / PENDING / denial code / breaker
        self.checks = Checks(
            settings, self.watch, self.orders, mandates, self.breakers, self.store.orders_since, self._council_context
        )
        self._state: LadderState | None = None
        self._state_read_at = -1.0
        self._last_heartbeat = float("-inf")
        self._beats = 0
        self._bot_reduce_only: str | None = None  # this bot's own restriction (refreshed with the state)
        for row in ledger.open_reservations(bot_id):
            self.orders.opened(row["reservation_id"], row["exchange"])
            if row["reduce_only"]:  # a resting close: later closes are judged net of it
                key = (row["book"], row["exchange"], row["trading_pair"])
                left = Decimal(row["amount"]) - Decimal(row["filled_amount"])
                self.orders.close_opened(row["reservation_id"], key, row["side"], left)
        self._restore_breakers()
        mandates.subscribe(self.on_council_result)

    def _restore_breakers(self) -> None:
        """A restart does not lift this bot's storm blocks: they are read back from the audit."""
        cooldown = self.settings.breakers.storm_cooldown_s
        try:
            found = audit.records(self.ledger.engine, events=("breaker",), since=self.clock() - cooldown)
        except STORE_ERRORS as exc:
            log.error("could not read this bot's circuit-breaker trips back: %s", exc)
            return
        for record in found:
            if record.actor == self.bot_id:
                self.breakers.restore(record.payload, record.ts + cooldown)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings reach every part that reads them (the checks, the market watch)."""
        self._settings = self.checks.settings = self.watch.settings = settings

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        bot_id: str,
        mandates: MandateProvider | None = None,
        clock: Callable[[], float] = time.time,
        strategy: str = "unknown",
        ledger: Ledger | None = None,
    ) -> Governor:
        """Open the store named by settings and attach the council.

        With `mandates=None` the consensus package's provider is used (local deterministic
        voters on the embedded defaults). If it cannot be loaded, every proposal stays
        PENDING with NO_MANDATE: without a council nothing trades.
        """
        ledger = ledger or Ledger.open(settings, clock)
        provider = mandates if mandates is not None else default_mandate_provider(settings)
        governor = cls(settings, ledger, bot_id, provider, clock, strategy)
        governor.heartbeat()
        return governor

    def close(self) -> None:
        self.mandates.close()
        release_checkpointer(self._wal)
        self._wal = None
        self.store.close()
        self.ledger.close()

    # --- state ------------------------------------------------------------------------------

    def ladder_state(self, fresh: bool = False) -> LadderState:
        wall = self.state_clock()
        if fresh or self._state is None or wall - self._state_read_at > self.state_refresh_s:
            if self._state is None or fresh:
                self._state = self.ledger.state()
            else:
                seen = self.store.ladder_row()
                cached = self._state
                if seen != (cached.phase, cached.trading_state.value, cached.reason, cached.rungs):
                    self._state = self.ledger.state()
            self._bot_reduce_only = self.store.bot_restriction(self.bot_id)
            self._state_read_at = wall
        return self._state

    def trading_state(self) -> TradingState:
        return self.ladder_state().trading_state

    def exposure(self, book: str) -> Exposure:
        """The book's capital, read on the governor's own connection (fast, no write lock)."""
        return exposure_from_rows(book, self.store.capital_rows(book))

    def capacity_usd(self, exchange: str) -> Decimal:
        """USD that may still be reserved on `exchange` in the current phase's book."""
        book = self.ladder_state().book
        if book is None:
            return Decimal(0)
        try:
            exposure = self.exposure(book)
        except STORE_ERRORS:
            return Decimal(0)
        ex = exposure.exchanges.get(exchange)
        return min(ex.remaining_usd, exposure.total.remaining_usd) if ex is not None else Decimal(0)

    def _position_from_store(self, key: MarketKey) -> Decimal:
        return self.store.bot_position(self.bot_id, *key)

    # --- market facts (see MarketWatch) ------------------------------------------------------

    def observe_market(self, snapshot: MarketSnapshot) -> None:
        self.watch.observe(snapshot)
        self.market_history.observe(
            snapshot.connector,
            snapshot.trading_pair,
            snapshot.timestamp,
            snapshot.mid_price,
            snapshot.spread_pct,
            snapshot.depth_usd,
        )
        rate = self.usd_per_quote(snapshot.trading_pair.split("-")[-1])
        if rate is not None and snapshot.mid_price.is_finite():  # marks for the loss limits
            book = phases.PAPER_BOOK if Settings.is_paper(snapshot.connector) else phases.LIVE_BOOK
            self.breakers.book(book).mark(
                Settings.exchange_of(snapshot.connector), snapshot.trading_pair, snapshot.mid_price * rate
            )

    def observe_fx(self, currency: str, usd_per_unit: Decimal) -> None:
        """An observed USD rate; see `MarketWatch.observe_fx` (trusted only within the FX band)."""
        self.watch.observe_fx(currency, usd_per_unit)

    def usd_per_quote(self, quote: str) -> Decimal | None:
        return self.watch.usd_per_quote(quote)

    # --- the council ------------------------------------------------------------------------

    def _council_context(self, r: Review) -> CouncilContext:
        ex = self.exposure(r.book).exchanges.get(r.exchange)
        decisions, failures, denials = self.tally.recent(r.now)
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
            market_context=self.market_history.context(
                r.p.connector, r.p.trading_pair, r.now, float(ex.cap_usd / r.rate) if ex and r.rate > 0 else 0.0
            ),
            now=r.now,
        )

    def on_council_result(self, result: ConsensusResult, context: CouncilContext) -> None:
        """Every council answer is a decision: audited (verdict, agreement, latency, cost: what
        `status` and `/metrics` report), then its emergency rules applied."""
        record = verdict_record(result, context)
        try:
            self.store.audit(
                "council_verdict", audit.canonical_json(record), self.bot_id, self.clock(), EVENT_BUDGET_MS
            )
        except STORE_ERRORS as exc:
            log.error("could not audit council verdict %s: %s", result.consensus_id, exc)
        self.apply_verdict(result)

    def apply_verdict(self, result: ConsensusResult) -> None:
        """Council emergency rules: ABORT halts, GRADUAL_STOP goes reduce-only (both audited)."""
        reasons = "; ".join(result.reasons)[:300]
        try:
            if result.verdict is Verdict.ABORT:
                self.ledger.halt(f"council ABORT ({reasons})", "council", demote=False)
            elif result.verdict is Verdict.GRADUAL_STOP:
                self.ledger.reduce_only(f"council GRADUAL_STOP ({reasons})", "council")
            else:
                return
            self._state = None
        except STORE_ERRORS:
            log.exception("could not record the council's %s verdict", result.verdict)

    # --- the hook ---------------------------------------------------------------------------

    def review(self, proposal: OrderProposal) -> Decision:
        """Allow, deny or hold one proposed order. Never raises, never waits on the network:
        every store call is bounded by `store.budget_ms` (STORE_BUSY / STORE_UNAVAILABLE)."""
        try:
            return self._review(proposal)
        except StoreBusy as exc:
            log.warning("store busy during review of %s: %s", proposal.proposal_id, exc)
            return self._deny(proposal, Denial(DenialCode.STORE_BUSY, str(exc)))
        except STORE_ERRORS as exc:
            log.error("store unavailable during review of %s: %s", proposal.proposal_id, exc)
            unavailable = "the store is unavailable; no order is placed until it is back"
            return self._deny(proposal, Denial(DenialCode.STORE_UNAVAILABLE, unavailable))
        except Exception:
            log.exception("internal error reviewing %s", proposal.proposal_id)
            internal = "internal error in the governor; the order is refused (see the log)"
            return self._deny(proposal, Denial(DenialCode.INTERNAL_ERROR, internal))

    def _review(self, p: OrderProposal) -> Decision:
        now = self.clock()
        self.tally.decided(now)
        r = Review(p, now, self.ladder_state(), Settings.exchange_of(p.connector), self._bot_reduce_only)
        self.breakers.note_state(r.state.trading_state)  # a resume re-bases the loss limits
        for check in self.checks.pipeline:
            denial = check(r)
            if denial is not None:
                return self._deny(p, denial, r.notional_usd)
        return self._reserve(r)

    def _reserve(self, r: Review) -> Decision:
        """The one write of a review: capital reserved (a close that sells reserves none), the
        reservation row and the decision's audit record, atomically, under the write lock."""
        p, mandate = r.p, r.mandate
        reserve = not r.closing or p.side is Side.BUY
        row = ReservationRow(
            reservation_id=new_id("res"),
            bot_id=self.bot_id,
            connector=p.connector,
            book=r.book,
            exchange=r.exchange,
            trading_pair=p.trading_pair,
            side=p.side.value,
            reduce_only=p.reduce_only,
            amount=str(p.amount),
            price=str(r.price),
            usd_per_quote=str(r.rate),
            reserved_musd=to_musd(r.notional_usd) if reserve else 0,
            filled_amount="0",
            status=OPEN,
            client_order_id=p.client_order_id,
            mandate_id=mandate.mandate_id if mandate else None,
            created_at=r.now,
        )
        payload = decision_payload(p, DecisionStatus.ALLOWED, None, "", r.notional_usd, row.reservation_id, r)
        budget = self.settings.breakers  # the exchange-wide order-rate budget, checked under the write lock
        tolerance = 1 + Decimal(str(self.settings.risk.close_tolerance_pct)) / 100
        try:
            seq = self.store.reserve(
                row,
                audit.canonical_json(payload),
                self.bot_id,
                r.now,
                r.closing,
                tolerance,
                fresh=lambda: self._still_fresh(p),
                rate_budget=(r.now - budget.exchange_order_rate_window_s, budget.exchange_order_rate_max),
            )
        except RateBudgetSpent as spent:
            trip = check_exchange_rate(
                r.exchange, spent.orders, budget.exchange_order_rate_max, budget.exchange_order_rate_window_s
            )
            assert trip is not None
            return self._deny(p, Denial(trip.code, trip.message), r.notional_usd)
        except MarketMovedOn:
            age = self.clock() - p.mid_price_ts
            stale = Denial(
                DenialCode.STALE_PRICE,
                f"the mid price became {age:.2f} s old while waiting for the store (limit "
                f"{self.settings.risk.stale_price_s:g} s); propose again with fresh market data",
            )
            return self._deny(p, stale, r.notional_usd)
        except TradingStopped as stopped:
            self.ladder_state(fresh=True)  # the cached state was up to 0.25 s old
            if stopped.state == TradingState.HALTED.value:
                return self._deny(p, Denial(DenialCode.HALTED, halted(stopped.reason)))
            if stopped.state == BOT_REDUCE_ONLY:
                return self._deny(p, Denial(DenialCode.BOT_REDUCE_ONLY, bot_reducing(self.bot_id, stopped.reason)))
            return self._deny(p, Denial(DenialCode.REDUCE_ONLY, reducing(stopped.reason)))
        except NotReducing as short:
            held = f"position {short.position} {p.base}, closes resting {short.resting}"
            return self._deny(
                p,
                Denial(
                    DenialCode.CLOSE_EXCEEDS_POSITION,
                    f"this reduce-only {p.side.value.lower()} of {p.amount} {p.base} would not reduce this bot's "
                    f"position on {p.connector} {p.trading_pair} ({held}); propose it as an ordinary order",
                ),
                r.notional_usd,
            )
        except CapExceeded:
            return self._deny(p, cap_denial(self.exposure(r.book), r), r.notional_usd)
        self.orders.rate_window(r.exchange).add(r.now)
        self.breakers.allowed(p, r.now, row.reservation_id)
        self.orders.opened(row.reservation_id, r.exchange)
        if p.reduce_only:
            self.orders.close_opened(row.reservation_id, (r.book, r.exchange, p.trading_pair), p.side.value, p.amount)
        if mandate is not None:
            self.orders.use_mandate(mandate.mandate_id, r.notional_usd)
        self.tally.count(DecisionStatus.ALLOWED.value)
        return Decision(
            proposal_id=p.proposal_id,
            status=DecisionStatus.ALLOWED,
            message="allowed",
            notional_usd=r.notional_usd,
            reservation_id=row.reservation_id,
            mandate_id=mandate.mandate_id if mandate else None,
            consensus_id=mandate.consensus_id if mandate else None,
            size_scale=mandate.size_scale if mandate else 1.0,
            audit_seq=seq,
        )

    def _still_fresh(self, p: OrderProposal) -> bool:
        """The market data's age, asked again once the store's write lock is held."""
        age = self.clock() - p.mid_price_ts
        return -self.settings.risk.future_tolerance_s <= age <= self.settings.risk.stale_price_s

    def _deny(self, p: OrderProposal, denial: Denial, notional: Decimal = Decimal(0)) -> Decision:
        """The one deny path: audited (unless the store itself is what failed), counted."""
        code, message, status = denial.code, denial.message, denial.status
        now = self.clock()
        store_failed = code in (DenialCode.STORE_UNAVAILABLE, DenialCode.STORE_BUSY)
        if status is DecisionStatus.DENIED and not store_failed:
            self.tally.denied(now)
        seq: int | None = None
        if not store_failed:
            try:
                payload = decision_payload(p, status, code, message, notional, None, None)
                seq = self.store.audit("decision", audit.canonical_json(payload), self.bot_id, now)
            except StoreBusy as exc:
                log.warning("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_BUSY, f"{message} (and the store is busy: {exc})"
            except STORE_ERRORS as exc:
                log.error("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_UNAVAILABLE, f"{message} (and the store is unavailable)"
        self.tally.count(code.value if status is DecisionStatus.DENIED else status.value)
        return Decision(
            proposal_id=p.proposal_id,
            status=status,
            code=code,
            message=message,
            notional_usd=notional if notional.is_finite() else Decimal(0),
            audit_seq=seq,
        )

    # --- events -----------------------------------------------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        """Fills become deployed capital; cancels, failures and completions end the reservation
        and give back what it still holds. Events for unknown reservations are audited."""
        now = self.clock() if event.timestamp is None else event.timestamp
        facts = {
            "kind": event.kind.value,
            "reservation_id": event.reservation_id,
            "client_order_id": _bounded(event.client_order_id),
        }
        if event.kind is not OrderEventKind.EXPIRED:  # the exchange's answer feeds the storm breaker
            self._outcome(event.reservation_id, event.kind is OrderEventKind.FAILED, now)
        if event.kind is OrderEventKind.FILLED:
            result = self.store.fill(
                event.reservation_id,
                _bounded(event.client_order_id),
                event.filled_amount,
                event.fill_price,
                to_musd(event.fee_usd) if event.fee_usd.is_finite() and abs(event.fee_usd) < 10**12 else -1,
                self.bot_id,
                now,
                trade_key=_trade_key(event),
            )
            if result.outcome == "anomaly":
                log.error("impossible fill for %s: %s", event.reservation_id, result.payload.get("reason"))
                self._state_read_at = -1.0  # see this bot's restriction on the next review
            if result.stopped:
                self._state = None
            filled = result.payload if result.outcome == "applied" else None
            if filled is not None:
                self.orders.close_filled(event.reservation_id, event.filled_amount)
                self.market_history.observe_fill(
                    filled["trading_pair"], filled["side"], event.filled_amount, event.fill_price, now, event.fee_usd
                )
                signed = event.filled_amount if filled["side"] == Side.BUY.value else -event.filled_amount
                self.orders.filled((filled["book"], filled["exchange"], filled["trading_pair"]), signed)
                if filled["complete"]:
                    self._closed(event.reservation_id)
        elif event.kind is OrderEventKind.CREATED:
            if self.store.reservation_status(event.reservation_id) is None:
                self.store.audit("orphan_event", audit.canonical_json(facts), self.bot_id, now, EVENT_BUDGET_MS)
        else:
            ended = self.store.release(event.reservation_id, _ENDS[event.kind], facts, self.bot_id, now)
            if ended.status is not None:
                self._closed(event.reservation_id)
            if ended.released_usd is not None and event.kind is OrderEventKind.FAILED:
                self.tally.failed(now)

    def cancel_requested(self, reservation_id: str) -> None:
        """The strategy asked the exchange to cancel one of its orders (a stop-loss replacing
        its take-profit cancels the take-profit first): a resting close being cancelled no
        longer counts against the closes that may follow."""
        try:
            if self.store.cancel_requested(reservation_id, self.clock()):
                self.orders.close_cancelling(reservation_id)
        except STORE_ERRORS as exc:
            log.error("could not record the cancel request for %s: %s", reservation_id, exc)

    def _closed(self, reservation_id: str) -> None:
        self.breakers.closed(reservation_id)
        self.orders.closed(reservation_id)

    # --- circuit breakers -------------------------------------------------------------------

    def _outcome(self, reservation_id: str, failed: bool, now: float) -> None:
        """The exchange's answer to an allowed order feeds the rejection-storm breaker."""
        exchange = self.orders.exchange_of(reservation_id)
        if exchange is None:
            return
        trip = self.breakers.outcome(reservation_id, exchange, failed, now)
        if trip is not None:
            self._trip(trip, now)
        elif failed:
            self._revoke_if_rejects_jump(exchange, now)

    def _revoke_if_rejects_jump(self, exchange: str, now: float) -> None:
        """Half the storm's failure rate (over its minimum sample) is enough to re-ask the council."""
        cfg = self.settings.breakers
        tally = self.breakers.tallies.get(exchange)
        if tally is None:
            return
        failures, orders = tally.window(now, cfg.storm_window_s)
        if orders >= cfg.storm_min_samples and failures >= cfg.storm_rate / 2 * orders:
            self.mandates.revoke(exchange, f"{failures} of {orders} recent orders on {exchange} failed")

    def _trip(self, trip: Trip, now: float) -> None:
        """A breaker tripped: audit it, act on it, and revoke the mandates it concerns."""
        record = {"code": trip.code.value, "action": trip.action.value, "scope": trip.scope, "message": trip.message}
        try:
            self.store.audit("breaker", audit.canonical_json(record), self.bot_id, now)
        except STORE_ERRORS as exc:
            log.error("could not audit breaker %s: %s", trip.code, exc)
        self.tally.count(f"breaker:{trip.code.value}")
        log.warning("circuit breaker %s (%s): %s", trip.code.value, trip.action.value, trip.message)
        exchange = trip.scope.split(":", 1)[1] if ":" in trip.scope else trip.scope
        self.mandates.revoke(None if exchange == "TOTAL" else exchange, trip.message)
        try:
            if trip.action is Action.DEMOTE_AND_STOP:
                self.ledger.demote(exchange, f"breaker {trip.code.value}: {trip.message}"[:400], "breaker")
            stopping = trip.action in (Action.GRADUAL_STOP, Action.DEMOTE_AND_STOP)
            if stopping and self.ledger.state().trading_state is TradingState.ACTIVE:
                self.ledger.reduce_only(f"breaker {trip.code.value}: {trip.message}"[:400], "breaker")
                self._state = None
        except STORE_ERRORS:
            log.exception("could not apply breaker %s", trip.code.value)

    def check_loss_limits(self, now: float | None = None) -> list[Trip]:
        """Fold the book's new fills (every bot's) into its marks and apply the loss limits.
        Runs on the heartbeat's housekeeping cadence; returns the trips (already applied)."""
        now = self.clock() if now is None else now
        state = self.ledger.state()  # not cached: the review path keeps its own refresh rhythm
        book = state.book
        if book is None:
            return []
        marks = self.breakers.book(book)
        for row in self.ledger.fill_rows(since=marks.last_fill_ts, book=book):
            if int(row["id"]) <= marks.last_fill_id:
                continue
            marks.last_fill_id = int(row["id"])
            marks.apply_fill(
                str(row["exchange"]),
                str(row["trading_pair"]),
                row["side"] == Side.BUY.value,
                Decimal(row["amount"]),
                from_musd(int(row["notional_musd"])),
                from_musd(int(row["fee_musd"])),
                float(row["ts"]),
            )
        exposure = self.exposure(book)
        caps = {name: ex.cap_usd for name, ex in exposure.exchanges.items()}
        trips = self.breakers.loss_trips(
            book, state.trading_state, now, exposure.total.cap_usd, caps, per_exchange=state.phase == 4
        )
        for trip in trips:  # each limit reached is audited; its exchange demoted in phase 4; one stop
            self._trip(trip, now)
        return trips

    # --- housekeeping -----------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Tell the store this bot is alive (throttled), and expire silent bots' reservations."""
        now = self.clock()
        if now - self._last_heartbeat < HEARTBEAT_EVERY_S:
            return
        self._last_heartbeat = now
        self._beats += 1
        try:
            if self._beats == 1:  # back after a silence: its orphaned reservations are its own again
                self.store.reclaim_orphans(self.bot_id, self.bot_id, now)
            self.store.heartbeat(self.bot_id, now, _HOST, os.getpid())
            if self._beats % HOUSEKEEPING_EVERY == 1:
                self.store.orphan_silent_bots(self.settings.risk.heartbeat_timeout_s, now)
                self.store.checkpoint()
            self.check_loss_limits(now)
        except STORE_ERRORS as exc:
            log.error("heartbeat failed: %s", exc)


def _bounded(client_order_id: str | None) -> str | None:
    """What an event's client order id may put in the audit trail: at most 128 characters."""
    return None if client_order_id is None else client_order_id[:128]


def _trade_key(event: OrderEvent) -> str | None:
    """What makes a fill the same fill: the exchange's trade id, else (an event without one)
    its own time, amount and price; None when even the time is unknown (then it is not deduplicated)."""
    if event.trade_id:
        return f"id:{event.trade_id}"
    if event.timestamp is None:
        return None
    return f"at:{event.timestamp!r}:{event.filled_amount}@{event.fill_price}"[:160]
