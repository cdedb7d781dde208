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
    state = governor.on_tick(snapshots)             # each tick, all in one: see below
    governor.close()

`on_tick(snapshots, before_state=None) -> TradingState` is a tick's three calls in one (what
`GovernedStrategyV2Base.tick` uses; the separate calls stay for other callers): `heartbeat()`,
then `before_state()` if given, then `trading_state()`, then, unless that is HALTED,
`observe_market(s)` for each snapshot in order; it returns the state. The same effects in the same
order as those calls, with fewer Python frames (they are most of a per-tick call's cost).

`review` runs the checks of `checks.Checks.pipeline`, cheapest first, and audits every
outcome: halted / reducing -> phase permits this connector -> input sanity -> valued in USD ->
price collar -> max order notional -> rate throttle and max open orders -> a close that
reduces this bot's position (needs no mandate) -> mandate covers it (else PENDING + background
request) -> atomic reservation (`order_store.OrderStore.reserve`). Any exception inside
`review` becomes a DENIED decision with code INTERNAL_ERROR or STORE_UNAVAILABLE: the
governor fails closed.

Who does what: `MarketWatch` remembers the markets, `BotOrders` this bot's open orders and
positions, `Tally` the outcomes; `checks.Checks` runs the pipeline, `reservation.reserve` its
one write; `OrderEvents` books the exchange's events; `BreakerDesk` feeds the circuit breakers
and acts on their trips; `CouncilLink` asks the council and applies its verdicts; `LadderView` caches the ladder state,
`Heartbeat` keeps the store told and sweeps. `OrderStore` is the only writer of reservations,
fills, capital and their audit records; `Ledger` reads the store and moves the ladder. The
governor wires them; its methods stand in the order's path: market facts, review, events,
verdicts, housekeeping, then what a strategy asks of it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

from lyra_governor import reservation
from lyra_governor.bot_orders import BotOrders, Tally
from lyra_governor.breakers import Trip
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.breakers.desk import BreakerDesk
from lyra_governor.breakers.shared import SharedBooks
from lyra_governor.checks import Checks, Review
from lyra_governor.config import Settings
from lyra_governor.council_link import CouncilLink
from lyra_governor.decisions import Decisions
from lyra_governor.heartbeat import HEARTBEAT_EVERY_S, Heartbeat
from lyra_governor.ladder import LadderState
from lyra_governor.ladder_view import LadderView
from lyra_governor.ledger import Exposure, Ledger, ScopeExposure, exposure_from_rows, remaining_from_pair
from lyra_governor.mandate_provider import MandateProvider, NoCouncil, default_mandate_provider
from lyra_governor.market_context import MarketHistory
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import (
    ConsensusResult,
    CouncilContext,
    Decision,
    Denial,
    DenialCode,
    MarketSnapshot,
    OrderEvent,
    OrderProposal,
    StrayOrder,
    TradingState,
)
from lyra_governor.order_events import OrderEvents
from lyra_governor.order_store import OrderStore
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS
from lyra_governor.store_budget import StoreBusy, acquire_checkpointer, release_checkpointer

__all__ = ["Governor", "MandateProvider", "NoCouncil", "default_mandate_provider"]

log = logging.getLogger(__name__)
# a pydantic model class's attribute costs ~100 ns to read, and the name is the same few strings: kept
_exchange_of = functools.lru_cache(maxsize=256)(Settings.exchange_of)


