"""The replay's input: per market, one top-of-book row per simulated second (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass
class MarketSeries:
    """One market's book over time. `updated_at[i]` is when the book shown at tick i was last
    refreshed by its exchange: equal to the tick time normally, frozen during a stale feed."""

    connector: str
    trading_pair: str
    mid: FloatArray
    spread_bps: FloatArray
    depth_step: FloatArray  # base volume added per book level
    updated_at: FloatArray


@dataclass
class Feed:
    start: float
    seconds: int
    markets: list[MarketSeries] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)  # what the generator injected, for the report

    def market(self, connector: str, trading_pair: str) -> MarketSeries:
        for m in self.markets:
            if m.connector == connector and m.trading_pair == trading_pair:
                return m
        raise KeyError(f"no {trading_pair} on {connector} in this feed")
