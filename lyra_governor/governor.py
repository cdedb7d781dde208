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

import importlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from lyra_governor import audit, phases, risk
from lyra_governor.breakers import Action, Trip
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.breakers.exchange_rate import check_exchange_rate
from lyra_governor.config import HEARTBEAT_INTERVAL_S, Settings
from lyra_governor.errors import StoreUnavailable
from lyra_governor.ledger import Exposure, LadderState, Ledger, exposure_from_rows
from lyra_governor.market_context import MarketHistory, sampled_rate
from lyra_governor.models import (
    ConsensusResult,
    CouncilContext,
    Decision,
    DecisionStatus,
    DenialCode,
    Mandate,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    Side,
    TradingState,
    Verdict,
    new_id,
)
from lyra_governor.store import HotPath, TradingStopped, from_musd, reservations, to_musd, write_tx

log = logging.getLogger(__name__)

STATE_REFRESH_S = 0.25  # wall-clock: a halt written by another process is seen within this
HEARTBEAT_EVERY_S = HEARTBEAT_INTERVAL_S  # governor-clock seconds between heartbeat writes (config checks the timeout)
HOUSEKEEPING_EVERY = 4  # heartbeats between expiry sweeps and WAL checkpoints
_HOST = socket.gethostname()


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


class NoCouncil:
    """The provider used when no council can be built: nothing is ever covered (fail closed)."""

    def __init__(self, why: str) -> None:
        self.why = why

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return None

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None


