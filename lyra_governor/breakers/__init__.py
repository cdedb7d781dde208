"""Deterministic circuit breakers: pure logic over counts the governor keeps, one per file.

In the manner of Freqtrade's protections, each breaker is a function over plain numbers that
returns `Trip | None`; the governor keeps the counts (`storm.OutcomeTally`,
`loss.BookMarks`, ...), asks each breaker after the events that change them, and acts on the
trip: it is audited (event ``breaker``, with its code), counted in ``status``/``/metrics``,
and applied as its `Action` says:

- `storm`: rejection/failure storm per bot and exchange -> that bot goes reduce-only there;
- `loss`: daily realised+unrealised loss and drawdown from the equity peak per book (and per
  exchange's rung in phase 4) -> gradual stop (and a rung demotion), resumable by an operator;
- `duplicate`: the same bot/pair/side/price/amount within a short window -> this order denied;
- `quantity`: the largest order in base units per pair -> this order denied;
- `exchange_rate`: orders per second on one exchange across every bot (counted in the store).

Thresholds live in `breakers:` in the config (validated in config.py, justified in defaults.yml).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lyra_governor.models import DenialCode


class Action(StrEnum):
    DENY = "DENY"  # this order only
    BOT_REDUCE_ONLY = "BOT_REDUCE_ONLY"  # this bot, on this exchange, until the cool-down ends
    GRADUAL_STOP = "GRADUAL_STOP"  # the whole store goes reduce-only (operator resumes)
    DEMOTE_AND_STOP = "DEMOTE_AND_STOP"  # phase 4: the exchange's rung down one, then gradual stop


@dataclass(frozen=True)
class Trip:
    """A breaker's verdict: which code, what to do, on what scope, and one sentence why."""

    code: DenialCode
    action: Action
    scope: str
    message: str


__all__ = ["Action", "Trip"]
