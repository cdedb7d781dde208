"""What every room of one governor shares: whose governor it is, the store and its one writer,
the outcome tally, the clock, and how to tell the governor that the store's trading state
changed (its cached ladder state is then read again)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lyra_governor.bot_orders import Tally
from lyra_governor.ledger import Ledger
from lyra_governor.order_store import OrderStore


@dataclass(frozen=True, eq=False)
class Seat:
    bot_id: str
    ledger: Ledger
    store: OrderStore
    tally: Tally
    clock: Callable[[], float]
    state_changed: Callable[[], None]
