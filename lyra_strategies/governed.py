"""`GovernedStrategyV2Base`: a Hummingbot `StrategyV2Base` whose every order passes the governor.

Why `buy`/`sell`: direct script orders and every CEX executor's orders go through them, so they
are the one choke point (patching the connector does not work: its `c_buy` is Cython).

A denied order is never sent. `buy`/`sell` still return a client order id, and on the next tick
the connector publishes a `MarketOrderFailureEvent` for it, so each executor takes its own
failed-order path exactly as for an exchange rejection. Firing the event inside `buy` would be
too early: an executor only learns the order id when `buy` returns.

Orders with `PositionAction.CLOSE` (an executor's close, stop-loss, take-profit, time limit)
are proposed as reduce-only: when they reduce the bot's own net position on that market they
need no mandate and still pass in a gradual stop, because a governor that traps a position is
a risk of its own. The governor judges that from the bot's fills: a sell that closes a long
reserves nothing, a buy that buys back sold inventory still reserves capital (it adds capital to
the exchange, so it must fit the caps), and a close that would not reduce the net position is an
ordinary order (refused in a gradual stop).

Offline (`offline = True`, the paper replay and the tests) the executors and controllers run on
the back-test clock: see `lyra_strategies.paper.backtest`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hummingbot.connector.connector_base import ConnectorBase
from hummingbot.core.data_type.common import OrderType as HbOrderType
from hummingbot.core.data_type.common import PositionAction
from hummingbot.core.event.events import (
    BuyOrderCompletedEvent,
    MarketEvent,
    MarketOrderFailureEvent,
    OrderCancelledEvent,
    OrderFilledEvent,
    SellOrderCompletedEvent,
)
from hummingbot.strategy.strategy_v2_base import StrategyV2Base

from lyra_governor.config import Settings, load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import (
    Decision,
    DecisionStatus,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    OrderType,
    Side,
    StrayOrder,
    TradingState,
    new_id,
)
from lyra_strategies import hb_status

log = logging.getLogger(__name__)
NAN = Decimal("NaN")
DENIED_PREFIX = "lyra-denied-"
RECONCILE_TIMEOUT_S = 30.0  # one reconciliation attempt (exchange calls included) at most
RECONCILE_RETRY_S = 5.0
ENDED_ORDERS_KEPT = 1000  # cancelled or failed orders whose late fills still reach the ledger
REPORTS_EVERY_S = 10.0  # executor reports at least this fresh with `reports_on_change` (live `status` PnL)
#: ... offline: nothing shows them (a replay's figures come from Lyra's ledger) and the controller
#: decides on executors' ids, sides and status only, which rebuild the reports when they change
OFFLINE_REPORTS_EVERY_S = 60.0

_ORDER_TYPES = {
    HbOrderType.LIMIT: OrderType.LIMIT,
    HbOrderType.LIMIT_MAKER: OrderType.LIMIT_MAKER,
    HbOrderType.MARKET: OrderType.MARKET,
}


def governor_for_script(config: Any, strategy: str) -> Governor:
    """The governor a script uses when none is injected: settings from the config's
    `lyra_config` (or LYRA_CONFIG / conf/lyra_governor.yml / embedded defaults)."""
    path = getattr(config, "lyra_config", "") or None
    settings: Settings = load_settings(path)
    bot_id = getattr(config, "bot_id", "") or f"{strategy}-{new_id('bot')[4:]}"
    return Governor.from_settings(settings, bot_id=bot_id, strategy=strategy)


class GovernedStrategyV2Base(StrategyV2Base):  # type: ignore[misc]
    """Subclass this instead of `StrategyV2Base`; everything else stays Hummingbot's."""

    #: A governor to share (paper replays inject one with a simulated clock).
    injected_governor: Governor | None = None
    #: Offline replays run without a HummingbotApplication: `start` skips the MQTT lookup.
    offline: bool = False
    #: How old the book behind a mid price is; replays report their feed's age.
    book_timestamp: Callable[[str, str, float], float] | None = None
    #: On start, an order a crash left resting on the exchange is adopted into Hummingbot's
    #: tracker and then cancelled ("cancel") or kept, its fills booked as they come ("adopt").
    reconcile_policy: str = "cancel"
    #: Live: every so many seconds the exchange's resting orders are read again for strays
    #: (orders no reservation holds: placed by hand while the bot runs, or by another process).
    stray_sweep_s: float = 300.0
    #: Rebuild Hummingbot's executor reports only when an executor started, changed status or
    #: ended (or `REPORTS_EVERY_S` passed), not every tick: StrategyV2Base rebuilds them each tick
    #: for its controllers, every executor's PnL and the performance report recomputed (in a
    #: paper replay of the Bollinger script, 58 % of its CPU). Only for controllers that decide
    #: from what executors exist and their status, never from their PnL (`lyra_bollinger`).
    reports_on_change: bool = False

    def __init__(
        self, connectors: dict[str, ConnectorBase], config: Any = None, governor: Governor | None = None
    ) -> None:
        super().__init__(connectors, config)
        name = type(self).__name__
        self.lyra: Governor = governor or type(self).injected_governor or governor_for_script(config, name)
        self.lyra_strategy = name
        self._reservation_of: dict[str, str] = {}
        self._ended_reservation_of: dict[str, str] = {}  # cancelled/failed orders, for late fills
        self._denied: deque[tuple[str, str, HbOrderType]] = deque()
        self._was_halted = False
        self._placing: str | None = None  # the reservation whose order is being placed right now
        self._placing_closed = False
        self._state_changed = threading.Event()  # set from the MQTT thread: re-read the store
        self._halt_listener: Any = None
        self.decisions: dict[str, int] = {}
        #: when the governor last refused (not merely deferred) an order on (connector, pair, side)
        self.refused_at: dict[tuple[str, str, Side], float] = {}
        self.exchange_failures = 0
        self._depth: dict[tuple[str, str], tuple[float, float]] = {}  # (connector, pair) -> (read at, depth)
        self._cancel_requested: set[str] = set()  # order ids this strategy asked to cancel
        self.last_decision: Decision | None = None
        self.lyra_denials: deque[hb_status.Denial] = deque(maxlen=20)  # the latest, for `status`
        self._ladder_watch = hb_status.LadderWatch()
        #: reconciliation on start (live connectors): None until done, then what it found
        self.reconciliation: dict[str, Any] | None = None
        self._reconciled = self.offline
        self._reconcile_task: Any = None
        self._reconcile_retry_at = 0.0
        self._sweep_task: Any = None
        self._sweep_at = time.monotonic() + self.stray_sweep_s  # the start's reconciliation just looked
        self._executors_ok: set[str] = set()  # connectors seen able to run executors
        self._reports_seen: tuple[Any, ...] | None = None  # the executors behind the last reports
        self._reports_at = float("-inf")
        self._executors_warned = False
        if self.offline:
            from lyra_strategies.paper.backtest import run_on_backtest_clock

            self._simulated_market_data()
            run_on_backtest_clock(self)

    # --- offline: Hummingbot's V2 machinery on the back-test clock ------------------------

    def _simulated_market_data(self) -> None:
        from lyra_strategies.paper.backtest import SimulatedMarketDataProvider

        provider: Any = getattr(self, "market_data_provider", None)
        if not isinstance(provider, SimulatedMarketDataProvider):
            self.market_data_provider = SimulatedMarketDataProvider(self.connectors, lambda: self.current_timestamp)

    def add_controller(self, config: Any) -> None:
        """Hummingbot's, plus offline: the controller gets simulated time and loop interval 0.
        (StrategyV2Base builds its controllers inside its constructor, so this is the first
        place the offline market data provider can be put in.)"""
        if self.offline:
            self._simulated_market_data()
        super().add_controller(config)
        if self.offline and config.id in self.controllers:
            self.controllers[config.id].update_interval = 0.0

    def update_executors_info(self) -> None:
        """Hummingbot's (controllers get their executors' reports), unless `reports_on_change`
        and no executor started, changed status or ended since the last reports, and they are
        younger than `REPORTS_EVERY_S` (offline `OFFLINE_REPORTS_EVERY_S`): then the controllers
        keep them and are told to go on."""
        if self.reports_on_change:
            orchestrator = self.executor_orchestrator
            held = sum(len(positions) for positions in orchestrator.positions_held.values())
            executors = [e for running in orchestrator.active_executors.values() for e in running]
            seen = (held, *((e.config.id, e.status) for e in executors))
            now = float(self.current_timestamp)
            every = OFFLINE_REPORTS_EVERY_S if self.offline else REPORTS_EVERY_S
            if seen == self._reports_seen and now - self._reports_at < every:
                for controller in self.controllers.values():
                    controller.executors_update_event.set()
                return
            self._reports_seen, self._reports_at = seen, now
        super().update_executors_info()

    def executors_supported(self, connector_name: str) -> bool:
        """Whether Hummingbot's executors can run on this connector. Hummingbot's own
        `*_paper_trade` connector has no trading rules or order tracker (upstream issues
        hummingbot#7434, #8414); `lyra_strategies.paper.exchange.PaperExchange` has both."""
        connector = self.connectors.get(connector_name)
        return connector is not None and hasattr(connector, "trading_rules") and hasattr(connector, "_order_tracker")

    def executors_ready(self, *connector_names: str, what: str = "this script") -> bool:
        """Whether every one of these connectors can run Hummingbot's executors, checked each
        tick by the executor scripts (once a connector could, it is not asked again); the first
        time one cannot, one warning names what `what` needs instead."""
        missing = [c for c in connector_names if c not in self._executors_ok and not self.executors_supported(c)]
        self._executors_ok.update(c for c in connector_names if c not in missing)
        if missing and not self._executors_warned:
            self._executors_warned = True
            self.logger().warning(
                f"{', '.join(missing)} cannot run Hummingbot executors (no trading rules or order tracker): "
                f"{what} needs a live connector or `lyra-governor paper`."
            )
        return not missing

    # --- the choke point ----------------------------------------------------------------

    def buy(
        self,
        connector_name: str,
        trading_pair: str,
        amount: Decimal,
        order_type: HbOrderType,
        price: Decimal = NAN,
        position_action: PositionAction = PositionAction.OPEN,
    ) -> str:
        return self._governed(Side.BUY, connector_name, trading_pair, amount, order_type, price, position_action)

    def sell(
        self,
        connector_name: str,
        trading_pair: str,
        amount: Decimal,
        order_type: HbOrderType,
        price: Decimal = NAN,
        position_action: PositionAction = PositionAction.OPEN,
    ) -> str:
        return self._governed(Side.SELL, connector_name, trading_pair, amount, order_type, price, position_action)

    def _governed(
        self,
        side: Side,
        connector_name: str,
        trading_pair: str,
        amount: Decimal,
        order_type: HbOrderType,
        price: Decimal,
        position_action: PositionAction,
    ) -> str:
        # judge the order the exchange will get: the connector rounds amount and price down to
        # its trading rules inside `buy`/`sell`, so unrounded figures over-reserve and a fill of
        # the whole (rounded) order would never complete the reservation
        amount, price = _as_sent(self.connectors.get(connector_name), trading_pair, amount, order_type, price)
        decision = self.lyra.review(
            self.proposal(
                side, connector_name, trading_pair, amount, order_type, price,
                position_action == PositionAction.CLOSE,  # the governor checks it really reduces
            )
        )
        self.last_decision = decision
        key = decision.code.value if decision.code else decision.status.value
        self.decisions[key] = self.decisions.get(key, 0) + 1
        if not decision.allowed:
            if decision.status is not DecisionStatus.PENDING:  # PENDING clears itself on a later tick
                self.refused_at[(connector_name, trading_pair, side)] = self.current_timestamp
            self.lyra_denials.append(hb_status.Denial(time.time(), key, decision.message or ""))
            denied_id = f"{DENIED_PREFIX}{new_id('ord')[4:]}"
            self._denied.append((connector_name, denied_id, order_type))
            log.debug("order denied %s: %s", decision.code, decision.message)
            return denied_id
        place = super().buy if side is Side.BUY else super().sell
        assert decision.reservation_id is not None
        # A paper engine executes a MARKET order inside `place`, so its fill and completion
        # arrive before we know the order id: events during `place` belong to this reservation.
        self._placing, self._placing_closed = decision.reservation_id, False
        try:
            order_id: str = place(connector_name, trading_pair, amount, order_type, price, position_action)
        except Exception:
            self.lyra.on_order_event(OrderEvent(kind=OrderEventKind.FAILED, reservation_id=decision.reservation_id))
            raise
        finally:
            self._placing = None
        if not self._placing_closed:
            self._reservation_of[order_id] = decision.reservation_id
        return order_id

    def proposal(
        self,
        side: Side,
        connector_name: str,
        trading_pair: str,
        amount: Decimal,
        order_type: HbOrderType,
        price: Decimal,
        reduce_only: bool,
    ) -> OrderProposal:
        """What the governor judges: the order plus the book's mid and how fresh it is."""
        now = self.current_timestamp
        mid = self._mid(connector_name, trading_pair)
        ts = self.book_timestamp(connector_name, trading_pair, now) if self.book_timestamp else now
        # Only a MARKET order goes without a price (it is valued at its worst price). A LIMIT keeps
        # whatever it was given, NaN included, so the governor refuses it by name: turned into
        # "no price" it would be valued at mid and reach the exchange as a MARKET order
        # (upstream hummingbot#7823).
        limit = None if order_type == HbOrderType.MARKET else _as_decimal(price)
        return OrderProposal(
            bot_id=self.lyra.bot_id,
            strategy=self.lyra_strategy,
            connector=connector_name,
            trading_pair=trading_pair,
            side=side,
            order_type=_ORDER_TYPES.get(order_type, OrderType.LIMIT),
            amount=Decimal(amount),
            price=limit,
            mid_price=mid,
            mid_price_ts=ts,
            reduce_only=reduce_only,
        )

    def _mid(self, connector_name: str, trading_pair: str) -> Decimal:
        connector = self.connectors.get(connector_name)
        if connector is None:
            return NAN
        try:
            return _quote(connector_name, connector, trading_pair).mid
        except Exception:
            return NAN

    # --- each tick ----------------------------------------------------------------------

    def tick(self, timestamp: float) -> None:
        if self.offline:  # candles from the paper books: this second's mids, before any strategy reads them
            self.market_data_provider.sample_candles(timestamp)
        self._publish_denials(timestamp)
        if not self._reconciled:  # settle what a crash left behind before proposing anything
            self.lyra.heartbeat()
            self._step_reconciliation()
            return
        # one governor call: the beat, `_before_state` (live, or after an MQTT halt/resume), the
        # state, and, unless halted, this tick's observations (built first: `_snapshots`)
        snapshots, depth_reads = self._snapshots(timestamp)
        before = self._before_state if not self.offline or self._state_changed.is_set() else None
        state = self.lyra.on_tick(snapshots, before)
        if state is TradingState.HALTED:
            if not self._was_halted:
                self._was_halted = True
                self.hold_all_executors()
                self.cancel_all_orders()
            return  # no strategy logic while halted: nothing new is proposed
        self._was_halted = False
        if depth_reads:
            self._depth.update(depth_reads)
        super().tick(timestamp)

    def _before_state(self) -> None:
        """What a tick does between its heartbeat and its state read (`Governor.on_tick` calls it)."""
        if self._state_changed.is_set():  # an MQTT halt/resume: don't wait for the cache to age
            self._state_changed.clear()
            self.lyra.ladder_state(fresh=True)
        if not self.offline:
            self._log_ladder_changes()
            self._step_sweep()

    def start(self, clock: Any, timestamp: float) -> None:
        if self.offline:
            self._last_timestamp = timestamp
            self.apply_initial_setting()
            for controller in self.controllers.values():
                controller.start()
            return
        super().start(clock, timestamp)
        hb_log().info(hb_status.started_line(self.lyra))
        self._ladder_watch.changes(self.lyra.ladder_state())
        self.start_halt_listener(_hummingbot_instance_id())

    # --- what Hummingbot shows: `status` and its log ------------------------------------

    def format_status(self) -> str:
        """Hummingbot's `status`: the governor's block first, then Hummingbot's own."""
        try:
            lyra = "\n".join(hb_status.status_lines(self.lyra, self.connectors, self.decisions, self.lyra_denials))
        except Exception as exc:
            lyra = f"  Lyra governor: status unavailable ({type(exc).__name__}: {exc})"
        return lyra + "\n\n" + str(super().format_status())

    def _log_ladder_changes(self) -> None:
        for warning, line in self._ladder_watch.changes(self.lyra.ladder_state()):
            (hb_log().warning if warning else hb_log().info)(line)

    def start_halt_listener(self, instance_id: str | None = None) -> None:
        """With `mqtt.enabled`, Lyra's retained halt message wakes this bot at once (the store is
        re-read on the next tick, not up to 0.25 s later) and the bot announces its Hummingbot
        instance id, so `lyra-governor halt` can send Hummingbot's own stop command to it. A
        broker that cannot be reached is logged, not fatal: the store still carries every halt."""
        settings = self.lyra.settings
        if not settings.mqtt.enabled or self._halt_listener is not None:
            return
        from lyra_governor.mqtt import HaltListener

        listener = HaltListener(
            settings, self._on_mqtt_state, self._on_mqtt_state, instance_id=instance_id, bot_id=self.lyra.bot_id
        )
        try:
            self._halt_listener = listener.start()
        except OSError as exc:
            log.warning(
                "MQTT broker %s:%s unreachable (%s); halts still reach this bot through the store",
                settings.mqtt.host,
                settings.mqtt.port,
                exc,
            )

    def _on_mqtt_state(self, _message: dict[str, Any]) -> None:
        self._state_changed.set()  # runs on paho's thread: only a flag, the tick does the work

    async def on_stop(self) -> None:
        if not self.offline:  # a halt that stops Hummingbot's strategy is still logged as a change
            try:
                self.lyra.ladder_state(fresh=True)
                self._log_ladder_changes()
            except Exception:
                log.debug("no final ladder read on stop", exc_info=True)
        listener, self._halt_listener = self._halt_listener, None
        if listener is not None:
            listener.stop()
        await super().on_stop()

    def observe_markets(self, timestamp: float) -> None:
        """Hand the governor each market's latest facts (its flash-move reference and the
        council's market inputs), one `observe_market` each; `tick` hands them to `on_tick`."""
        snapshots, depth_reads = self._snapshots(timestamp)
        for snapshot in snapshots:
            self.lyra.observe_market(snapshot)
        self._depth.update(depth_reads)

    def _snapshots(
        self, timestamp: float
    ) -> tuple[list[MarketSnapshot], dict[tuple[str, str], tuple[float, float]]]:
        """Each market's snapshot of this tick, and the depth reads taken for them (the council's
        depth input, every `DEPTH_EVERY_S`), for the caller to keep once the snapshots are
        observed: a halted tick observes nothing and reads no depth, as before. Scripts that
        read one book in the same second (a replay's scripts share each connector's book) build
        one snapshot (`_Quote`); each governor still takes in every observation."""
        snapshots: list[MarketSnapshot] = []
        depth_reads: dict[tuple[str, str], tuple[float, float]] = {}
        for connector_name, connector in self.connectors.items():
            for pair in self.markets.get(connector_name, ()) or _pairs_of(connector):
                try:
                    quote = _quote(connector_name, connector, pair)
                except Exception:  # an empty or broken book: nothing to observe this tick
                    log.debug("no book for %s %s", connector_name, pair)
                    continue
                if quote.spread_pct is None:  # not a finite, positive bid and ask
                    continue
                ts = self.book_timestamp(connector_name, pair, timestamp) if self.book_timestamp else timestamp
                read_at, depth = self._depth.get((connector_name, pair), (float("-inf"), 0.0))
                if timestamp - read_at >= DEPTH_EVERY_S:
                    depth = quote.depth(connector, timestamp)
                    depth_reads[(connector_name, pair)] = (timestamp, depth)
                snapshots.append(quote.snapshot(timestamp, depth, max(0.0, timestamp - ts)))
        return snapshots, depth_reads

    def _publish_denials(self, timestamp: float) -> None:
        # only the denials queued before this tick: an executor that retries inside its failure
        # handler (XEMM's hedge) queues a new one, which waits for the next tick, not this loop
        for _ in range(len(self._denied)):
            connector_name, order_id, order_type = self._denied.popleft()
            connector = self.connectors.get(connector_name)
            if connector is not None:
                connector.trigger_event(
                    MarketEvent.OrderFailure,
                    MarketOrderFailureEvent(
                        timestamp,
                        order_id,
                        order_type,
                        error_message="denied by the Lyra governor",
                        error_type="LyraDenied",
                    ),
                )

    def hold_all_executors(self) -> None:
        """Stop every running executor and keep its position: on a halt nothing more may be
        sent, not even a close (the governor would refuse it), so the executors must not keep
        retrying; their positions stay with Hummingbot's position records."""
        for executors in self.executor_orchestrator.active_executors.values():
            for executor in executors:
                if executor.is_active:
                    executor.early_stop(keep_position=True)

    def cancel_all_orders(self) -> None:
        for connector_name in self.connectors:
            for order in self.get_active_orders(connector_name):
                self.cancel(connector_name, order.trading_pair, order.client_order_id)

    # --- reconciliation on start (see lyra_strategies.reconcile) ---------------------------

    def _step_reconciliation(self) -> None:
        task = self._reconcile_task
        if task is None:
            if time.monotonic() < self._reconcile_retry_at:
                return
            if not all(getattr(c, "ready", True) for c in self.connectors.values()):
                return  # trading rules, balances and the order books first
            from hummingbot.core.utils.async_utils import safe_ensure_future

            self._reconcile_task = safe_ensure_future(asyncio.wait_for(self.reconcile_on_start(), RECONCILE_TIMEOUT_S))
            return
        if not task.done():
            return
        self._reconcile_task = None
        error = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if error is None:
            self._reconciled = True
            return
        log.error(
            "reconciliation on start failed (%s); nothing is proposed until it succeeds, retrying in %s s",
            error,
            RECONCILE_RETRY_S,
        )
        self._reconcile_retry_at = time.monotonic() + RECONCILE_RETRY_S

    async def reconcile_on_start(self) -> dict[str, Any]:
        """Ask each live exchange for this bot's orders and fills since its oldest OPEN
        reservation and settle every reservation from the answer (booked, released, adopted or
        cancelled), each step audited, then one `reconciliation` record with the counts.
        Every market the strategy trades is read, reservations or not: an order resting there
        that no reservation of any bot holds (a stray) is booked against the caps
        (`Governor.book_stray`) and adopted; one this connector's ids say Hummingbot placed is
        cancelled under the "cancel" policy, one placed by hand is kept (counted, in `status`)."""
        from lyra_strategies import reconcile

        rows = self.lyra.ledger.open_reservations(self.lyra.bot_id)
        summary: dict[str, Any] = {
            "reservations": len(rows), "booked_fills": 0, "filled": 0, "cancelled": 0, "failed": 0,
            "adopted": 0, "cancel_sent": 0, "skipped": 0, "unaccounted": [], "strays": [],
        }  # fmt: skip
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {
            (name, pair): [] for name, pairs in self.markets.items() if name in reconcile.SOURCES for pair in pairs
        }
        for row in rows:
            groups.setdefault((row["connector"], row["trading_pair"]), []).append(row)
        for (connector_name, pair), group in sorted(groups.items()):
            connector = self.connectors.get(connector_name)
            source = reconcile.SOURCES.get(connector_name)
            if connector is None or source is None:
                summary["skipped"] += len(group)  # left to the bot that trades there (or to their expiry)
                continue
            since = min((float(r["created_at"]) for r in group), default=time.time()) - reconcile.CLOCK_SLACK_S
            orders = await source.orders(connector, pair, since)
            applied = reconcile.applied_trades(self.lyra.ledger.fill_rows(since=since))  # by trade id
            found = reconcile.plan(group, orders, "", applied)
            for settlement in found.settlements:
                self._settle(connector, pair, settlement, summary)
            others = [r for r in self.lyra.ledger.held_reservations(connector_name, pair)
                      if r["bot_id"] != self.lyra.bot_id]  # fmt: skip
            for order in reconcile.strays(found.unaccounted, others):
                summary["strays"].append(self._stray(connector, connector_name, pair, order))
            summary["unaccounted"] += [s["client_order_id"] for s in summary["strays"]]
        self.reconciliation = summary
        if rows or summary["strays"]:  # a clean start has nothing to settle and nothing to audit
            self.lyra.ledger.audit_append("reconciliation", {"bot_id": self.lyra.bot_id, **summary}, self.lyra.bot_id)
            log.info("reconciled %s open reservation(s) with the exchange: %s", len(rows), summary)
        return summary

    def _step_sweep(self) -> None:
        """Start a stray sweep every `stray_sweep_s` (a background task: the tick never waits on
        the exchange); a failed one is logged and the next one tries again."""
        task = self._sweep_task
        if task is not None:
            if not task.done():
                return
            self._sweep_task = None
            error = task.exception() if not task.cancelled() else asyncio.CancelledError()
            if error is not None:
                log.error("stray sweep failed (%s); the next one is in %s s", error, self.stray_sweep_s)
        if time.monotonic() < self._sweep_at:
            return
        from hummingbot.core.utils.async_utils import safe_ensure_future

        self._sweep_at = time.monotonic() + self.stray_sweep_s
        self._sweep_task = safe_ensure_future(asyncio.wait_for(self.sweep_strays(), RECONCILE_TIMEOUT_S))

    async def sweep_strays(self) -> list[dict[str, str]]:
        """Read each live market's resting orders and book the strays among them (`_stray`).
        Read first, then judged against what explains an order at that moment: Hummingbot's
        tracked orders, the orders this bot ended lately (one that ended between the read and
        now), and every bot's held reservations; an order placed after the read is not in it."""
        from lyra_strategies import reconcile

        found = []
        for name, pairs in sorted(self.markets.items()):
            connector, source = self.connectors.get(name), reconcile.SOURCES.get(name)
            if connector is None or source is None:
                continue
            for pair in sorted(pairs):
                orders = await source.orders(connector, pair, time.time())  # the resting ones are what counts
                known = set(connector.in_flight_orders) | set(self._ended_reservation_of)
                resting = [o for o in orders if o.status == "OPEN" and o.client_order_id not in known]
                for order in reconcile.strays(resting, self.lyra.ledger.held_reservations(name, pair)):
                    found.append(self._stray(connector, name, pair, order))
        return found

    def _stray(self, connector: Any, connector_name: str, pair: str, order: Any) -> dict[str, str]:
        """Book, adopt and (if Hummingbot placed it and the policy says so) cancel one stray."""
        rate = self.lyra.usd_per_quote(pair.rpartition("-")[2])
        stray = StrayOrder(
            connector=connector_name, trading_pair=pair, side=Side(order.side), amount=order.amount,
            executed=order.executed, price=order.price, client_order_id=order.client_order_id[:128],
            exchange_order_id=order.exchange_order_id[:128],
        )  # fmt: skip
        rid = self.lyra.book_stray(stray, rate if rate is not None else Decimal(0))
        self._adopt(connector, pair, rid, order)
        prefix = getattr(connector, "client_order_id_prefix", "") or ""
        ours = bool(prefix) and order.client_order_id.startswith(prefix)  # Hummingbot's ids, else by hand
        action = "kept"
        if ours and self.reconcile_policy == "cancel":
            self._cancel_requested.add(order.client_order_id)
            connector.cancel(pair, order.client_order_id)  # released when the exchange confirms
            action = "cancel_sent"
        log.warning("stray order %s on %s %s (no reservation held it): counted, %s",
                    order.client_order_id, connector_name, pair, action)  # fmt: skip
        return {"client_order_id": order.client_order_id, "reservation_id": rid, "action": action}

    def _settle(self, connector: Any, pair: str, settlement: Any, summary: dict[str, Any]) -> None:
        rid, order = settlement.reservation_id, settlement.order
        cid = order.client_order_id if order is not None else None
        quote = pair.rpartition("-")[2]
        rate = self.lyra.usd_per_quote(quote) or Decimal(0)
        now = self.current_timestamp
        for trade in settlement.book:  # the exchange's fills the ledger never heard of
            fee_quote = trade.fee if trade.fee_asset == quote else trade.fee * trade.price
            self.lyra.on_order_event(
                OrderEvent(
                    kind=OrderEventKind.FILLED, reservation_id=rid, client_order_id=cid,
                    filled_amount=trade.amount, fill_price=trade.price, fee_usd=fee_quote * rate, timestamp=now,
                    trade_id=str(trade.trade_id)[:128] if getattr(trade, "trade_id", None) else None,
                )
            )  # fmt: skip
            summary["booked_fills"] += 1
        if settlement.outcome == "OPEN":
            self._adopt(connector, pair, rid, order)
            summary["adopted"] += 1
            if self.reconcile_policy == "cancel":
                self._cancel_requested.add(order.client_order_id)
                connector.cancel(pair, order.client_order_id)  # released when the exchange confirms
                summary["cancel_sent"] += 1
            return
        kind = {"FILLED": OrderEventKind.COMPLETED, "CANCELLED": OrderEventKind.CANCELLED}.get(
            settlement.outcome, OrderEventKind.FAILED
        )
        self.lyra.on_order_event(OrderEvent(kind=kind, reservation_id=rid, client_order_id=cid, timestamp=now))
        summary[settlement.outcome.lower()] += 1

    def _adopt(self, connector: Any, pair: str, rid: str, order: Any) -> None:
        """Track a resting order in Hummingbot's connector as if this process had placed it, its
        fills so far applied (so Hummingbot does not report them again), bound to its reservation."""
        from hummingbot.core.data_type.common import TradeType
        from hummingbot.core.data_type.in_flight_order import OrderState, OrderUpdate, TradeUpdate
        from hummingbot.core.data_type.trade_fee import TokenAmount, TradeFeeBase

        side = TradeType.BUY if order.side == "BUY" else TradeType.SELL
        order_type = HbOrderType[order.order_type] if order.order_type in HbOrderType.__members__ else HbOrderType.LIMIT
        connector.start_tracking_order(
            order_id=order.client_order_id, exchange_order_id=order.exchange_order_id, trading_pair=pair,
            trade_type=side, price=order.price, amount=order.amount, order_type=order_type,
        )  # fmt: skip
        tracked = connector.in_flight_orders[order.client_order_id]
        for trade in order.trades:
            fee = TradeFeeBase.new_spot_fee(
                connector.trade_fee_schema(), side, percent_token=trade.fee_asset,
                flat_fees=[TokenAmount(trade.fee_asset, trade.fee)],
            )  # fmt: skip
            tracked.update_with_trade_update(
                TradeUpdate(
                    trade_id=trade.trade_id, client_order_id=order.client_order_id,
                    exchange_order_id=order.exchange_order_id, trading_pair=pair, fill_timestamp=trade.time_s,
                    fill_price=trade.price, fill_base_amount=trade.amount,
                    fill_quote_amount=trade.amount * trade.price, fee=fee,
                )
            )  # fmt: skip
        connector._order_tracker.process_order_update(
            OrderUpdate(
                client_order_id=order.client_order_id, exchange_order_id=order.exchange_order_id, trading_pair=pair,
                update_timestamp=self.current_timestamp,
                new_state=OrderState.PARTIALLY_FILLED if order.trades else OrderState.OPEN,
            )
        )  # fmt: skip
        self._reservation_of[order.client_order_id] = rid

    # --- events to the ledger -----------------------------------------------------------

    def _forward(self, order_id: str, kind: OrderEventKind, **fields: Any) -> None:
        reservation_id = self._reservation_of.get(order_id) or self._placing
        if reservation_id is None and kind is OrderEventKind.FILLED:
            # a fill Hummingbot reports after the order's cancel or failure (its user-stream event
            # was lost and polling found it later): still this reservation's capital
            reservation_id = self._ended_reservation_of.get(order_id)
        if reservation_id is None:
            return
        if kind not in (OrderEventKind.FILLED, OrderEventKind.CREATED):
            self._reservation_of.pop(order_id, None)
            if kind is not OrderEventKind.COMPLETED:  # completed: every fill is in, none can follow
                self._ended_reservation_of[order_id] = reservation_id
                while len(self._ended_reservation_of) > ENDED_ORDERS_KEPT:
                    self._ended_reservation_of.pop(next(iter(self._ended_reservation_of)))
            if reservation_id == self._placing:
                self._placing_closed = True
        try:
            self.lyra.on_order_event(
                OrderEvent(
                    kind=kind,
                    reservation_id=reservation_id,
                    client_order_id=order_id,
                    timestamp=self.current_timestamp,
                    **fields,
                )
            )
        except Exception:
            log.exception("could not record %s of %s in the ledger", kind.value, order_id)

    def did_fill_order(self, event: OrderFilledEvent) -> None:
        fee_pct = Decimal(getattr(event.trade_fee, "percent", 0) or 0)
        base, _, quote = event.trading_pair.rpartition("-")
        rate = self.lyra.usd_per_quote(quote) or Decimal(0)
        amount, price = exact_decimal(event.amount), exact_decimal(event.price)
        fee_quote = amount * price * fee_pct
        # live connectors report the exchange's commission as flat fees (Binance: in the asset
        # received); paper engines as a percentage. Both are costs the rung's PnL must see.
        for flat in getattr(event.trade_fee, "flat_fees", None) or ():
            if flat.token == quote:
                fee_quote += Decimal(flat.amount)
            elif flat.token == base:
                fee_quote += Decimal(flat.amount) * price
            else:
                usd = self.lyra.usd_per_quote(flat.token)
                if usd is None:
                    log.warning("fee of %s %s on %s not counted: no USD rate for %s",
                                flat.amount, flat.token, event.order_id, flat.token)  # fmt: skip
                elif rate:
                    fee_quote += Decimal(flat.amount) * usd / rate
        fee_usd = fee_quote * rate
        self._forward(
            event.order_id,
            OrderEventKind.FILLED,
            filled_amount=amount,
            fill_price=price,
            fee_usd=fee_usd,
            trade_id=str(getattr(event, "exchange_trade_id", "") or "")[:128] or None,  # a fill is applied once
        )

    def cancel(self, connector_name: str, trading_pair: str, order_id: str) -> None:
        self._cancel_requested.add(order_id)
        reservation_id = self._reservation_of.get(order_id)
        if reservation_id is not None:  # a close being cancelled no longer limits the next close
            self.lyra.cancel_requested(reservation_id)
        super().cancel(connector_name, trading_pair, order_id)

    def did_cancel_order(self, event: OrderCancelledEvent) -> None:
        if event.order_id in self._reservation_of and event.order_id not in self._cancel_requested:
            # cancelled by the exchange, not by us (e.g. the paper engine lacking balance to fill
            # it): the order the governor allowed did not execute, so it counts as a failure
            self.exchange_failures += 1
        self._cancel_requested.discard(event.order_id)
        self._forward(event.order_id, OrderEventKind.CANCELLED)

    def did_fail_order(self, event: MarketOrderFailureEvent) -> None:
        if event.order_id in self._reservation_of:
            self.exchange_failures += 1  # an order the governor allowed and the exchange refused
            if self._check_in_doubt(event):
                return  # settled from the exchange's own answer (`_settle_in_doubt`)
        self._forward(event.order_id, OrderEventKind.FAILED)

    def _check_in_doubt(self, event: MarketOrderFailureEvent) -> bool:
        """A live placement that failed without proof that the exchange lacks the order (a 5xx,
        a timeout): keep its reservation and ask the exchange before releasing anything."""
        from lyra_strategies import reconcile

        if self.offline or not reconcile.in_doubt(event.error_message, event.error_type):
            return False
        rid = self._reservation_of[event.order_id]
        row = next(
            (r for r in self.lyra.ledger.open_reservations(self.lyra.bot_id) if r["reservation_id"] == rid), None
        )
        if row is None or reconcile.SOURCES.get(row["connector"]) is None or row["connector"] not in self.connectors:
            return False
        from hummingbot.core.utils.async_utils import safe_ensure_future

        safe_ensure_future(self._settle_in_doubt(event.order_id, row, str(event.error_message)[:200]))
        return True

    async def _settle_in_doubt(self, order_id: str, row: dict[str, Any], error: str) -> None:
        """Settle an in-doubt order like reconciliation on start settles a crash's: found resting,
        it is adopted and cancelled (`reconcile_policy`); found filled or cancelled, its fills are
        booked and the reservation closed; not found, released as FAILED. Audited. While the
        exchange cannot be read the reservation stays OPEN (its capital counted)."""
        from lyra_strategies import reconcile

        connector, pair = self.connectors[row["connector"]], row["trading_pair"]
        since = float(row["created_at"]) - reconcile.CLOCK_SLACK_S
        for attempt in range(3):
            try:
                source = reconcile.SOURCES[row["connector"]]
                orders = await asyncio.wait_for(source.orders(connector, pair, since), RECONCILE_TIMEOUT_S)
                break
            except Exception as exc:
                log.error("could not read %s for in-doubt order %s (%s); attempt %s", row["connector"], order_id,
                          exc, attempt + 1)  # fmt: skip
                await asyncio.sleep(RECONCILE_RETRY_S)
        else:
            return  # left OPEN: reconciliation on the next start, or an operator, settles it
        mine = [o for o in orders if o.client_order_id == order_id]
        applied = reconcile.applied_trades(self.lyra.ledger.fill_rows(since=since))
        found = reconcile.plan([row], mine, "", applied)
        summary: dict[str, Any] = {"booked_fills": 0, "filled": 0, "cancelled": 0, "failed": 0, "adopted": 0,
                                   "cancel_sent": 0}  # fmt: skip
        self._reservation_of.pop(order_id, None)  # `_settle` binds it again if the order is adopted
        for settlement in found.settlements:
            self._settle(connector, pair, settlement, summary)
        payload = {"bot_id": self.lyra.bot_id, "order_id": order_id, "error": error, **summary}
        self.lyra.ledger.audit_append("order_in_doubt", payload, self.lyra.bot_id)
        log.warning("order %s failed in doubt (%s); the exchange says: %s", order_id, error, summary)

    def did_complete_buy_order(self, event: BuyOrderCompletedEvent) -> None:
        self._forward(event.order_id, OrderEventKind.COMPLETED)

    def did_complete_sell_order(self, event: SellOrderCompletedEvent) -> None:
        self._forward(event.order_id, OrderEventKind.COMPLETED)


