"""The replay's input: per market, one top-of-book row per simulated second (pure data).

This is the interface every consumer of a replay reads (the replay itself, the report, and
anything built on the same seconds, such as candles): `Feed.start` is the first simulated
second (a whole UTC second), tick `i` is second `start + i`, and each `MarketSeries` holds, for
every tick, the last quote recorded at or before that second. A market has no book before its
first recorded quote: there `mid` is NaN (`has_book` is False), so nothing can see the future.
"""

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
    mid: FloatArray  # NaN before the market's first quote
    spread_bps: FloatArray
    depth_step: FloatArray  # base volume added per book level
    updated_at: FloatArray  # time of the quote shown at each tick (<= the tick); NaN before the first
    #: a recording's own best bid and ask at each tick (None: the book's are mid -/+ half its spread)
    bid: FloatArray | None = None
    ask: FloatArray | None = None

    def has_book(self, i: int) -> bool:
        return bool(np.isfinite(self.mid[i]))

    def first_tick(self) -> int | None:
        """The first tick with a quote, or None if the market never has one."""
        finite = np.flatnonzero(np.isfinite(self.mid))
        return int(finite[0]) if finite.size else None

    def first_mid(self) -> float | None:
        first = self.first_tick()
        return None if first is None else float(self.mid[first])


@dataclass
class Feed:
    start: float
    seconds: int
    markets: list[MarketSeries] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)  # what the generator injected, for the report
    source: str = ""  # "generator seed 7" or the recording's path, for the report
    gaps: list[dict[str, object]] = field(default_factory=list)  # recording gaps: market, at, seconds
    #: a recording's rows read and, per reason, those left out (None: not a recording)
    rows_dropped: dict[str, int] | None = None

    def market(self, connector: str, trading_pair: str) -> MarketSeries:
        for m in self.markets:
            if m.connector == connector and m.trading_pair == trading_pair:
                return m
        raise KeyError(f"no {trading_pair} on {connector} in this feed")
