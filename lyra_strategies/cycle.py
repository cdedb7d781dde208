"""One Hummingbot executor at a time, re-armed after a cooldown: the loop the DCA and grid
scripts share (the executor itself does the trading; the governor judges its every order)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lyra_governor.models import TradingState
from lyra_strategies.ladders import store_finished

KEEP_CLOSED = 20  # finished executors kept in memory before they go to Hummingbot's database
RETRY_S = 5.0  # after a tick with nothing to place, sizing (a capacity read) waits this long


class ExecutorCycle:
    """Each tick: in a gradual stop, stop the running executor (its open orders are cancelled
    and what it holds is closed by its own reduce-only close); otherwise, when no executor is
    running and `cooldown_s` passed since the last one ended, create the next from
    `make_config()` (None: nothing worth placing now)."""

    def __init__(self, strategy: Any, controller_id: str, cooldown_s: float) -> None:
        self.strategy = strategy
        self.controller_id = controller_id
        self.cooldown_s = cooldown_s
        self.ended_at = -1e18
        self.started = 0
        self._stopping: set[str] = set()
        self._retry_at = -1e18

    def executors(self) -> list[Any]:
        return list(self.strategy.executor_orchestrator.active_executors.get(self.controller_id, []))

    def running(self) -> list[Any]:
        """Executors not closed yet (one shutting down still has its close working)."""
        return [e for e in self.executors() if not e.is_closed]

    def step(self, make_config: Callable[[], Any]) -> None:
        from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction, StopExecutorAction

        strategy = self.strategy
        orchestrator = strategy.executor_orchestrator
        running = self.running()
        if strategy.lyra.trading_state() is TradingState.REDUCING:
            for executor in running:
                if executor.config.id not in self._stopping:
                    self._stopping.add(executor.config.id)
                    orchestrator.execute_action(StopExecutorAction(
                        controller_id=self.controller_id, executor_id=executor.config.id, keep_position=False))
            return
        if running:
            return
        executors = self.executors()
        ended = [e.close_timestamp for e in executors if e.is_closed and e.close_timestamp]
        if ended:
            self.ended_at = max(self.ended_at, *ended)
        if strategy.current_timestamp - self.ended_at < self.cooldown_s:
            return
        if strategy.current_timestamp < self._retry_at:
            return
        config = make_config()
        if config is None:  # nothing worth placing (no capacity, no balance): look again in a while
            self._retry_at = strategy.current_timestamp + RETRY_S
            return
        self.started += 1
        orchestrator.execute_action(CreateExecutorAction(controller_id=self.controller_id, executor_config=config))
        store_finished(strategy, self.controller_id, executors, KEEP_CLOSED)