def hb_log() -> logging.Logger:
    """Lyra's logger under Hummingbot's strategy loggers: its log pane, log file and MQTT logs."""
    return logging.getLogger(hb_status.LOGGER_NAME)


def _hummingbot_instance_id() -> str | None:
    """The running Hummingbot's `instance_id` (conf_client.yml), or None headless/offline."""
    try:
        from hummingbot.client.hummingbot_application import HummingbotApplication

        app = HummingbotApplication._main_app  # the running one; main_application() would create one
        return str(app.instance_id) if app is not None else None
    except Exception:  # no application in this process
        return None


DEPTH_EVERY_S = 10.0
DEPTH_BAND = 0.01


def _depth_within(connector: ConnectorBase, trading_pair: str, mid: float, band: float = DEPTH_BAND) -> float:
    """Quote value resting within `band` of mid on both sides of the connector's own book (the
    council's depth input); 0.0 for a connector without a local book."""
    try:
        book = connector.get_order_book(trading_pair)
        own = getattr(type(book), "depth_within", None)  # a book that answers the same walk itself
        known = own(book, mid, band) if own is not None else None
        if isinstance(known, float):
            return known
        total = 0.0
        for row in book.bid_entries():
            if row.price < mid * (1 - band):
                break
            total += row.price * row.amount
        for row in book.ask_entries():
            if row.price > mid * (1 + band):
                break
            total += row.price * row.amount
        return total
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return 0.0