def default_mandate_provider(settings: Settings) -> MandateProvider:
    """The consensus package's provider (local voters by default), or `NoCouncil` without it."""
    try:
        # Imported by name so the core has no static dependency on the consensus package.
        factory = importlib.import_module("lyra_governor.consensus").mandate_provider
    except (ImportError, AttributeError) as exc:
        log.error("no AI council available (%s); every order will wait for a mandate", exc)
        return NoCouncil(f"the consensus package could not be loaded: {exc}")
    provider: MandateProvider = factory(settings)
    return provider


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
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.bot_id = bot_id
        self.strategy = strategy
        self.mandates = mandates
        self.clock = clock
        self._state: LadderState | None = None
        self._state_read_at = -1.0
        self._rates: dict[str, risk.RateWindow] = {}
        self._open: dict[str, set[str]] = {}  # exchange -> open reservation ids of this bot
        self._reservation_exchange: dict[str, str] = {}
        self._mandate_used: dict[str, Decimal] = {}
        self._positions: dict[tuple[str, str, str], Decimal] = {}  # (book, exchange, pair) -> net base
        self._history: dict[tuple[str, str], risk.MidHistory] = {}  # time-weighted reference per market
        self.breakers = BreakerBoard(settings.breakers)
        self._markets: dict[tuple[str, str], MarketSnapshot] = {}
        self._fx_observed: dict[str, Decimal] = {}
        self._last_heartbeat = float("-inf")
        self._beats = 0
        self._recent_denials: deque[float] = deque(maxlen=200)
        self._recent_failures: deque[float] = deque(maxlen=200)
        self._recent_decisions: deque[float] = deque(maxlen=200)
        self.market_history = MarketHistory()  # the council's market context (returns, volatility, fills)
        self.counts: dict[str, int] = {}
        self.hot = HotPath(ledger.engine)
        for row in ledger.open_reservations(bot_id):
            self._open.setdefault(row["exchange"], set()).add(row["reservation_id"])
            self._reservation_exchange[row["reservation_id"]] = row["exchange"]
        subscribe = getattr(mandates, "subscribe", None)
        if callable(subscribe):
            subscribe(self.on_council_result)

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
        closer = getattr(self.mandates, "close", None)
        if callable(closer):
            closer()
        self.hot.close()
        self.ledger.close()

    # --- state ------------------------------------------------------------------------------

    def ladder_state(self, fresh: bool = False) -> LadderState:
        wall = time.monotonic()
        if fresh or self._state is None or wall - self._state_read_at > STATE_REFRESH_S:
            if self._state is None or fresh:
                self._state = self.ledger.state()
            else:
                phase, trading, reason, rung_map = self.hot.ladder_row()
                if (phase, trading, reason, rung_map) != (
                    self._state.phase,
                    self._state.trading_state.value,
                    self._state.reason,
                    self._state.rungs,
                ):
                    self._state = self.ledger.state()
            self._state_read_at = wall
        return self._state

    def trading_state(self) -> TradingState:
        return self.ladder_state().trading_state

    def capacity_usd(self, exchange: str) -> Decimal:
        """USD that may still be reserved on `exchange` in the current phase's book."""
        book = self.ladder_state().book
        if book is None:
            return Decimal(0)
        try:
            exposure = self.exposure(book)
            ex = exposure.exchanges.get(exchange)
            return min(ex.remaining_usd, exposure.total.remaining_usd) if ex is not None else Decimal(0)
        except (sa.exc.SQLAlchemyError, StoreUnavailable):
            return Decimal(0)

    def _position(self, book: str, exchange: str, trading_pair: str) -> Decimal:
        """This bot's net base position on one market: read from its fills once, then kept
        up to date by the fills this governor records."""
        key = (book, exchange, trading_pair)
        if key not in self._positions:
            self._positions[key] = self.hot.bot_position(self.bot_id, book, exchange, trading_pair)
        return self._positions[key]

    def exposure(self, book: str) -> Exposure:
        """The book's capital, read on the governor's own connection (fast, no write lock)."""
        return exposure_from_rows(book, self.hot.capital_rows(book))

    def on_council_result(self, result: ConsensusResult, context: CouncilContext) -> None:
        """Every council answer is a decision: audited (verdict, agreement, latency, cost: what
        `status` and `/metrics` report), then its emergency rules applied."""
        proposal = context.proposal
        record = {
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
        try:
            self.hot.audit("council_verdict", audit.canonical_json(record), self.bot_id, self.clock())
        except (sa.exc.SQLAlchemyError, StoreUnavailable) as exc:
            log.error("could not audit council verdict %s: %s", result.consensus_id, exc)
        self.apply_verdict(result)

    def apply_verdict(self, result: ConsensusResult) -> None:
        """Council emergency rules: ABORT halts, GRADUAL_STOP goes reduce-only (both audited)."""
        try:
            if result.verdict is Verdict.ABORT:
                self.ledger.halt(f"council ABORT ({'; '.join(result.reasons)[:300]})", "council", demote=False)
            elif result.verdict is Verdict.GRADUAL_STOP:
                self.ledger.reduce_only(f"council GRADUAL_STOP ({'; '.join(result.reasons)[:300]})", "council")
            else:
                return
            self._state = None
        except sa.exc.SQLAlchemyError:
            log.exception("could not record the council's %s verdict", result.verdict)

    # --- market facts -----------------------------------------------------------------------

    def observe_market(self, snapshot: MarketSnapshot) -> None:
        key = (snapshot.connector, snapshot.trading_pair)
        self._markets[key] = snapshot
        self.market_history.observe(key[0], key[1], snapshot.timestamp, snapshot.mid_price, snapshot.spread_pct,
                                    snapshot.depth_usd)  # fmt: skip
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = risk.MidHistory(self.settings.risk.reference_window_s)
        history.observe(snapshot.timestamp, snapshot.mid_price)
        rate = self.usd_per_quote(snapshot.trading_pair.split("-")[-1])
        if rate is not None and snapshot.mid_price.is_finite():  # marks for the loss limits
            book = phases.PAPER_BOOK if Settings.is_paper(snapshot.connector) else phases.LIVE_BOOK
            self.breakers.book(book).mark(
                Settings.exchange_of(snapshot.connector), snapshot.trading_pair, snapshot.mid_price * rate
            )

    def observe_fx(self, currency: str, usd_per_unit: Decimal) -> None:
        """An observed USD rate (e.g. from an AUD-USDT book). It wins over the configured one only
        within `risk.fx_band_pct` of it; outside the band orders in that currency are denied
        (FX_RATE_OUT_OF_BAND) until an observation inside the band arrives."""
        if usd_per_unit.is_finite() and usd_per_unit > 0:
            self._fx_observed[currency] = usd_per_unit

    def usd_per_quote(self, quote: str) -> Decimal | None:
        observed = self._fx_observed.get(quote)
        configured = self.settings.fx_usd.get(quote)
        if observed is not None and (
            configured is None or risk.check_fx(observed, configured, self.settings.risk.fx_band_pct, quote) is None
        ):
            return observed
        return configured

    # --- the hook ---------------------------------------------------------------------------

    def review(self, proposal: OrderProposal) -> Decision:
        """Allow, deny or hold one proposed order. Never raises, never waits on the network."""
        try:
            return self._review(proposal)
        except (sa.exc.SQLAlchemyError, StoreUnavailable) as exc:
            log.error("store unavailable during review of %s: %s", proposal.proposal_id, exc)
            return self._decision(
                proposal,
                DenialCode.STORE_UNAVAILABLE,
                "the store is unavailable; no order is placed until it is back",
                audit_it=False,
            )
        except Exception:
            log.exception("internal error reviewing %s", proposal.proposal_id)
            return self._decision(
                proposal,
                DenialCode.INTERNAL_ERROR,
                "internal error in the governor; the order is refused (see the log)",
                audit_it=False,
            )

    def _review(self, p: OrderProposal) -> Decision:
        now = self.clock()
        self._recent_decisions.append(now)
        state = self.ladder_state()
        self.breakers.note_state(state.trading_state)  # a resume re-bases the loss limits
        exchange = Settings.exchange_of(p.connector)
        # 1. halted / reducing
        if state.trading_state is TradingState.HALTED:
            return self._deny(p, DenialCode.HALTED, _halted(state.reason))
        if state.trading_state is TradingState.REDUCING and not p.reduce_only:
            return self._deny(p, DenialCode.REDUCE_ONLY, _reducing(state.reason))
        # 2. phase permits this connector
        denial = phases.connector_denial(state.phase, Settings.is_paper(p.connector))
        if denial:
            return self._deny(p, *denial)
        # 3. input sanity (a LIMIT needs its own finite positive price; books not from the future)
        config = self.settings.exchanges.get(exchange)
        limits = self.settings.risk
        failed = risk.check_inputs(
            p, config.pairs if config else None, now, limits.stale_price_s, limits.future_tolerance_s
        )
        if failed:
            return self._deny(p, failed.code, failed.message)
        rate = self.usd_per_quote(p.quote)
        if rate is None:
            return self._deny(
                p, DenialCode.FX_RATE_MISSING, f"no USD rate for {p.quote}; add fx_usd.{p.quote} to the config"
            )
        failed = risk.check_fx(
            self._fx_observed.get(p.quote), self.settings.fx_usd.get(p.quote), limits.fx_band_pct, p.quote
        )
        if failed:
            return self._deny(p, failed.code, failed.message)
        # A MARKET order is valued at its worst price (mid plus the collar on the side it crosses).
        price = risk.valuation_price(p, limits.price_collar_pct)
        notional_usd = p.amount * risk.notional_price(p, limits.price_collar_pct) * rate
        # 4. price collar (limit vs mid), then what the governor itself saw: enough history, its
        # last mid agrees with the proposal's, no flash move against the time-weighted reference.
        # A reduce-only close skips the second half: a stop-loss fires exactly when the market
        # jumps, and refusing it then would trap the position; its price is still collared.
        failed = risk.check_collar(price, p.mid_price, None, limits.price_collar_pct)
        if failed is None and not p.reduce_only:
            failed = risk.check_reference(
                p, self._history.get((p.connector, p.trading_pair)), now,
                limits.reference_min_history_s, limits.stale_price_s, limits.price_collar_pct,
            )  # fmt: skip
            if failed is not None and failed.code is DenialCode.REFERENCE_WARMUP:  # a wait, not a refusal
                return self._decision(p, failed.code, failed.message, notional_usd, DecisionStatus.PENDING)
        if failed:
            return self._deny(p, failed.code, failed.message, notional_usd)
        # 5. max order notional, then the order-level breakers (quantity in base units, this
        # bot's rejection-storm block, duplicates)
        failed = risk.check_notional(notional_usd, self.settings.risk.max_order_notional_usd)
        if failed is None:
            trip = self.breakers.pre_trade(p, exchange, now)
            if trip is not None:
                failed = risk.Denial(trip.code, trip.message)
        if failed:
            return self._deny(p, failed.code, failed.message, notional_usd)
        # 6. order rate and open orders (per bot and exchange)
        window = self._rates.setdefault(exchange, risk.RateWindow())
        failed = risk.check_rate(window, now, self.settings.risk.order_rate_window_s, self.settings.risk.order_rate_max)
        if failed is None:
            failed = risk.check_open_orders(len(self._open.get(exchange, ())), self.settings.risk.max_open_orders)
        book = state.book
        assert book is not None  # phases 1-2 were refused above
        if failed is None:
            failed = self._exchange_rate(book, exchange, now)
        if failed:
            return self._deny(p, failed.code, failed.message, notional_usd)
        # A close (reduce_only) takes the short path only when it really reduces this bot's own
        # net position on this market (another bot's trades neither allow nor block it): no
        # mandate needed, and it passes in a gradual stop. A sell that closes a long frees
        # capital and reserves nothing; a buy that closes a short still adds capital to the
        # exchange, so it must fit the caps like any buy. A close that would not reduce the
        # net position (say, one executor's sold level while the bot is net long) is refused
        # in a gradual stop and otherwise judged as an ordinary order.
        if p.reduce_only:
            position = self._position(book, exchange, p.trading_pair)
            closable = position if p.side is Side.SELL else -position
            tolerance = 1 + Decimal(str(limits.close_tolerance_pct)) / 100
            if p.amount <= max(closable, Decimal(0)) * tolerance:
                return self._reserve(
                    p, book, exchange, notional_usd, rate, None, window, now, reserve=p.side is Side.BUY, price=price
                )
            if state.trading_state is TradingState.REDUCING:
                held = f"long {position}" if position > 0 else f"short {-position}" if position < 0 else "flat"
                return self._deny(
                    p,
                    DenialCode.REDUCE_ONLY,
                    f"gradual stop in force ({state.reason}); this {p.side.value.lower()} of {p.amount} {p.base} "
                    f"would not reduce this bot's position on {p.connector} {p.trading_pair} ({held})",
                    notional_usd,
                )
        # 7. mandate coverage
        mandate = self.mandates.find(p, notional_usd, now)
        if mandate is not None:
            used = self._mandate_used.get(mandate.mandate_id, Decimal(0))
            if used + notional_usd > mandate.max_total_notional_usd:
                mandate = None
        if mandate is None:
            self.mandates.request(p, self._council_context(p, state, now))
            if getattr(self.mandates, "per_order", False):
                # per-order consensus: local voters answer inline, so this order may be covered now
                mandate = self.mandates.find(p, notional_usd, now)
        if mandate is None:
            return self._decision(
                p,
                DenialCode.NO_MANDATE,
                "no council mandate covers this order yet; one has been requested, propose again on a later tick",
                notional_usd,
                DecisionStatus.PENDING,
            )
        # 8. atomic capital reservation
        decision = self._reserve(p, book, exchange, notional_usd, rate, mandate, window, now, reserve=True, price=price)
        if decision.allowed:
            self._mandate_used[mandate.mandate_id] = (
                self._mandate_used.get(mandate.mandate_id, Decimal(0)) + notional_usd
            )
        return decision

    def _reserve(
        self,
        p: OrderProposal,
        book: str,
        exchange: str,
        notional_usd: Decimal,
        rate: Decimal,
        mandate: Mandate | None,
        window: risk.RateWindow,
        now: float,
        reserve: bool,
        price: Decimal | None = None,
    ) -> Decision:
        reservation_id = new_id("res")
        amount_musd = to_musd(notional_usd) if reserve else 0
        decided = _decision_payload(p, DecisionStatus.ALLOWED, None, "", notional_usd, reservation_id, mandate)
        row = (
            reservation_id,
            self.bot_id,
            p.connector,
            book,
            exchange,
            p.trading_pair,
            p.side.value,
            p.reduce_only,
            str(p.amount),
            str(price if price is not None else p.reference_price),
            str(rate),
            amount_musd,
            p.client_order_id,
            mandate.mandate_id if mandate else None,
            now,
        )
        try:
            seq = self.hot.reserve(
                (f"{book}:{exchange}", f"{book}:TOTAL"),
                amount_musd,
                row,
                audit.canonical_json(decided),
                self.bot_id,
                now,
                reduce_only=p.reduce_only,
            )
        except TradingStopped as stopped:
            self.ladder_state(fresh=True)  # the cached state was up to 0.25 s old
            if stopped.state == TradingState.HALTED.value:
                return self._deny(p, DenialCode.HALTED, _halted(stopped.reason))
            return self._deny(p, DenialCode.REDUCE_ONLY, _reducing(stopped.reason))
        ok = seq is not None
        if not ok:
            code, message = self._cap_denial(book, exchange, notional_usd)
            return self._deny(p, code, message, notional_usd)
        window.add(now)
        self.breakers.allowed(p, now, reservation_id)
        self._open.setdefault(exchange, set()).add(reservation_id)
        self._reservation_exchange[reservation_id] = exchange
        self._count("ALLOWED")
        return Decision(
            proposal_id=p.proposal_id,
            status=DecisionStatus.ALLOWED,
            message="allowed",
            notional_usd=notional_usd,
            reservation_id=reservation_id,
            mandate_id=mandate.mandate_id if mandate else None,
            consensus_id=mandate.consensus_id if mandate else None,
            size_scale=mandate.size_scale if mandate else 1.0,
            audit_seq=seq,
        )

    def _exchange_rate(self, book: str, exchange: str, now: float) -> risk.Denial | None:
        """The exchange-wide order-rate budget across every bot, counted in the store."""
        cfg = self.settings.breakers
        count = self.hot.orders_since(book, exchange, now - cfg.exchange_order_rate_window_s)
        trip = check_exchange_rate(exchange, count, cfg.exchange_order_rate_max, cfg.exchange_order_rate_window_s)
        return None if trip is None else risk.Denial(trip.code, trip.message)

    # --- circuit breakers -------------------------------------------------------------------

    def _outcome(self, reservation_id: str, failed: bool, now: float) -> None:
        """The exchange's answer to an allowed order feeds the rejection-storm breaker."""
        exchange = self._reservation_exchange.get(reservation_id)
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
            self._revoke(exchange, f"{failures} of {orders} recent orders on {exchange} failed")

    def _revoke(self, exchange: str | None, why: str) -> None:
        revoke = getattr(self.mandates, "revoke", None)
        if callable(revoke):
            revoke(exchange, why)

    def _trip(self, trip: Trip, now: float) -> None:
        """A breaker tripped: audit it, act on it, and revoke the mandates it concerns."""
        record = {"code": trip.code.value, "action": trip.action.value, "scope": trip.scope, "message": trip.message}
        try:
            self.hot.audit("breaker", audit.canonical_json(record), self.bot_id, now)
        except (sa.exc.SQLAlchemyError, StoreUnavailable) as exc:
            log.error("could not audit breaker %s: %s", trip.code, exc)
        self._count(f"breaker:{trip.code.value}")
        log.warning("circuit breaker %s (%s): %s", trip.code.value, trip.action.value, trip.message)
        exchange = trip.scope.split(":", 1)[1] if ":" in trip.scope else trip.scope
        self._revoke(None if exchange == "TOTAL" else exchange, trip.message)
        try:
            if trip.action is Action.DEMOTE_AND_STOP:
                self.ledger.demote(exchange, f"breaker {trip.code.value}: {trip.message}"[:400], "breaker")
            stopping = trip.action in (Action.GRADUAL_STOP, Action.DEMOTE_AND_STOP)
            if stopping and self.ledger.state().trading_state is TradingState.ACTIVE:
                self.ledger.reduce_only(f"breaker {trip.code.value}: {trip.message}"[:400], "breaker")
                self._state = None
        except (sa.exc.SQLAlchemyError, StoreUnavailable):
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
                str(row["exchange"]), str(row["trading_pair"]), row["side"] == Side.BUY.value,
                Decimal(row["amount"]), from_musd(int(row["notional_musd"])), from_musd(int(row["fee_musd"])),
                float(row["ts"]),
            )  # fmt: skip
        exposure = self.exposure(book)
        caps = {name: ex.cap_usd for name, ex in exposure.exchanges.items()}
        trips = self.breakers.loss_trips(
            book, state.trading_state, now, exposure.total.cap_usd, caps, per_exchange=state.phase == 4
        )
        for trip in trips:  # each limit reached is audited; its exchange demoted in phase 4; one stop
            self._trip(trip, now)
        return trips

    def _cap_denial(self, book: str, exchange: str, notional_usd: Decimal) -> tuple[DenialCode, str]:
        exposure = self.exposure(book)
        ex = exposure.exchanges.get(exchange)
        if ex is None or ex.used_usd + notional_usd > ex.cap_usd:
            cap = ex.cap_usd if ex else Decimal(0)
            used = ex.used_usd if ex else Decimal(0)
            return DenialCode.EXCHANGE_CAP, (
                f"{notional_usd:.2f} USD more would put {exchange} at {used + notional_usd:.2f} USD, over its "
                f"{cap:.2f} USD cap for this phase"
            )
        total = exposure.total
        return DenialCode.TOTAL_CAP, (
            f"{notional_usd:.2f} USD more would put the total at {total.used_usd + notional_usd:.2f} USD, over the "
            f"{total.cap_usd:.2f} USD cap for this phase"
        )

    def _council_context(self, p: OrderProposal, state: LadderState, now: float) -> CouncilContext:
        exchange = Settings.exchange_of(p.connector)
        book = state.book or phases.LIVE_BOOK
        exposure = self.exposure(book)
        ex = exposure.exchanges.get(exchange)
        horizon = now - 300
        decisions = sum(1 for t in self._recent_decisions if t >= horizon)
        return CouncilContext(
            phase=state.phase,
            question="mandate",
            proposal=p,
            market=self._markets.get((p.connector, p.trading_pair)),
            cap_usd=ex.cap_usd if ex else Decimal(0),
            deployed_usd=ex.deployed_usd if ex else Decimal(0),
            reserved_usd=ex.reserved_usd if ex else Decimal(0),
            error_rate=sampled_rate(sum(1 for t in self._recent_failures if t >= horizon), decisions),
            reject_rate=sampled_rate(sum(1 for t in self._recent_denials if t >= horizon), decisions),
            rate_samples=decisions,
            market_context=self.market_history.context(p.connector, p.trading_pair, now),
            now=now,
        )

    def _deny(self, p: OrderProposal, code: DenialCode, message: str, notional: Decimal = Decimal(0)) -> Decision:
        self._recent_denials.append(self.clock())
        return self._decision(p, code, message, notional)

    def _decision(
        self,
        p: OrderProposal,
        code: DenialCode,
        message: str,
        notional: Decimal = Decimal(0),
        status: DecisionStatus = DecisionStatus.DENIED,
        audit_it: bool = True,
    ) -> Decision:
        seq: int | None = None
        if audit_it:
            try:
                payload = _decision_payload(p, status, code, message, notional, None, None)
                seq = self.hot.audit("decision", audit.canonical_json(payload), self.bot_id, self.clock())
            except (sa.exc.SQLAlchemyError, StoreUnavailable) as exc:
                log.error("could not audit the denial of %s: %s", p.proposal_id, exc)
                code, message = DenialCode.STORE_UNAVAILABLE, f"{message} (and the store is unavailable)"
        self._count(code.value if status is DecisionStatus.DENIED else status.value)
        safe_notional = notional if notional.is_finite() else Decimal(0)
        return Decision(
            proposal_id=p.proposal_id,
            status=status,
            code=code,
            message=message,
            notional_usd=safe_notional,
            audit_seq=seq,
        )

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # --- events -----------------------------------------------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        """Fills become deployed capital; cancels and failures release the reservation."""
        now = self.clock() if event.timestamp is None else event.timestamp
        if event.kind in _RELEASES:
            released = {
                "kind": event.kind.value,
                "reservation_id": event.reservation_id,
                "client_order_id": event.client_order_id,
            }
            if event.kind is not OrderEventKind.EXPIRED:
                self._outcome(event.reservation_id, event.kind is OrderEventKind.FAILED, now)
            if self.hot.release(event.reservation_id, _RELEASES[event.kind], released, self.bot_id, now):
                self._forget(event.reservation_id)
                if event.kind is OrderEventKind.FAILED:
                    self._recent_failures.append(now)
                return
        if event.kind in (OrderEventKind.CREATED, OrderEventKind.FILLED, OrderEventKind.COMPLETED):
            self._outcome(event.reservation_id, False, now)
        if event.kind is OrderEventKind.FILLED:
            filled = self.hot.fill(
                event.reservation_id,
                event.client_order_id,
                event.filled_amount,
                event.fill_price,
                to_musd(event.fee_usd),
                self.bot_id,
                now,
            )
            if filled is not None:
                self.market_history.observe_fill(filled["trading_pair"], filled["side"], event.filled_amount,
                                                 event.fill_price, now, event.fee_usd)  # fmt: skip
                key = (filled["book"], filled["exchange"], filled["trading_pair"])
                if key in self._positions:
                    signed = event.filled_amount if filled["side"] == Side.BUY.value else -event.filled_amount
                    self._positions[key] += signed
                if filled["complete"]:
                    self._forget(event.reservation_id)
                return  # unknown reservation: audited as an orphan below
        if event.kind in (OrderEventKind.CREATED, OrderEventKind.COMPLETED):
            status = self.hot.reservation_status(event.reservation_id)
            if event.kind is OrderEventKind.CREATED and status is not None:
                return  # the exchange took an order we know: nothing changes (unknown ones are audited below)
            if event.kind is OrderEventKind.COMPLETED and status not in (None, "OPEN"):
                # the usual case: the last fill already closed the reservation; a terminal state
                # cannot change under us, so this needs the audit record only, not the ledger
                note = {
                    "kind": event.kind.value,
                    "reservation_id": event.reservation_id,
                    "client_order_id": event.client_order_id,
                    "note": f"reservation already {status}",
                }
                self.hot.audit("order_event", audit.canonical_json(note), self.bot_id, now)
                self._forget(event.reservation_id)
                return
        try:
            with write_tx(self.ledger.engine) as conn:
                row = conn.execute(
                    sa.select(reservations).where(reservations.c.reservation_id == event.reservation_id)
                ).first()
                if row is None:
                    audit.append(
                        conn,
                        "orphan_event",
                        {
                            "kind": event.kind.value,
                            "reservation_id": event.reservation_id,
                            "client_order_id": event.client_order_id,
                        },
                        self.bot_id,
                        now,
                    )
                    return
                # known reservation: fills and creations were recorded above, so what is left is a
                # completion that still finds it OPEN, or a release it is already closed for
                mapping = row._mapping
                payload: dict[str, Any] = {
                    "kind": event.kind.value,
                    "reservation_id": event.reservation_id,
                    "client_order_id": event.client_order_id,
                }
                if mapping["status"] != "OPEN":
                    payload["note"] = f"reservation already {mapping['status']}"
                else:
                    status = "FILLED" if event.kind is OrderEventKind.COMPLETED else _RELEASES[event.kind]
                    payload["released_usd"] = str(from_musd(self.ledger.release_in_tx(conn, mapping, status, now)))
                    self._forget(event.reservation_id)
                    if event.kind is OrderEventKind.FAILED:
                        self._recent_failures.append(now)
                audit.append(conn, "order_event", payload, self.bot_id, now)
        except sa.exc.SQLAlchemyError:
            log.exception(
                "could not record %s for %s; it will be reconciled from the exchange", event.kind, event.reservation_id
            )
            raise

    def _forget(self, reservation_id: str) -> None:
        self.breakers.closed(reservation_id)
        exchange = self._reservation_exchange.pop(reservation_id, None)
        if exchange is not None:
            self._open.get(exchange, set()).discard(reservation_id)

    def heartbeat(self) -> None:
        """Tell the store this bot is alive (throttled), and expire silent bots' reservations."""
        now = self.clock()
        if now - self._last_heartbeat < HEARTBEAT_EVERY_S:
            return
        self._last_heartbeat = now
        self._beats += 1
        try:
            self.hot.heartbeat(self.bot_id, now, _HOST, os.getpid())
            if self._beats % HOUSEKEEPING_EVERY == 1:
                timeout_s = self.settings.risk.heartbeat_timeout_s
                if self.hot.silent_bots_holding_capital(now - timeout_s):
                    self.ledger.expire_silent_bots(timeout_s, now)
                self.hot.checkpoint()
            self.check_loss_limits(now)
        except (sa.exc.SQLAlchemyError, StoreUnavailable) as exc:
            log.error("heartbeat failed: %s", exc)


