"""Lyra grid: Hummingbot's GridExecutor over a price range around mid, every order governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_grid.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_grid.yml`.

One `GridExecutor` at a time, on the BUY side (spot: it buys dips and sells each level back
one step higher). The range runs from `lower_pct` under mid to `upper_pct` over it, cut into
`levels` levels; each level's buy is a LIMIT order and its take profit a LIMIT sell one grid
step higher (`PositionAction.CLOSE`, proposed to the governor as reduce-only). The stop sits
outside the range: when mid falls `stop_pct` under the range's low end (`limit_price`), the
executor cancels its buys and closes what it holds with a reduce-only MARKET sell; when mid
climbs over the range's top it takes its profit the same way. A new grid starts around the
mid of that moment `cooldown_s` after the last one ended.

Sizing: each level's amount is the governor's remaining capacity on the exchange shared by
the levels (each under the per-order limit), capped by `total_amount_quote` and the free
balance. A level the governor refuses (a buy outside the collar, over the cap) never reaches
the exchange; the executor takes its failed-order path. In a gradual stop no new grid starts
and the running one is stopped: open buys cancelled, holdings closed reduce-only. Executors
need a connector with trading rules and an order tracker (a live connector or
`lyra-governor paper`); on Hummingbot's own `*_paper_trade` connector the script says so.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import OrderType, TradeType
from hummingbot.strategy_v2.executors.grid_executor.data_types import GridExecutorConfig
from hummingbot.strategy_v2.executors.position_executor.data_types import TripleBarrierConfig
from pydantic import Field

from lyra_strategies import budget, cycle, governed, script_config

CONTROLLER_ID = "main"
MIN_NOTIONAL = Decimal(5)


class LyraGridConfig(script_config.OneMarketConfig):
    script_file_name: str = os.path.basename(__file__)
    bot_id: str = "lyra-grid"
    lower_pct: Decimal = Field(default=Decimal("0.006"), gt=0, lt=1)  # range low end under mid
    upper_pct: Decimal = Field(default=Decimal("0.003"), ge=0)  # range top over mid
    levels: int = Field(default=4, ge=1, le=20)
    stop_pct: Decimal = Field(default=Decimal("0.005"), gt=0)  # stop this far under the range
    total_amount_quote: Decimal = Field(default=Decimal(80), gt=0)  # at most; sized to the governor's capacity
    time_limit_s: int = Field(default=3600, gt=0)
    cooldown_s: float = Field(default=60.0, ge=0)


class LyraGrid(governed.GovernedStrategyV2Base):
    """One GridExecutor at a time; a new grid around mid after the last ended."""

    def __init__(self, connectors, config: LyraGridConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.cycle = cycle.ExecutorCycle(self, CONTROLLER_ID, config.cooldown_s)

    def on_tick(self):
        if self.executors_ready(self.config.connector_name, what="the grid"):
            self.cycle.step(self.grid_config)

    def grid_config(self):
        """The next grid around the current mid, sized to the governor's capacity, its
        per-order limit and the free quote balance; None when a level would be too small."""
        cfg = self.config
        mid = self._mid(cfg.connector_name, cfg.trading_pair)
        if not mid.is_finite() or mid <= 0:
            return None
        quote = cfg.trading_pair.split("-")[1]
        connector = self.connectors[cfg.connector_name]
        per_level = min(budget.per_order_quote(self, cfg.connector_name, quote, cfg.levels),
                        cfg.total_amount_quote / cfg.levels,
                        Decimal(connector.get_available_balance(quote)) * budget.HEADROOM / cfg.levels)
        if per_level < MIN_NOTIONAL * Decimal("1.1"):  # the executor adds 5 % to its minimum
            return None
        start, end = mid * (1 - cfg.lower_pct), mid * (1 + cfg.upper_pct)
        step = (end - start) / start / max(1, cfg.levels - 1)
        return GridExecutorConfig(
            timestamp=self.current_timestamp, connector_name=cfg.connector_name, trading_pair=cfg.trading_pair,
            side=TradeType.BUY, leverage=1,
            start_price=connector.quantize_order_price(cfg.trading_pair, start),
            end_price=connector.quantize_order_price(cfg.trading_pair, end),
            limit_price=connector.quantize_order_price(cfg.trading_pair, start * (1 - cfg.stop_pct)),
            total_amount_quote=(per_level * cfg.levels).quantize(Decimal("0.01")),
            min_spread_between_orders=(end - start) / start / cfg.levels, min_order_amount_quote=MIN_NOTIONAL,
            max_open_orders=cfg.levels, coerce_tp_to_step=True,
            triple_barrier_config=TripleBarrierConfig(
                take_profit=step, time_limit=cfg.time_limit_s, open_order_type=OrderType.LIMIT,
                take_profit_order_type=OrderType.LIMIT, stop_loss_order_type=OrderType.MARKET,
                time_limit_order_type=OrderType.MARKET))