def _raw_best(connector: ConnectorBase, trading_pair: str) -> tuple[Any, Any, bool]:
    """(best bid, best ask, from the book) as the connector holds them, read from the order book
    itself. Why not `get_price`: on a connector with quantization it rounds through Decimal,
    about 20 us a call against 0.6 us, and the observation wants the book's own prices, not the
    order-price grid. A connector without a local book answers `get_price` (from_book False)."""
    try:
        book = connector.get_order_book(trading_pair)
        return book.get_price(False), book.get_price(True), True
    except (AttributeError, NotImplementedError):  # a connector without a local book
        return connector.get_price(trading_pair, False), connector.get_price(trading_pair, True), False


class _Quote:
    """One market's best prices as decimals, and the last snapshot built from them.

    Why: in one process the scripts that trade a market read the same book every second (the
    paper replay's eight scripts share each connector's book: seven read binance's BTC-USDT),
    and converting its floats to decimals and building a pydantic snapshot cost more than the
    governor's own use of it. The first reader converts and builds; a reader that finds the
    same raw prices (and, for the snapshot, the same second, depth and age) gets the same
    values, the frozen snapshot itself. Every input is in the comparison, so a hit is exactly
    what a fresh build would give."""

    __slots__ = ("ask", "bid", "built", "connector", "measured", "mid", "pair", "raw", "spread_pct")

    def __init__(self, connector: str, pair: str, raw: tuple[Any, Any, bool]) -> None:
        self.connector, self.pair, self.raw = connector, pair, raw
        bid, ask, from_book = raw
        self.bid, self.ask = (Decimal(str(bid)), Decimal(str(ask))) if from_book else (Decimal(bid), Decimal(ask))
        self.mid = (self.bid + self.ask) / 2
        valid = self.bid.is_finite() and self.ask.is_finite() and self.bid > 0 and self.ask > 0
        #: None unless bid and ask are finite and positive (then the market is not observed)
        self.spread_pct = float((self.ask - self.bid) / self.mid * 100) if valid else None
        self.built: tuple[float, float, float, MarketSnapshot] | None = None
        self.measured: tuple[float, Any, float] | None = None  # (second, book object, depth)

    def depth(self, connector: ConnectorBase, timestamp: float) -> float:
        """`_depth_within` the connector's book at this mid, measured once per book object and
        second (it walks every level within the band: a replay book's 80 rows)."""
        try:
            book = connector.get_order_book(self.pair)
        except Exception:  # no local book: `_depth_within` says 0.0 for it
            book = None
        measured = self.measured
        if book is not None and measured is not None and measured[0] == timestamp and measured[1] is book:
            return float(measured[2])
        depth = _depth_within(connector, self.pair, float(self.mid))
        self.measured = (timestamp, book, depth)
        return depth

    def snapshot(self, timestamp: float, depth_usd: float, data_age_s: float) -> MarketSnapshot:
        built = self.built
        if built is not None and built[0] == timestamp and built[1] == depth_usd and built[2] == data_age_s:
            return built[3]
        assert self.spread_pct is not None
        defaults = _SNAPSHOT_DEFAULTS
        snapshot = _snapshot_of({  # every field, in MarketSnapshot's order
            "connector": self.connector,
            "trading_pair": self.pair,
            "timestamp": timestamp,
            "mid_price": self.mid,
            "best_bid": self.bid,
            "best_ask": self.ask,
            "spread_pct": self.spread_pct,
            "volatility_pct": defaults["volatility_pct"],
            "depth_usd": depth_usd,
            "data_age_s": data_age_s,
            "clock_skew_s": defaults["clock_skew_s"],
            "price_decimals": defaults["price_decimals"],
        })
        self.built = (timestamp, depth_usd, data_age_s, snapshot)
        return snapshot