_RELEASES = {
    OrderEventKind.CANCELLED: "CANCELLED",
    OrderEventKind.FAILED: "FAILED",
    OrderEventKind.EXPIRED: "EXPIRED",
}


def _halted(reason: str) -> str:
    return f"trading is halted ({reason}); an operator must resume"


def _reducing(reason: str) -> str:
    return f"gradual stop in force ({reason}); only orders that reduce exposure pass"


def _decision_payload(
    p: OrderProposal,
    status: DecisionStatus,
    code: DenialCode | None,
    message: str,
    notional: Decimal,
    reservation_id: str | None,
    mandate: Mandate | None,
) -> dict[str, Any]:
    return {
        "proposal_id": p.proposal_id,
        "status": status.value,
        "code": code.value if code else None,
        "message": message,
        "connector": p.connector,
        "pair": p.trading_pair,
        "side": p.side.value,
        "amount": str(p.amount),
        "price": str(p.price) if p.price is not None else None,
        "mid": str(p.mid_price),
        "notional_usd": str(notional.quantize(Decimal("0.000001"))) if notional.is_finite() else str(notional),
        "reduce_only": p.reduce_only,
        "strategy": p.strategy,
        "reservation_id": reservation_id,
        "mandate_id": mandate.mandate_id if mandate else None,
        "consensus_id": mandate.consensus_id if mandate else None,
    }