class Governor:
    """The one hook between a strategy and an exchange. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        bot_id: str,
        mandates: MandateProvider,
        clock: Callable[[], float] = time.time,
        strategy: str = "unknown",
        store: OrderStore | None = None,
        watch: MarketWatch | None = None,
        reservation_ids: Callable[[], str] = reservation.reservation_id,
    ) -> None:
        self._settings = settings
        # where its reservations' ids come from: the process's (`reservation.ReservationIds`:
        # a random prefix and a counter) unless given (a seeded simulation replays its ids)
        self.reservation_ids = reservation_ids
        self.ledger, self.bot_id, self.strategy, self.mandates, self.clock = ledger, bot_id, strategy, mandates, clock
        # its own writer on the ledger's store, or one several governors of a process share (the
        # paper run's: one connection, whose page cache the others' commits do not throw away)
        self.store = store if store is not None else OrderStore(ledger.engine, settings.store.budget_ms)
        # a long-lived user of the SQLite file: its WAL bound's thread (store_budget.WalBound) stops with the last one
        self._wal = acquire_checkpointer(ledger.engine.url.database if self.store.sqlite else None)
        self.ladder_view = LadderView(ledger, self.store, bot_id)
        # a stop, halt, promotion or demotion this governor reads, whoever wrote it, ends the
        # council's mandates it holds: they were granted for the conditions before (hole 6)
        self.ladder_view.on_change = lambda why: self.mandates.revoke(None, f"{why}; the council is asked again")
        # its own, or one that governors of one process with the same settings share (the paper
        # run's: each market's reference history filled once a second, not once per governor)
        self.watch = watch if watch is not None else MarketWatch(settings)
        self.orders = BotOrders(lambda key: self.store.bot_position(bot_id, *key))
        self.tally = Tally()
        self.counts = self.tally.counts  # outcome counts by ALLOWED / PENDING / denial code / breaker
        # the council's market context (returns, volatility, fills): its sampled mids the watch's
        self.market_history = MarketHistory(points=self.watch.points)
        # the loss limits' books are the store's: governors sharing it evaluate them once (`SharedBooks`)
        self.breakers = BreakerBoard(settings.breakers, SharedBooks.of(self.store))
        # the loss limits' marks observed since their last evaluation, the latest per market, every
        # governor's of this store (folded in by `BreakerDesk.check_loss_limits`, their only reader)
        self._marks_due: dict[tuple[str, str], Decimal] = self.breakers.loss.due
        seat = Seat(bot_id, ledger, self.store, self.tally, clock, self.ladder_view.drop)
        self.desk = BreakerDesk(seat, self.breakers, mandates, lambda: self.settings.breakers)
        self.council = CouncilLink(seat, self.watch, self.market_history, self.exchange_exposure)
        self.events = OrderEvents(seat, self.orders, self.desk, self.market_history, self.ladder_view.look_again)
        self.decisions = Decisions(seat)
        self.checks = Checks(settings, self.watch, self.orders, mandates, self.breakers, self.council.context)
        self.heartbeats = Heartbeat(seat, self.events, lambda: self.settings.risk.heartbeat_timeout_s,
                                    self.check_loss_limits)  # fmt: skip
        self.orders.adopt(ledger.open_reservations(bot_id))
        self.desk.restore(clock())
        mandates.subscribe(self.on_council_result)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        bot_id: str,
        mandates: MandateProvider | None = None,
        clock: Callable[[], float] = time.time,
        strategy: str = "unknown",
        ledger: Ledger | None = None,
        reservation_ids: Callable[[], str] = reservation.reservation_id,
    ) -> Governor:
        """Open the store named by settings and attach the council.

        With `mandates=None` the consensus package's provider is used (local deterministic
        voters on the embedded defaults). If it cannot be loaded, every proposal stays
        PENDING with NO_MANDATE: without a council nothing trades.
        """
        ledger = ledger or Ledger.open(settings, clock)
        provider = mandates if mandates is not None else default_mandate_provider(settings)
        governor = cls(settings, ledger, bot_id, provider, clock, strategy, reservation_ids=reservation_ids)
        governor.heartbeat()
        return governor

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings reach every part that reads them (the checks and their limits, the market
        watch, the circuit breakers' board: the loss limits and storm thresholds it applies)."""
        self.checks.use(settings)
        self.breakers.settings = settings.breakers
        self._settings = self.watch.settings = settings

    # --- each tick: market facts (MarketWatch; the breakers' loss marks; the council's history)

    def observe_market(self, snapshot: MarketSnapshot) -> None:
        self._observe((snapshot,))

    def on_tick(
        self, snapshots: Iterable[MarketSnapshot], before_state: Callable[[], None] | None = None
    ) -> TradingState:
        """One tick: `heartbeat`, `before_state()` (if given), `trading_state`, and, unless HALTED,
        `observe_market` of each snapshot in order; returns the state (see the module docstring).
        The beat's and the state's first tests written out, the observations in one `_observe`:
        two frames a tick instead of one a call.

        One reading of the clock serves the beat's test, the state's and the ladder look's
        (`_observe`'s `wall`) when the ladder view's clock is the governor's (a replay's simulated
        one: the same instant) and nothing ran in between (no beat, no `before_state`): two
        clock calls and `LadderView.ahead`'s frame fewer a tick (~3k instructions)."""
        beats, view, clock = self.heartbeats, self.ladder_view, self.clock
        now = clock()
        same = view.clock is clock  # one reading serves both while nothing runs in between
        if beats.group.at is not None or now - beats.last >= HEARTBEAT_EVERY_S:
            beats.beat()  # as `heartbeat`
            same = False  # the clock may have moved on: read it again
        if before_state is not None:
            before_state()
            same = False
        wall = now if same else view.clock()
        cached = view.cached
        if cached is not None and wall - view.read_at <= view.refresh_s:  # as `trading_state`
            state, fresh = cached.trading_state, True
        else:
            state, fresh = view.state().trading_state, False  # the view looked: `ahead` as before
        if state is not TradingState.HALTED:
            self._observe(snapshots, wall if fresh else None)
        return state

    def _observe(self, snapshots: Iterable[MarketSnapshot], wall: float | None = None) -> None:
        """Each snapshot in order (`observe_market`'s and `on_tick`'s one body): the market watch,
        the council's history, the loss limits' mark; then the ladder look the next review would
        take, when due (`LadderView.ahead`, once: nothing here moves the ladder view or the store).

        A snapshot the watch has taken in already (the very object: governors sharing the watch
        are handed the same one) costs two dict reads and two writes: what it gives (its USD mark,
        its spread and depth) was worked out by the first (`MarketWatch.taken`). The snapshot's
        fields are read where pydantic keeps them (a dict item ~40 instructions, an attribute ~400).

        `wall`: the ladder view's clock as `on_tick` read it for a state it took from a cache not
        older than `refresh_s`; then of `ahead`'s tests only the last can pass (the cache is there
        and, at that reading, fresh), and it is made here, `ahead` called only when it does."""
        watch = self.watch
        taken, take_in, book, due = watch.taken, watch.take_in, self.market_history.book, self._marks_due
        observed = False
        for snapshot in snapshots:
            fields = snapshot.__dict__
            key = (fields["connector"], fields["trading_pair"])
            seen = taken.get(key)
            if seen is None or seen[0] is not snapshot:
                seen = take_in(snapshot, fields, key)  # new to the watch (or its rates)
            book[key] = seen[2]  # the council's latest spread and depth (`MarketHistory.observe_book`)
            # the loss limits' mark at the watch's rate, as `usd_per_quote` gives it, kept for their
            # next check (`BreakerDesk.mark`'s checks here: a mark that would change nothing replaces none)
            usd_mid = seen[1]
            if usd_mid is not None:
                due.pop(key, None)  # folded in the order last observed
                due[key] = usd_mid
            observed = True
        if not observed:
            return
        view = self.ladder_view
        if wall is None:
            view.ahead()
        elif wall != view.read_at and view.store.looked_at(wall):
            view.ahead(wall)

    def observe_fx(self, currency: str, usd_per_unit: Decimal) -> None:
        """An observed USD rate; see `MarketWatch.observe_fx` (trusted only within the FX band)."""
        self.watch.observe_fx(currency, usd_per_unit)

    def usd_per_quote(self, quote: str) -> Decimal | None:
        return self.watch.usd_per_quote(quote)

    # --- the hook ---------------------------------------------------------------------------
    def review(self, proposal: OrderProposal) -> Decision:
        """Allow, deny or hold one proposed order. Never raises, never waits on the network:
        every store call is bounded by `store.budget_ms` (STORE_BUSY / STORE_UNAVAILABLE)."""
        try:
            return self._review(proposal)
        except StoreBusy as exc:
            log.warning("store busy during review of %s: %s", proposal.proposal_id, exc)
            return self.decisions.deny(proposal, Denial(DenialCode.STORE_BUSY, str(exc)))
        except STORE_ERRORS as exc:
            log.error("store unavailable during review of %s: %s", proposal.proposal_id, exc)
            unavailable = "the store is unavailable; no order is placed until it is back"
            return self.decisions.deny(proposal, Denial(DenialCode.STORE_UNAVAILABLE, unavailable))
        except Exception:
            log.exception("internal error reviewing %s", proposal.proposal_id)
            internal = "internal error in the governor; the order is refused (see the log)"
            return self.decisions.deny(proposal, Denial(DenialCode.INTERNAL_ERROR, internal))

    def _review(self, p: OrderProposal) -> Decision:
        now = self.clock()
        self.tally.decided(now)
        r = Review(p, now, self.ladder_state(), _exchange_of(p.connector), self.ladder_view.bot_reduce_only)
        self.breakers.note_state(r.state.trading_state)  # a resume re-bases the loss limits
        for check in self.checks.pipeline:
            denial = check(r)
            if denial is not None:
                return self.decisions.deny(p, denial, r.notional_usd)
        row = reservation.reservation_row(r, self.bot_id, self.reservation_ids)
        try:
            seq = reservation.reserve(
                self.store, r, row, self.checks.limits, self.clock, self.exposure, lambda: self.ladder_state(fresh=True)
            )
        except STORE_ERRORS:
            self.events.in_doubt.append(row.reservation_id)  # denied below; committed or not, settled later
            raise
        if isinstance(seq, tuple):
            return self.decisions.deny(p, *seq)
        o = r.o
        key = (row.book, row.exchange, o.trading_pair)
        mandate_id = r.mandate.mandate_id if r.mandate else None
        self.orders.placed(row.reservation_id, key, row.side, o.amount, o.reduce_only, r.now, mandate_id,
                           r.notional_usd)  # fmt: skip
        self.breakers.allowed(o, r.now, row.reservation_id)
        return self.decisions.allowed(r, row.reservation_id, seq)

    # --- after the review: the exchange's events (OrderEvents) -------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        """See `OrderEvents.on_order_event`: fills booked, ended orders release their capital."""
        self.events.on_order_event(event)

    def cancel_requested(self, reservation_id: str) -> None:
        self.events.cancel_requested(reservation_id)

    def book_stray(self, order: StrayOrder, usd_per_quote: Decimal) -> str:
        """See `OrderEvents.stray`: a resting order no reservation holds, counted from now on."""
        return self.events.stray(order, usd_per_quote)

    # --- the council's answers (CouncilLink) ------------------------------------------------

    def on_council_result(self, result: ConsensusResult, context: CouncilContext) -> None:
        self.council.on_result(result, context)

    def apply_verdict(self, result: ConsensusResult) -> None:
        self.council.apply_verdict(result)

    # --- housekeeping (Heartbeat; the loss limits on its cadence) -----------------------------

    def heartbeat(self) -> None:
        """Tell the store this bot is alive (throttled), and expire silent bots' reservations."""
        beats = self.heartbeats
        if beats.group.at is None and self.clock() - beats.last < HEARTBEAT_EVERY_S:
            return  # `Heartbeat.beat`'s own first test, a frame fewer (every tick, beating every 15 s)
        beats.beat()

    def check_loss_limits(self, now: float | None = None) -> list[Trip]:
        """See `BreakerDesk.check_loss_limits` (on the heartbeat's housekeeping cadence)."""
        now = self.clock() if now is None else now
        return self.desk.check_loss_limits(now, self.store.caps, self.ladder_view)

    # --- what a strategy asks ---------------------------------------------------------------

    def ladder_state(self, fresh: bool = False) -> LadderState:
        return self.ladder_view.state(fresh)

    def trading_state(self) -> TradingState:
        view = self.ladder_view
        cached = view.cached
        if cached is not None and view.clock() - view.read_at <= view.refresh_s:
            return cached.trading_state  # `LadderView.state`'s own first test, two frames fewer (every tick)
        return view.state().trading_state

    def exposure(self, book: str) -> Exposure:
        """The book's capital, read on the governor's own connection (fast, no write lock)."""
        return exposure_from_rows(book, self.store.capital_rows(book))

    def exchange_exposure(self, book: str, exchange: str) -> ScopeExposure | None:
        """One exchange's capital in `book` (None without its row): `exposure(book).exchanges.get(exchange)`
        from the exchange's row and the total's only (`OrderStore.capital_pair_rows`), not the
        whole book's read with a LIKE (the council's question, a few times an hour)."""
        return exposure_from_rows(book, self.store.capital_pair_rows(book, exchange)).exchanges.get(exchange)

    def capacity_usd(self, exchange: str) -> Decimal:
        """USD that may still be reserved on `exchange` in the current phase's book."""
        book = self.ladder_state().book
        if book is None:
            return Decimal(0)
        try:  # the exchange's row and the total's, not the whole book's (`exposure`)
            rows = self.store.capital_pair_rows(book, exchange)
        except STORE_ERRORS:
            return Decimal(0)
        return remaining_from_pair(exchange, rows)

    def close(self) -> None:
        self.heartbeats.close()  # its beat still waiting (governors sharing the store) written
        self.mandates.close()
        release_checkpointer(self._wal)
        self._wal = None
        self.store.close()
        self.ledger.close()
