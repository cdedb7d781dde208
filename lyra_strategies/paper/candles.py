"""Candles offline: Hummingbot's candles interface fed from the replayed books, never the network.

`ReplayCandles` is a Hummingbot `CandlesBase` (what `MarketDataProvider.get_candles_feed` hands a
strategy or controller: `candles_df`, `ready`, `max_records`, `interval`) whose rows come from a
`lyra_strategies.candles.CandleBuilder`: the offline market data provider samples each feed's
book mid once per simulated second (`sample`), and the builder resamples those mids into candles
of the feed's interval. Only closed candles are shown, so a strategy reading candles at time t
sees nothing of the prices after t (no look-ahead). `start`/`stop` open no connection.
"""

from __future__ import annotations

from typing import Any

from hummingbot.data_feed.candles_feed.candles_base import CandlesBase

from lyra_strategies.candles import CandleBuilder


class ReplayCandles(CandlesBase):  # type: ignore[misc]
    """Closed candles of one market, built from the mids of its paper book."""

    def __init__(self, connector: str, trading_pair: str, interval: str = "1m", max_records: int = 150) -> None:
        if interval not in CandlesBase.interval_to_seconds:
            raise ValueError(
                f"candle interval {interval!r} is not one of {', '.join(CandlesBase.interval_to_seconds)}"
            )
        self._connector_name = connector
        super().__init__(trading_pair, interval, max_records)
        self.builder = CandleBuilder(int(CandlesBase.interval_to_seconds[interval]), max_records)
        self._candles = self.builder.closed

    # --- what Hummingbot reads ------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"replay_{self._connector_name}"

    @property
    def rate_limits(self) -> list[Any]:
        return []

    @property
    def intervals(self) -> dict[str, int]:
        return dict(CandlesBase.interval_to_seconds)

    def get_exchange_trading_pair(self, trading_pair: str) -> str:
        return trading_pair

    def start(self) -> None:
        return None  # offline: nothing to connect to

    def stop(self) -> None:
        return None

    async def start_network(self) -> None:
        return None

    async def stop_network(self) -> None:
        return None

    # --- fed by the offline market data provider -----------------------------------------

    def resize(self, max_records: int) -> None:
        self.builder.resize(max_records)
        self._candles = self.builder.closed
        self.max_records = self.builder.max_records

    def sample(self, timestamp: float, mid: float) -> bool:
        closed = self.builder.add(timestamp, mid)
        self._candles = self.builder.closed
        return closed

    def warmth(self) -> dict[str, Any]:
        """This feed's market and interval, its closed candles and how many a reader asked for
        (`max_records`): a strategy reads an indicator off them only once there are enough."""
        return {"connector": self._connector_name, "trading_pair": self._trading_pair, "interval": self.interval,
                "closed": len(self._candles), "needed": self.max_records}

    @property
    def last_closed(self) -> float | None:
        """Open time of the newest closed candle (None before the first one closes)."""
        return self._candles[-1][0] if self._candles else None
