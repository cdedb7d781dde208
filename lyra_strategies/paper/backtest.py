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
  prices come from the paper books).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hummingbot.data_feed.market_data_provider import MarketDataProvider
from hummingbot.strategy_v2.executors.grid_executor.grid_executor import GridExecutor
from hummingbot.strategy_v2.executors.order_executor.order_executor import OrderExecutor
from hummingbot.strategy_v2.executors.position_executor.position_executor import PositionExecutor


async def _simulated_sleep(executor: Any, delay: float) -> None:
    until = executor._strategy.current_timestamp + delay
    while executor._strategy.current_timestamp < until and not executor.terminated.is_set():
        await asyncio.sleep(0)


class BacktestPositionExecutor(PositionExecutor):  # type: ignore[misc]
    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)


class BacktestOrderExecutor(OrderExecutor):  # type: ignore[misc]
    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)


class BacktestGridExecutor(GridExecutor):  # type: ignore[misc]
    async def _sleep(self, delay: float) -> None:
        await _simulated_sleep(self, delay)


BACKTEST_EXECUTORS = {
    "position_executor": BacktestPositionExecutor,
    "order_executor": BacktestOrderExecutor,
    "grid_executor": BacktestGridExecutor,
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


def run_on_backtest_clock(strategy: Any) -> None:
    """Put a freshly built strategy's orchestrator and controllers on simulated time."""
    orchestrator = strategy.executor_orchestrator
    orchestrator.executors_update_interval = 0.0
    orchestrator._executor_mapping = {**type(orchestrator)._executor_mapping, **BACKTEST_EXECUTORS}
    for controller in strategy.controllers.values():
        controller.update_interval = 0.0
