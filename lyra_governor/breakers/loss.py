"""Loss limits per book: daily realised + unrealised loss, and drawdown from the equity peak,
against the book's total cap (and, in phase 4, each exchange's loss against its rung's cap).

`BookMarks` keeps one book's cash and positions from its fills (every bot's: the limit is a
global stop across bots, the most requested control in Hummingbot's and Freqtrade's trackers)
marked at the latest mids the governor saw, else at the last fill price. `check_loss` is pure.
A trip is a gradual stop, resumable: after an operator's resume the baselines are re-based to
the equity at that moment (the operator accepted the loss so far).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal

from lyra_governor.breakers import Action, Trip
from lyra_governor.models import DenialCode

TOTAL = "TOTAL"
DAY_S = 86_400


@dataclass
class BookMarks:
    """Cash (USD), positions (base) and marks (USD per base) of one book, per exchange."""

    cash: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    marks: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    last_fill_id: int = 0
    last_fill_ts: float = 0.0
    day: int | None = None  # the UTC day the daily baselines belong to
    day_start: dict[str, Decimal] = field(default_factory=dict)
    peak: dict[str, Decimal] = field(default_factory=dict)

    def apply_fill(
        self, exchange: str, pair: str, buy: bool, amount: Decimal, notional_usd: Decimal, fee_usd: Decimal, ts: float
    ) -> None:
        day = int(ts // DAY_S)
        if self.day is not None and day > self.day:
            self.roll_day(day)
        elif self.day is None:
            self.day = day
        signed = amount if buy else -amount
        self.cash[exchange] = self.cash.get(exchange, Decimal(0)) + (-notional_usd if buy else notional_usd) - fee_usd
        self.positions[(exchange, pair)] = self.positions.get((exchange, pair), Decimal(0)) + signed
        if amount > 0 and (exchange, pair) not in self.marks:
            self.marks[(exchange, pair)] = notional_usd / amount
        self.last_fill_ts = max(self.last_fill_ts, ts)
        self.note_peaks()

    def mark(self, exchange: str, pair: str, usd_per_base: Decimal) -> None:
        if usd_per_base.is_finite() and usd_per_base > 0:
            self.marks[(exchange, pair)] = usd_per_base

    def pnl(self, exchange: str = TOTAL) -> Decimal:
        """Realised + unrealised PnL in USD (cash flows plus positions at their marks)."""
        total = Decimal(0)
        for ex, cash in self.cash.items():
            if exchange in (TOTAL, ex):
                total += cash
        for (ex, pair), qty in self.positions.items():
            if qty and exchange in (TOTAL, ex):
                total += qty * self.marks.get((ex, pair), Decimal(0))
        return total

    def scopes(self) -> list[str]:
        return [TOTAL, *sorted(self.cash)]

    def pnls(self) -> dict[str, Decimal]:
        """`pnl` of every scope (`scopes`, in order) in one pass over the cash and the positions:
        each scope's sum takes the same terms in the same order as `pnl` (the same Decimals),
        each position's value is multiplied out once, not once per scope it counts in."""
        zero = Decimal(0)
        total = zero
        own: dict[str, Decimal] = {}
        for ex, cash in self.cash.items():
            total += cash
            own[ex] = zero + cash
        marks = self.marks
        for key, qty in self.positions.items():
            if qty:
                value = qty * marks.get(key, zero)
                total += value
                ex = key[0]
                own[ex] = own.get(ex, zero) + value
        pnls = {TOTAL: total}
        for ex in sorted(self.cash):
            if ex != TOTAL:  # (no exchange is named so; `pnl` would sum the book for it)
                pnls[ex] = own[ex]
        return pnls

    def note_peaks(self) -> dict[str, Decimal]:
        """Each scope's peak raised to its PnL now; returns the PnLs (`pnls`)."""
        pnls = self.pnls()
        peak = self.peak
        for scope, pnl in pnls.items():
            if pnl > peak.get(scope, Decimal(0)):
                peak[scope] = pnl
        return pnls

    def roll_day(self, day: int) -> None:
        self.day = day
        self.day_start = self.pnls()

    def rebase(self) -> None:
        """An operator resumed: today's loss and the drawdown are measured from here on."""
        self.day_start = self.pnls()
        self.peak = dict(self.day_start)


@functools.lru_cache(maxsize=64, typed=True)
def _percent(pct: float) -> Decimal:
    """A limit's percentage as the Decimal of its shortest repr (built once, not per check)."""
    return Decimal(str(pct))


def check_loss(
    scope: str,
    pnl: Decimal,
    day_start: Decimal,
    peak: Decimal,
    cap_usd: Decimal,
    daily_pct: float,
    drawdown_pct: float,
    demote: bool = False,
) -> Trip | None:
    """Pure: a trip when today's loss or the drawdown from the peak reaches its % of `cap_usd`."""
    if cap_usd <= 0:
        return None
    daily_loss, drawdown = day_start - pnl, peak - pnl
    limits = ((DenialCode.BREAKER_DAILY_LOSS, daily_loss, daily_pct),
              (DenialCode.BREAKER_DRAWDOWN, drawdown, drawdown_pct))  # fmt: skip
    for code, loss, pct in limits:  # the daily loss first
        if loss * 100 >= cap_usd * _percent(pct):
            # the message only for a trip: formatting two Decimals cost more than the whole check
            if code is DenialCode.BREAKER_DAILY_LOSS:
                what = f"lost {daily_loss:.2f} USD today (realised + unrealised)"
            else:
                what = f"is {drawdown:.2f} USD below its equity peak"
            share = f"{loss / cap_usd * 100:.1f} % of its {cap_usd:.2f} USD cap (limit {pct:g} %)"
            action = Action.DEMOTE_AND_STOP if demote else Action.GRADUAL_STOP
            return Trip(
                code, action, scope, f"{scope} {what}, {share}; gradual stop: review, then `lyra-governor resume`"
            )
    return None
