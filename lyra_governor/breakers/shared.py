"""The loss limits' books, one set per store object: the governors sharing a store (a paper
replay's three, or eight, on one connection) fold each fill and each mark into one `BookMarks`
per book and evaluate the limits once per beat instant, not once per governor.

Why this is safe: a book's loss limit is a global stop across bots, computed from the store's
fills (every bot's) marked at the latest mids; governors on one store read the same fills, the
same caps and the same ladder state, so each evaluated the same limits over its own copy of the
same book. The copies differed only in their marks: each governor marked the markets it watched
itself and held the others at their first fill price. Pooled (`due`: whatever any of them
observed, the latest per market), the one book is marked at the latest mid of every market.

When a check may skip (`Evaluated.covers`): the last evaluation found trading ACTIVE and no trip,
and since then the store has not changed (`OrderStore.version_at`, the version its reads were
answered at: the same fills, caps and ladder row), the state read now has the phase and trading
state it read (all it reads of the state), the breaker settings and the UTC day are the same;
and either no mark has been observed since (the evaluation would repeat itself exactly) or it is
the same instant and another governor of the store evaluated it: the marks observed in this
instant after that evaluation are folded in by the next one, at the latest at this governor's
next beat. So a limit is never evaluated later than one beat after a governor's own check of its
own marks would have evaluated it, and a new fill, a cap, a resume, a halt or a new day is
evaluated at the first check that can read it.
A trip clears the memo (the next check evaluates again: the stop's state is read, or a failed
stop is tried again), as does any review that saw trading not ACTIVE (`BreakerBoard.note_state`).
A skipping check reads nothing at all when the store's version at the instant is known without a
read and is the one its governor's cached ladder state was read at (`BreakerDesk.check_loss_limits`):
the state and the version it would have read are then those, the same answer without the look.

What an evaluation reads of the store (the book's new fills, its caps) is kept with the version it
was answered at (`Read`): the next evaluation at that same version (marks moved, the store did
not: most of them) folds no fill and measures against the same caps without reading either; any
commit that can add a fill or move a cap, through this connection or another, changes the version.

Governors in different processes, or on store objects of their own, share nothing here: each
evaluates its own books, as before.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from lyra_governor.breakers.loss import DAY_S, BookMarks
from lyra_governor.config import BreakerSettings
from lyra_governor.ladder import LadderState
from lyra_governor.models import TradingState


@dataclass(frozen=True, eq=False)
class Evaluated:
    """What one evaluation that tripped nothing (trading ACTIVE) read, and who took it when."""

    by: object  # the evaluating governor's desk
    now: float
    version: tuple[int, int]
    phase: int  # what it read of the ladder state: the phase (its book, per exchange in phase 4)
    trading: TradingState  # and the trading state
    settings: BreakerSettings

    def covers(
        self, by: object, now: float, version: tuple[int, int] | None, state: LadderState,
        settings: BreakerSettings, marks_due: bool,
    ) -> bool:  # fmt: skip
        """Whether a check by `by` at `now` would evaluate what this evaluation did (see the
        module docstring): the same store, state, settings and day, and no mark it must fold."""
        if version != self.version or int(now // DAY_S) != int(self.now // DAY_S):
            return False
        if marks_due and (now != self.now or by is self.by):
            return False
        return (
            state.trading_state is self.trading
            and state.phase == self.phase
            and (settings is self.settings or settings == self.settings)
        )


@dataclass(frozen=True, eq=False)
class Read:
    """What an evaluation read of the store for one book, at one version (`OrderStore.version_at`):
    its fills were folded into the book's marks, and its caps (in USD, the total apart). While the
    store's version is still this one, nothing any connection committed can have added a fill or
    moved a cap: the next evaluation of this book would read no new fill and these caps."""

    version: tuple[int, int]
    book: str
    total: Decimal
    caps: dict[str, Decimal]  # by exchange (never changed: each evaluation is handed the same dict)


@dataclass(eq=False)
class SharedBooks:
    """The loss limits' books of the governors sharing one store object (see the module docstring)."""

    _of: ClassVar[weakref.WeakKeyDictionary[object, SharedBooks]] = weakref.WeakKeyDictionary()

    books: dict[str, BookMarks] = field(default_factory=dict)
    # the marks observed since the last evaluation, the latest per (connector, pair), in the order
    # last observed: every governor's `_observe` writes here, the evaluation folds and empties it
    due: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    last_state: TradingState | None = None  # the state the last evaluation or review saw (a resume re-bases)
    evaluated: Evaluated | None = None
    read: Read | None = None  # what the last evaluation's reads found, and the version they were answered at

    @classmethod
    def of(cls, store: object) -> SharedBooks:
        """The books of `store`'s governors (made with its first)."""
        shared = cls._of.get(store)
        if shared is None:
            shared = cls._of[store] = cls()
        return shared


__all__ = ["Evaluated", "Read", "SharedBooks"]
