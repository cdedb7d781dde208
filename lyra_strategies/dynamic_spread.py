"""Spreads, level steps and inventory skew from recent volatility (pure, no Hummingbot).

Volatility is the NATR of recent candles (`lyra_strategies.candles.natr`, percent of price):
quotes sit `spread_natr` NATRs from mid on each side, clamped to [min, max]; the inventory
skew at a full deviation from the target is `skew_natr` NATRs, so a calm market gets tight
quotes and a gentle skew, a wild one wide quotes and a strong skew. Without a volatility
estimate yet (too few candles) the quotes take the widest spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class DynamicParams:
    spread_natr: Decimal = Decimal("0.5")  # half-spread, in NATRs
    min_spread_bps: Decimal = Decimal(10)  # full spread bounds
    max_spread_bps: Decimal = Decimal(60)
    skew_natr: Decimal = Decimal(1)  # skew at a full inventory deviation, in NATRs
    level_step_natr: Decimal = Decimal("0.5")


@dataclass(frozen=True)
class Spreads:
    spread_bps: Decimal  # full spread, bid to ask
    skew_bps_at_full: Decimal
    level_step_bps: Decimal


def spreads(natr_pct: float | None, params: DynamicParams) -> Spreads:
    """The quoting widths for a NATR of `natr_pct` percent (None: not known yet)."""
    if natr_pct is None or not math.isfinite(natr_pct) or natr_pct < 0:  # unknown or NaN: widest
        return Spreads(params.max_spread_bps, params.max_spread_bps / 2, params.max_spread_bps / 2)
    natr_bps = Decimal(str(natr_pct)) * 100
    full = min(params.max_spread_bps, max(params.min_spread_bps, 2 * params.spread_natr * natr_bps))
    return Spreads(
        spread_bps=full,
        skew_bps_at_full=min(params.max_spread_bps, params.skew_natr * natr_bps),
        level_step_bps=max(Decimal(1), params.level_step_natr * natr_bps),
    )
