"""Lyra dynamic-spread market making: spreads and skew from recent volatility (NATR of
candles) and inventory; each quote a Hummingbot PositionExecutor with a triple barrier, every
order governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_dynamic_market_making.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_dynamic_market_making.yml`.

Each time a candle closes the script reads the last `natr_length + 1` candles through
Hummingbot's `MarketDataProvider` (live: the exchange's candles feed; in `lyra-governor paper`:
candles resampled from the replayed books, a candle visible only once it closed) and turns
their NATR into the quoting widths (`lyra_strategies.dynamic_spread`): each side
`spread_natr` NATRs from mid (full spread clamped to [`min_spread_bps`, `max_spread_bps`]),
levels `level_step_natr` NATRs apart, and an inventory skew of `skew_natr` NATRs at a full
deviation from `target_base_ratio` (too much base: both quotes step down to sell it). Until
the first NATR is known it quotes its widest spread.

Each quote level is one `PositionExecutor` (a LIMIT open order; once filled, closed by take
profit, stop loss or time limit, each close proposed reduce-only). Unfilled levels are
refreshed after `refresh_s` or when mid moved `refresh_tolerance_bps`; a level the governor
refused rests `refresh_s`. Sizes come from the governor's remaining capacity on the exchange
(each under the per-order limit) and the free balance. In a gradual stop no level opens and
unfilled ones are stopped; filled ones keep their barriers. Executors need a connector with
trading rules and an order tracker (a live connector or `lyra-governor paper`).
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import OrderType, TradeType
from hummingbot.data_feed.candles_feed.candles_base import CandlesBase
from hummingbot.data_feed.candles_feed.data_types import CandlesConfig
from hummingbot.strategy_v2.executors.position_executor.data_types import (
    PositionExecutorConfig,
    TripleBarrierConfig,
)
from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction, StopExecutorAction
from pydantic import Field

from lyra_governor.models import Side, TradingState
from lyra_strategies import budget, candles, dynamic_spread, governed, ladders, quotes, script_config

CONTROLLER_ID = "main"
KEEP_CLOSED = 10  # finished executors kept in memory before they go to Hummingbot's database
MIN_NOTIONAL = Decimal(5)


class LyraDynamicMarketMakingConfig(script_config.OneMarketConfig):
    script_file_name: str = os.path.basename(__file__)
    bot_id: str = "lyra-dynamic-market-making"
    candles_interval: str = "1m"
    natr_length: int = Field(default=14, ge=2, le=500)
    spread_natr: Decimal = Field(default=Decimal("0.5"), gt=0)
    min_spread_bps: Decimal = Field(default=Decimal(10), gt=0)
    max_spread_bps: Decimal = Field(default=Decimal(60), gt=0)
    skew_natr: Decimal = Field(default=Decimal(1), ge=0)
    levels: int = Field(default=1, ge=1, le=5)
    level_step_natr: Decimal = Field(default=Decimal("0.5"), gt=0)
    order_amount_quote: Decimal = Field(default=Decimal(25), gt=0)  # per quote, at most
    target_base_ratio: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    refresh_s: float = Field(default=30.0, gt=0)
    refresh_tolerance_bps: Decimal = Decimal(10)
    stop_loss: Decimal = Field(default=Decimal("0.01"), gt=0)
    take_profit: Decimal = Field(default=Decimal("0.004"), gt=0)
    time_limit_s: int = Field(default=900, gt=0)


class LyraDynamicMarketMaking(governed.GovernedStrategyV2Base):
    """One PositionExecutor per quote level, widths from the NATR of the last candles."""

    def __init__(self, connectors, config: LyraDynamicMarketMakingConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.candles_config = CandlesConfig(connector=config.connector_name, trading_pair=config.trading_pair,
                                            interval=config.candles_interval, max_records=config.natr_length + 1)
        self.market_data_provider.initialize_candles_feed(self.candles_config)
        self.params = dynamic_spread.DynamicParams(
            spread_natr=config.spread_natr, min_spread_bps=config.min_spread_bps,
            max_spread_bps=config.max_spread_bps, skew_natr=config.skew_natr,
            level_step_natr=config.level_step_natr)
        self.natr: float | None = None
        self._natr_bucket = -1
        self._candle_s = int(CandlesBase.interval_to_seconds[config.candles_interval])
        self._levels = {f"{side}_{level}" for side in ("buy", "sell") for level in range(config.levels)}
        self._placed_mid: dict[str, Decimal] = {}
        self._rested_until: dict[str, float] = {}

    def update_natr(self) -> None:
        """Re-read the candles once per candle interval (a new candle can only close then)."""
        bucket = int(self.current_timestamp // self._candle_s)
        if bucket == self._natr_bucket:
            return
        self._natr_bucket = bucket
        highs, lows, closes = candles.candle_columns(self.market_data_provider, self.config.connector_name,
                                                     self.config.trading_pair, self.config.candles_interval,
                                                     self.config.natr_length + 1)
        if len(closes) < self.config.natr_length + 1:
            return
        self.natr = candles.natr(highs, lows, closes, self.config.natr_length)

    def on_tick(self):
        cfg = self.config
        if not self.executors_ready(cfg.connector_name, what="dynamic-spread market making"):
            return
        mid = self._mid(cfg.connector_name, cfg.trading_pair)
        if not mid.is_finite() or mid <= 0:
            return
        self.update_natr()
        reducing = self.lyra.trading_state() is TradingState.REDUCING
        executors = list(self.executor_orchestrator.active_executors.get(CONTROLLER_ID, []))
        busy: set[str] = set()
        closed = 0
        for executor in executors:
            if not executor.is_active:
                closed += executor.is_closed
                continue
            if not executor.is_trading:
                age = self.current_timestamp - executor.config.timestamp
                side = Side.BUY if executor.config.side == TradeType.BUY else Side.SELL
                # refused since it was created, and the executor saw its order fail (its custom
                # info prices the position: read only after a refusal, not every tick)
                refused = (self.refused_at.get((cfg.connector_name, cfg.trading_pair, side), -1.0)
                           >= executor.config.timestamp
                           and executor.get_custom_info().get("current_retries", 0) > 0)
                if refused:
                    self._rested_until[executor.config.level_id] = self.current_timestamp + cfg.refresh_s
                if reducing or refused or quotes.needs_refresh(self._placed_mid.get(executor.config.id), mid, age,
                                                               cfg.refresh_s, cfg.refresh_tolerance_bps):
                    self.executor_orchestrator.execute_action(
                        StopExecutorAction(controller_id=CONTROLLER_ID, executor_id=executor.config.id))
                    continue
            busy.add(executor.config.level_id)
        busy |= {level for level, until in self._rested_until.items() if self.current_timestamp < until}
        if not reducing:
            for config in self.quote_configs(mid, busy):
                self.executor_orchestrator.execute_action(
                    CreateExecutorAction(controller_id=CONTROLLER_ID, executor_config=config))
                self._placed_mid[config.id] = mid
        if closed > KEEP_CLOSED:  # (a pass over every executor only when some are to be stored)
            ladders.store_finished(self, CONTROLLER_ID, executors, KEEP_CLOSED)

    def quote_configs(self, mid: Decimal, busy: set[str]) -> list[PositionExecutorConfig]:
        """A PositionExecutorConfig per free quote level at the current NATR's widths, sized to
        the governor's capacity (shared by all levels, each under the per-order limit) and the
        balance it would lock."""
        cfg = self.config
        if self._levels <= busy:
            return []
        connector = self.connectors[cfg.connector_name]
        base, quote = cfg.trading_pair.split("-")
        widths = dynamic_spread.spreads(self.natr, self.params)
        per_quote = min(budget.per_order_quote(self, cfg.connector_name, quote, 2 * cfg.levels),
                        cfg.order_amount_quote)
        params = quotes.QuoteParams(spread_bps=widths.spread_bps, levels=cfg.levels,
                                    level_step_bps=widths.level_step_bps, order_amount=per_quote / mid,
                                    target_base_ratio=cfg.target_base_ratio,
                                    skew_bps_at_full=widths.skew_bps_at_full,
                                    price_step=quotes.market_price_step(connector, cfg.trading_pair, mid))
        base_value = Decimal(connector.get_balance(base)) * mid
        barrier = TripleBarrierConfig(
            stop_loss=cfg.stop_loss, take_profit=cfg.take_profit, time_limit=cfg.time_limit_s,
            open_order_type=OrderType.LIMIT, take_profit_order_type=OrderType.LIMIT,
            stop_loss_order_type=OrderType.MARKET, time_limit_order_type=OrderType.MARKET)
        configs = []
        for q in quotes.make_quotes(mid, base_value, Decimal(connector.get_balance(quote)), params):
            level_id = f"{q.side.lower()}_{q.level}"
            if level_id in busy:
                continue
            free = Decimal(connector.get_available_balance(quote)) / q.price if q.side == "BUY" \
                else Decimal(connector.get_available_balance(base))
            amount = connector.quantize_order_amount(cfg.trading_pair, min(q.amount, free * budget.HEADROOM))
            if amount <= 0 or amount * q.price < MIN_NOTIONAL:
                continue
            configs.append(PositionExecutorConfig(
                timestamp=self.current_timestamp, connector_name=cfg.connector_name, trading_pair=cfg.trading_pair,
                side=TradeType.BUY if q.side == "BUY" else TradeType.SELL, amount=amount, entry_price=q.price,
                triple_barrier_config=barrier, level_id=level_id))
        return configs
