"""Where a governor acts on its circuit breakers: feeds the board, audits and applies trips.

`BreakerBoard` (board.py) keeps the counts and asks the pure breakers; this desk gives it the
governor's events (the exchange's answer to each allowed order, the market marks, the book's
new fills) and does what a trip says: an audit record (event ``breaker``), a count in the
tally, the council's mandates on that scope revoked, and the store's gradual stop (with the
exchange's rung demoted in phase 4). A restart reads this bot's storm blocks back from the audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lyra_governor import audit, phases
from lyra_governor.breakers import Action, Trip
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.breakers.shared import Evaluated, Read
from lyra_governor.config import BreakerSettings, Settings
from lyra_governor.mandate_provider import MandateProvider
from lyra_governor.models import MarketSnapshot, Side, TradingState
from lyra_governor.money import TOTAL, from_musd
from lyra_governor.seat import Seat
from lyra_governor.store import STORE_ERRORS

if TYPE_CHECKING:
    from lyra_governor.ladder_view import LadderView

log = logging.getLogger(__name__)


@dataclass(eq=False)
class BreakerDesk:
    """The breakers of one governor: `board` keeps their counts, this desk acts on their trips."""

    seat: Seat
    board: BreakerBoard
    mandates: MandateProvider
    current: Callable[[], BreakerSettings]  # the governor's current breaker settings
    _where: dict[str, tuple[str, str]] = field(default_factory=dict)  # connector -> (book, exchange)

    @property
    def settings(self) -> BreakerSettings:
        return self.current()

    def restore(self, now: float) -> None:
        """A restart does not lift this bot's storm blocks: they are read back from the audit."""
        cooldown = self.settings.storm_cooldown_s
        try:
            found = audit.records(self.seat.ledger.engine, events=("breaker",), since=now - cooldown)
        except STORE_ERRORS as exc:
            log.error("could not read this bot's circuit-breaker trips back: %s", exc)
            return
        for record in found:
            if record.actor == self.seat.bot_id:
                self.board.restore(record.payload, record.ts + cooldown)

    def mark(self, snapshot: MarketSnapshot, usd_per_quote: Decimal | None) -> None:
        """A market's mid in USD: the loss limits' unrealised marks (every observation: the
        connector's book and exchange are worked out once per connector)."""
        if usd_per_quote is None or not snapshot.mid_price.is_finite():
            return
        self.mark_usd(snapshot.connector, snapshot.trading_pair, snapshot.mid_price * usd_per_quote)

    def mark_usd(self, connector: str, pair: str, usd_per_base: Decimal) -> None:
        """`mark` of a mid already in USD (`Governor.check_loss_limits` folds the latest ones in)."""
        where = self._where.get(connector)
        if where is None:
            book = phases.PAPER_BOOK if Settings.is_paper(connector) else phases.LIVE_BOOK
            where = self._where[connector] = (book, Settings.exchange_of(connector))
        self.board.book(where[0]).mark(where[1], pair, usd_per_base)

    def outcome(self, reservation_id: str, exchange: str | None, failed: bool, now: float) -> None:
        """The exchange's answer to an allowed order feeds the rejection-storm breaker; half its
        failure rate (over its minimum sample) is enough to re-ask the council."""
        if exchange is None:
            return
        trip = self.board.outcome(reservation_id, exchange, failed, now)
        if trip is not None:
            self.trip(trip, now)
            return
        tally = self.board.tallies.get(exchange)
        if not failed or tally is None:
            return
        cfg = self.settings
        failures, orders = tally.window(now, cfg.storm_window_s)
        if orders >= cfg.storm_min_samples and failures >= cfg.storm_rate / 2 * orders:
            self.mandates.revoke(exchange, f"{failures} of {orders} recent orders on {exchange} failed")

    def trip(self, trip: Trip, now: float) -> None:
        """A breaker tripped: audit it, act on it, and revoke the mandates it concerns."""
        record = {"code": trip.code.value, "action": trip.action.value, "scope": trip.scope, "message": trip.message}
        try:
            self.seat.store.audit("breaker", audit.canonical_json(record), self.seat.bot_id, now)
        except STORE_ERRORS as exc:
            log.error("could not audit breaker %s: %s", trip.code, exc)
        self.seat.tally.count(f"breaker:{trip.code.value}")
        log.warning("circuit breaker %s (%s): %s", trip.code.value, trip.action.value, trip.message)
        exchange = trip.scope.split(":", 1)[1] if ":" in trip.scope else trip.scope
        self.mandates.revoke(None if exchange == "TOTAL" else exchange, trip.message)
        why = f"breaker {trip.code.value}: {trip.message}"[:400]
        try:
            if trip.action is Action.DEMOTE_AND_STOP:
                self.seat.ledger.demote(exchange, why, "breaker")
            stopping = trip.action in (Action.GRADUAL_STOP, Action.DEMOTE_AND_STOP)
            if stopping and self.seat.ledger.state().trading_state is TradingState.ACTIVE:
                self.seat.ledger.reduce_only(why, "breaker")
                self.seat.state_changed()
        except STORE_ERRORS:
            log.exception("could not apply breaker %s", trip.code.value)

    def check_loss_limits(
        self, now: float, caps_musd: Callable[[str], dict[str, int]], view: LadderView
    ) -> list[Trip]:
        """Fold the marks observed since the last evaluation and the book's new fills (every
        bot's) into its marks and apply the loss limits. `caps_musd` reads a book's caps by scope
        (`OrderStore.caps`), `view` gives the store's ladder state now (`LadderView.now`). Returns
        the trips (already applied). The books are the store's: a check the last evaluation
        covers (another governor's at this instant, or nothing changed since) returns no trip
        (`shared.Evaluated.covers`).

        Such a check reads nothing when it can tell without a read what `view.now()` and the
        store's version would answer: the store's version at the view's instant is known
        (`OrderStore.seen_version`: a read at this instant took it) and is the one the view's
        cache was read at, so `view.now()` answers the cache and the look takes that version.
        Otherwise the state and the version are read (one look), as they always were.

        An evaluation at the version the last one's reads were answered at (`shared.Read`: no
        fill, no cap committed since, by any connection) reads neither again: no new fill, the
        same caps."""
        store, board = self.seat.store, self.board
        loss = board.loss
        evaluated = loss.evaluated
        if evaluated is not None:
            cached, kept = view.cached, view.version
            if (
                cached is not None
                and kept is not None
                and kept == store.seen_version(view.clock())
                and evaluated.covers(self, now, kept, cached, board.settings, bool(loss.due))
            ):
                return []
        with store.one_look():  # the state, the fills and the caps as at one moment
            state = view.now()
            version = store.version_at()  # the look's: the one the reads below are answered at
            if evaluated is not None and evaluated.covers(self, now, version, state, board.settings, bool(loss.due)):
                return []
            loss.evaluated = None
            due = loss.due
            if due:
                self._fold(due)
            book = state.book
            if book is None:
                return []
            marks = board.book(book)
            read = loss.read
            if read is not None and version is not None and read.version == version and read.book == book:
                fills: list[tuple[Any, ...]] = []  # nothing committed since those reads: no new fill, the same caps
                total, caps = read.total, read.caps
            else:
                loss.read = None
                fills = store.book_fills(book, marks.last_fill_ts, marks.last_fill_id)
                caps = {name: from_musd(cap) for name, cap in sorted(caps_musd(book).items())}
                total = caps.pop(TOTAL, Decimal(0))
                if version is not None and store.version_at() != version:
                    version = None  # a read found the store moved on: its answers are newer, not kept as the version's
                if version is not None:
                    loss.read = Read(version, book, total, caps)
        for fill_id, exchange, pair, side, amount, notional, fee, ts in fills:
            marks.last_fill_id = int(fill_id)
            marks.apply_fill(
                str(exchange),
                str(pair),
                side == Side.BUY.value,
                Decimal(amount),
                from_musd(int(notional)),
                from_musd(int(fee)),
                float(ts),
            )
        trips = board.loss_trips(book, state.trading_state, now, total, caps, per_exchange=state.phase == 4)
        if not trips and version is not None and state.trading_state is TradingState.ACTIVE:
            loss.evaluated = Evaluated(self, now, version, state.phase, state.trading_state, board.settings)
        for trip in trips:  # each limit reached is audited; its exchange demoted in phase 4; one stop
            self.trip(trip, now)
        return trips

    def _fold(self, due: dict[tuple[str, str], Decimal]) -> None:
        """`mark_usd` of each mark due, in order, then none due."""
        for (connector, pair), usd_per_base in due.items():
            self.mark_usd(connector, pair, usd_per_base)
        due.clear()