#: The snapshot fields an observation leaves at their defaults, passed explicitly: pydantic's
#: `model_construct` resolves a missing field's default each call (4 of its 6 us).
_SNAPSHOT_DEFAULTS: dict[str, Any] = {
    name: MarketSnapshot.model_fields[name].default for name in ("volatility_pct", "clock_skew_s", "price_decimals")
}
_SNAPSHOT_FIELDS = (
    "connector", "trading_pair", "timestamp", "mid_price", "best_bid", "best_ask", "spread_pct",
    "volatility_pct", "depth_usd", "data_age_s", "clock_skew_s", "price_decimals",
)  # fmt: skip
#: Whether `_snapshot_of` may set a snapshot's state itself: what `model_construct` does for a
#: model without aliases, extra fields, a root or a post-init, given every field (checked once).
_PLAIN_SNAPSHOT = (
    tuple(MarketSnapshot.model_fields) == _SNAPSHOT_FIELDS
    and all(f.alias is None and f.validation_alias is None for f in MarketSnapshot.model_fields.values())
    and MarketSnapshot.model_config.get("extra") != "allow"
    and not MarketSnapshot.__pydantic_root_model__
    and not MarketSnapshot.__pydantic_post_init__
)
_set_state = object.__setattr__


def _snapshot_of(values: dict[str, Any]) -> MarketSnapshot:
    """`MarketSnapshot.model_construct(**values)` for `values` holding every field in the
    model's order: the same instance state (`__dict__`, the fields set, no extra, no private),
    without pydantic's pass over the fields' aliases and defaults (7.8 -> ~1.5 us; three
    snapshots a simulated second in a replay). Any other model shape: `model_construct`."""
    if not _PLAIN_SNAPSHOT:
        return MarketSnapshot.model_construct(**values)
    snapshot = MarketSnapshot.__new__(MarketSnapshot)
    _set_state(snapshot, "__dict__", values)
    _set_state(snapshot, "__pydantic_fields_set__", set(values))
    _set_state(snapshot, "__pydantic_extra__", None)
    _set_state(snapshot, "__pydantic_private__", None)
    return snapshot


