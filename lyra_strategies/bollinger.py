"""Bollinger mean reversion as a Hummingbot `DirectionalTradingControllerBase` controller.

The controller reads the last `bb_length` closed candles through its `MarketDataProvider`
(live: the exchange's candles feed; offline: candles resampled from the replayed books),
computes where the last close sits in its Bollinger band (%B, `lyra_strategies.candles`), and
signals a buy under `bb_long_threshold` (the price stretched below its band: expect it back)
and a sell over `bb_short_threshold`. Hummingbot's directional base turns a signal into a
`PositionExecutor` (MARKET open, triple barrier; every close `PositionAction.CLOSE`, so
reduce-only for the governor), at most `max_executors_per_side` per side, `cooldown_time`
apart. What Lyra adds: each position's size comes from `budget_quote(side)`, set by the
script from the governor's remaining capacity and the free balance (0 in a gradual stop: no
new position), and %B is recomputed once per candle interval, not every loop step.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hummingbot.core.data_type.common import PriceType, TradeType
from hummingbot.data_feed.candles_feed.candles_base import CandlesBase
from hummingbot.data_feed.candles_feed.data_types import CandlesConfig
from hummingbot.strategy_v2.controllers.directional_trading_controller_base import (
    DirectionalTradingControllerBase,
    DirectionalTradingControllerConfigBase,
)
from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction, ExecutorAction

from lyra_strategies.candles import bollinger_percent_b, candle_columns

MIN_NOTIONAL = Decimal(5)


class LyraBollingerControllerConfig(DirectionalTradingControllerConfigBase):  # type: ignore[misc]
    controller_name: str = "lyra_bollinger"
    interval: str = "1m"
    bb_length: int = 20
    bb_std: float = 2.0
    bb_long_threshold: float = 0.0
    bb_short_threshold: float = 1.0


class LyraBollingerController(DirectionalTradingControllerBase):  # type: ignore[misc]
    """Hummingbot's directional controller with a Bollinger %B signal and governed sizing."""

    def __init__(self, config: LyraBollingerControllerConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.config: LyraBollingerControllerConfig = config
        #: quote currency one new position may commit on `side`; the script sets it
        self.budget_quote: Callable[[TradeType], Decimal] = lambda _side: Decimal(0)
        self.processed_data: dict[str, Any] = {"signal": 0, "percent_b": None}
        self._bucket = -1
        self.signals = 0

    def get_candles_config(self) -> list[CandlesConfig]:
        return [self._candles_config()]

    def _candles_config(self) -> CandlesConfig:
        return CandlesConfig(connector=self.config.connector_name, trading_pair=self.config.trading_pair,
                             interval=self.config.interval, max_records=self.config.bb_length)

    async def update_processed_data(self) -> None:
        interval_s = int(CandlesBase.interval_to_seconds[self.config.interval])
        bucket = int(self.market_data_provider.time() // interval_s)
        if bucket == self._bucket:
            return
        self._bucket = bucket
        _highs, _lows, closes = candle_columns(self.market_data_provider, self.config.connector_name,
                                               self.config.trading_pair, self.config.interval, self.config.bb_length)
        percent_b = bollinger_percent_b(closes, self.config.bb_length, self.config.bb_std) \
            if len(closes) >= self.config.bb_length else None
        signal = 0
        if percent_b is not None:
            if percent_b < self.config.bb_long_threshold:
                signal = 1
            elif percent_b > self.config.bb_short_threshold:
                signal = -1
        self.processed_data = {"signal": signal, "percent_b": percent_b}

    def create_actions_proposal(self) -> list[ExecutorAction]:
        signal = int(self.processed_data.get("signal", 0))
        if signal == 0 or not self.can_create_executor(signal):
            return []
        side = TradeType.BUY if signal > 0 else TradeType.SELL
        price = self.market_data_provider.get_price_by_type(self.config.connector_name, self.config.trading_pair,
                                                            PriceType.MidPrice)
        quote = min(self.budget_quote(side), self.config.total_amount_quote / self.config.max_executors_per_side)
        if not price or price <= 0 or quote < MIN_NOTIONAL:
            return []
        self.signals += 1
        self._bucket_signal_taken()
        return [CreateExecutorAction(controller_id=self.config.id,
                                     executor_config=self.get_executor_config(side, price, quote / price))]

    def _bucket_signal_taken(self) -> None:
        """One position per signal: the signal is spent until the next candle recomputes it."""
        self.processed_data = {**self.processed_data, "signal": 0}
