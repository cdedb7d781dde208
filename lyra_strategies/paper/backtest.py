"""Hummingbot's V2 machinery on the back-test clock (offline strategies, `offline = True`).

Executors and controllers are asyncio tasks that wait in wall-clock seconds: the control loop
sleeps `update_interval` (executors 1 s, controllers 1 s), a shutting-down position, order or
grid executor sleeps 5 s between attempts, and `MarketDataProvider.time()` is `time.time()`.
A replay runs hours of simulated seconds in a few wall seconds, so on wall time a stop-loss
would be checked once per several simulated minutes and a refreshed quote would stay down for
a quarter of an hour. Offline, therefore:

- the orchestrator's `executors_update_interval` and each controller's `update_interval` are 0:
  their loops run whenever the replay yields to the event loop (it does so every tick);
- the position, order and grid executors are the same Hummingbot classes with one method
  changed: `_sleep(delay)` waits `delay` *simulated* seconds;
- the market data provider tells simulated time and starts no network rate task (offline,
  prices come from the paper books); its candles are `ReplayCandles`, resampled from each paper
  book's mid every simulated second, a candle visible only once it has closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from hummingbot.core.data_type.common import OrderType
from hummingbot.data_feed.candles_feed.data_types import CandlesConfig
from hummingbot.data_feed.market_data_provider import MarketDataProvider
from hummingbot.strategy_v2.executors.dca_executor.dca_executor import DCAExecutor
from hummingbot.strategy_v2.executors.grid_executor.grid_executor import GridExecutor
from hummingbot.strategy_v2.executors.order_executor.order_executor import OrderExecutor
from hummingbot.strategy_v2.executors.position_executor.position_executor import PositionExecutor
from hummingbot.strategy_v2.executors.xemm_executor.xemm_executor import XEMMExecutor
from hummingbot.strategy_v2.models.base import RunnableStatus

from lyra_strategies.paper.candles import ReplayCandles


async def _simulated_sleep(executor: Any, delay: float) -> None:
    until = executor._strategy.current_timestamp + delay
    while executor._strategy.current_timestamp < until and not executor.terminated.is_set():
        await asyncio.sleep(0)


class _StepMemo:
    """A running executor's control step computed once per figure: Hummingbot's position and
    DCA executors read their filled amount, entry (average) price and fees several times a
    step (stop loss, take profit, PnL), each read re-deriving them from the orders (a Decimal
    rounding, a pass over the fills). Within one step they only change when the step itself
    places or cancels an order (the paper engine's events arrive inside those calls), so each
    is remembered from its first read until the step places or cancels, or ends; outside a
    step every read is Hummingbot's own.

    Across steps: those figures are functions of the executor's orders alone (which orders it
    tracks, each one's state and fills; the fees when no fill needs a market rate), so a step
    that finds the orders as the last step left them (`_orders_key`, compared by identity and
    fill count) starts from the figures that step remembered, not from nothing. Any placement
    or cancellation drops them (`_forgetting`); an executor whose figures read the book (a
    LIMIT_MAKER entry) or whose fees need a rate carries nothing over."""

    _step_memo: dict[str, Any] | None = None
    #: (orders key, the orders themselves (their ids stay theirs while kept), figures)
    _kept: tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Any]] | None = None

    def _remembered(self, key: str, compute: Callable[[], Any]) -> Any:
        memo = self._step_memo
        if memo is None:
            return compute()
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def _forgetting(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an order placement or cancellation with nothing remembered, during or after it."""
        stepping, self._step_memo, self._kept = self._step_memo is not None, None, None
        try:
            return call(*args, **kwargs)
        finally:
            if stepping:
                self._step_memo = {}

    def _tracked_orders(self) -> tuple[Any, ...] | None:
        """The tracked orders the remembered figures derive from; None: carry nothing over."""
        return None

    async def _running_step(self, step: Callable[[], Any]) -> None:
        memo: dict[str, Any] = {}
        tracked = self._tracked_orders()
        if tracked is not None:
            key = _orders_key(tracked)
            kept = self._kept
            if kept is not None and kept[0] == key:
                memo = kept[2]
            elif all(_fees_rate_free(t) for t in tracked):
                self._kept = (key, tracked, memo)
            else:
                self._kept = None
        self._step_memo = memo
        try:
            step()
        finally:
            self._step_memo = None


def _orders_key(tracked: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the remembered figures depend on: which tracked order and in-flight order each slot
    holds (by identity; the kept tuple holds them, so no id is reused meanwhile), each order's
    state and its number of fills (a fill only adds to `order_fills`: Hummingbot refuses a
    repeated trade id, and executed amounts change only with a fill)."""
    key: list[Any] = []
    for t in tracked:
        order = t.order if t is not None else None
        if order is None:
            key.append((id(t), None))
        else:
            key.append((id(t), id(order), order.current_state, len(order.order_fills)))
    return tuple(key)


def _fees_rate_free(tracked: Any) -> bool:
    """Whether each fill's fee in the order's quote reads no market rate, nor in its base when a
    fill charged the base (the only case an executor reads fees in base: its filled amount is
    then net of them), so the fees are a function of the fills alone
    (`lyra_strategies.paper.exchange._rate_free`)."""
    from lyra_strategies.paper.exchange import _rate_free

    order = tracked.order if tracked is not None else None
    if order is None:
        return True
    fills = list(order.order_fills.values())
    base, quote = order.base_asset, order.quote_asset
    tokens = (quote, base) if any(fill.fee_asset == base for fill in fills) else (quote,)
    return all(_rate_free(fill.fee, order.trading_pair, token) for fill in fills for token in tokens)


class BacktestPositionExecutor(_StepMemo, PositionExecutor):  # type: ignore[misc]
    """Hummingbot's position executor, each control step computed once (`_StepMemo`); and
    without activation bounds the mid is not read: Hummingbot reads it, then ignores it."""

    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)

    async def control_task(self) -> None:
        if self.status != RunnableStatus.RUNNING:
            await super().control_task()
            return
        await self._running_step(lambda: (self.control_open_order(), self.control_barriers()))

    def _tracked_orders(self) -> tuple[Any, ...] | None:
        if self.config.triple_barrier_config.open_order_type == OrderType.LIMIT_MAKER:
            return None  # its entry price is the book's until the entry fills
        return (self._open_order, self._close_order, self._take_profit_limit_order)

    @property
    def take_profit_price(self) -> Any:  # read every step by the take profit's activation check
        if self.config.triple_barrier_config.take_profit_order_type == OrderType.LIMIT_MAKER:
            return PositionExecutor.take_profit_price.fget(self)  # it reads the book
        return self._remembered("take_profit_price", lambda: PositionExecutor.take_profit_price.fget(self))

    @property
    def open_filled_amount(self) -> Any:
        return self._remembered("open_filled", lambda: PositionExecutor.open_filled_amount.fget(self))

    @property
    def entry_price(self) -> Any:
        return self._remembered("entry_price", lambda: PositionExecutor.entry_price.fget(self))

    @property
    def open_filled_amount_quote(self) -> Any:  # three reads a step: the barriers' guard, twice in the PnL %
        return self._remembered("open_filled_quote", lambda: PositionExecutor.open_filled_amount_quote.fget(self))

    def get_cum_fees_quote(self) -> Any:
        return self._remembered("fees_quote", super().get_cum_fees_quote)

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        return self._forgetting(super().place_order, *args, **kwargs)

    def cancel_open_order(self) -> None:
        self._forgetting(super().cancel_open_order)

    def cancel_take_profit(self) -> None:
        self._forgetting(super().cancel_take_profit)

    def _is_within_activation_bounds(self, order_price: Any, side: Any, order_type: Any) -> bool:
        if not self.config.activation_bounds:
            return True  # Hummingbot's answer without bounds, without its read of the mid
        return bool(super()._is_within_activation_bounds(order_price, side, order_type))


class BacktestOrderExecutor(OrderExecutor):  # type: ignore[misc]
    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)


class BacktestGridExecutor(GridExecutor):  # type: ignore[misc]
    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)


class BacktestDCAExecutor(_StepMemo, DCAExecutor):  # type: ignore[misc]
    """Hummingbot's DCA executor, each running step computed once (`_StepMemo`; its figures
    carried over while its slices and closes stand: they read no price). Its shutdown
    waits 5 s with `asyncio.sleep` (no `_sleep` to override), so offline the shutdown step is
    this one: done once the close filled the position, else (re)place the close when none is
    working, then wait 5 simulated seconds. The paper engine needs no order polling
    (`PaperExchange` mirrors its events)."""

    async def control_task(self) -> None:
        if self.status == RunnableStatus.RUNNING:
            await self._running_step(lambda: (self.control_open_order_process(), self.control_barriers()))
            return
        if self.status != RunnableStatus.SHUTTING_DOWN:
            await super().control_task()
            return
        if self.open_filled_amount - self.close_filled_amount <= self._min_close_amount():
            self.close_execution_by(self.close_type)
            return
        if not self.active_close_orders:
            self.place_close_order_and_cancel_open_orders()
            self._current_retries += 1
        await _simulated_sleep(self, 5.0)

    def _tracked_orders(self) -> tuple[Any, ...] | None:
        return (*self._open_orders, None, *self._close_orders)  # None: where the closes begin

    @property
    def open_filled_amount(self) -> Any:
        return self._remembered("open_filled", lambda: DCAExecutor.open_filled_amount.fget(self))

    @property
    def current_position_average_price(self) -> Any:
        return self._remembered("average_price", lambda: DCAExecutor.current_position_average_price.fget(self))

    def get_cum_fees_quote(self) -> Any:
        return self._remembered("fees_quote", super().get_cum_fees_quote)

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        return self._forgetting(super().place_order, *args, **kwargs)

    def cancel_open_orders(self) -> None:
        self._forgetting(super().cancel_open_orders)

    def _min_close_amount(self) -> Any:
        rules = self.connectors[self.config.connector_name].trading_rules[self.config.trading_pair]
        return rules.min_order_size


class BacktestXEMMExecutor(XEMMExecutor):  # type: ignore[misc]
    """Hummingbot's XEMM executor. It links its orders to their in-flight records when their
    creation events arrive, which a live exchange sends after `place_order` returned; the
    paper engine sends them inside `place_order`, before the executor knows the order id, so
    each step first links any order still unlinked (else the maker order, seen as not open,
    is cancelled and re-placed every second)."""

    async def control_task(self) -> None:
        for tracked, connector in ((self.maker_order, self.maker_connector), (self.taker_order, self.taker_connector)):
            if tracked is not None and tracked.order is None:
                tracked.order = self.get_in_flight_order(connector, tracked.order_id)
        await super().control_task()

    async def control_update_maker_order(self) -> None:
        """Hummingbot's re-pricing, except for a maker order that has started to fill: the
        paper engine marks it filled a step before the executor hears of its completion, and
        re-pricing would then see an order that is not open (edge 0) and drop it, so the fill
        would never be hedged."""
        order = self.maker_order.order if self.maker_order is not None else None
        if order is not None and order.executed_amount_base > 0:
            return
        await super().control_update_maker_order()


BACKTEST_EXECUTORS = {
    "position_executor": BacktestPositionExecutor,
    "order_executor": BacktestOrderExecutor,
    "grid_executor": BacktestGridExecutor,
    "dca_executor": BacktestDCAExecutor,
    "xemm_executor": BacktestXEMMExecutor,
}


class SimulatedMarketDataProvider(MarketDataProvider):  # type: ignore[misc]
    """Hummingbot's market data provider on the strategy's clock, without network rates."""

    def __init__(self, connectors: dict[str, Any], clock: Callable[[], float]) -> None:
        super().__init__(connectors)
        self._clock = clock

    def time(self) -> float:
        return self._clock()

    def initialize_rate_sources(self, connector_pairs: list[Any]) -> None:
        return None  # offline: no exchange to ask; the paper books are the prices

    def get_candles_feed(self, config: CandlesConfig) -> ReplayCandles:
        """Hummingbot's lookup, offline: a `ReplayCandles` fed from the paper book of
        `config.connector` (one of this strategy's connectors), never a network feed."""
        key = self._generate_candle_feed_key(config)
        feed = self.candles_feeds.get(key)
        if feed is None:
            if config.connector not in self.connectors:
                raise ValueError(
                    f"offline candles come from the paper books: {config.connector} is not one of this "
                    f"strategy's connectors ({', '.join(self.connectors)})"
                )
            feed = ReplayCandles(config.connector, config.trading_pair, config.interval, config.max_records)
            self.candles_feeds[key] = feed
        elif feed.max_records < config.max_records:
            feed.resize(config.max_records)
        return cast(ReplayCandles, feed)

    def closed_rows(self, connector: str, trading_pair: str, interval: str, max_records: int) -> list[Any]:
        """The rows `get_candles_df(connector, trading_pair, interval, max_records)` would put in
        its DataFrame (the same feed, looked up and resized the same way), as the feed keeps
        them: `lyra_strategies.candles.candle_columns` reads them without pandas."""
        feed = self.get_candles_feed(
            CandlesConfig(connector=connector, trading_pair=trading_pair, interval=interval, max_records=max_records)
        )
        return list(feed._candles)[-max_records:]

    def sample_candles(self, timestamp: float) -> None:
        """Each simulated second: every candle feed takes its book's mid at `timestamp`."""
        for feed in self.candles_feeds.values():
            connector = self.connectors.get(feed._connector_name)
            try:
                book = connector.get_order_book(feed._trading_pair) if connector is not None else None
            except Exception:  # no book for the pair yet: nothing to sample this second
                book = None
            if book is None:
                continue
            bid, ask = book.get_price(False), book.get_price(True)
            feed.sample(timestamp, (bid + ask) / 2)


def run_on_backtest_clock(strategy: Any) -> None:
    """Put a freshly built strategy's orchestrator and controllers on simulated time."""
    orchestrator = strategy.executor_orchestrator
    orchestrator.executors_update_interval = 0.0
    orchestrator._executor_mapping = {**type(orchestrator)._executor_mapping, **BACKTEST_EXECUTORS}
    for controller in strategy.controllers.values():
        controller.update_interval = 0.0
