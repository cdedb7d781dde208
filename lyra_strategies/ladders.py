"""Price ladders and executor bookkeeping shared by the executor scripts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def steps(mid: Decimal, levels: int, step_pct: Decimal, below: bool) -> list[Decimal]:
    """`levels` prices stepping `step_pct` of mid away from it, first one step out (pure):
    below mid for buys, above for sells."""
    sign = -1 if below else 1
    return [mid * (1 + sign * step_pct * (i + 1)) for i in range(levels)]


def store_finished(strategy: Any, controller_id: str, executors: list[Any], keep: int) -> None:
    """Hand finished executors to Hummingbot's database beyond the newest `keep`, as
    StrategyV2Base does for controllers, so a long run's memory stays bounded."""
    from hummingbot.strategy_v2.models.executor_actions import StoreExecutorAction

    finished = [e for e in executors if e.is_closed]
    for executor in finished[:-keep] if len(finished) > keep else []:
        strategy.executor_orchestrator.execute_action(
            StoreExecutorAction(controller_id=controller_id, executor_id=executor.config.id)
        )