#: The latest `_Quote` per (connector, pair) in this process (one per market: bounded).
_QUOTES: dict[tuple[str, str], _Quote] = {}


def _quote(connector_name: str, connector: ConnectorBase, trading_pair: str) -> _Quote:
    """The market's current `_Quote`: the one already built if the book's raw prices are the
    ones it was built from, else a new one."""
    raw = _raw_best(connector, trading_pair)
    key = (connector_name, trading_pair)
    quote = _QUOTES.get(key)
    if quote is None or quote.raw != raw:
        quote = _QUOTES[key] = _Quote(connector_name, trading_pair, raw)
    return quote


def _as_sent(
    connector: ConnectorBase | None, trading_pair: str, amount: Decimal, order_type: HbOrderType, price: Decimal
) -> tuple[Decimal, Decimal]:
    """(amount, price) as the connector's `buy`/`sell` will send them: quantized to its trading
    rules (unchanged where it has none for the pair, or for a MARKET order's price)."""
    if connector is None or trading_pair not in (getattr(connector, "trading_rules", None) or {}):
        return amount, price
    try:
        sent_amount = Decimal(connector.quantize_order_amount(trading_pair, Decimal(amount)))
        limit = order_type != HbOrderType.MARKET and not _is_nan(price)
        sent_price = Decimal(connector.quantize_order_price(trading_pair, Decimal(price))) if limit else price
    except Exception:  # a connector that cannot quantize: the governor judges the raw order
        return amount, price
    return sent_amount, sent_price


def exact_decimal(value: Any) -> Decimal:
    """A fill's amount or price as the decimal it stands for. Hummingbot's paper engine builds
    MARKET fills from float book rows (`Decimal(0.00009)` is 0.0000900000000000000056...): a
    float, or a Decimal with more digits than a float carries (what `Decimal(float)` makes),
    becomes the float's shortest decimal; an exact Decimal is kept."""
    if isinstance(value, Decimal):
        return Decimal(repr(float(value))) if len(value.as_tuple().digits) > 17 else value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _as_decimal(value: Any) -> Decimal | None:
    """A price as given (NaN stays NaN: the governor names it); None stays None."""
    if value is None:
        return None
    try:
        return Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (ArithmeticError, ValueError):
        return Decimal("NaN")


def _pairs_of(connector: ConnectorBase) -> list[str]:
    books = getattr(connector, "order_books", None) or {}
    return list(books)
