"""Lyra DCA: build a position in slices with Hummingbot's DCAExecutor, every order governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_dca.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_dca.yml`.

One `DCAExecutor` at a time: `levels` limit orders (MAKER mode) stepping `level_step_pct` away
from mid on the chosen side, so a falling market (for a BUY) fills the position in slices at
ever better prices. The executor then guards the whole position with its own barriers: take
profit on the average entry, stop loss once every slice has filled, and a time limit; each
close is a MARKET order with `PositionAction.CLOSE`, proposed to the governor as reduce-only,
so it still passes in a gradual stop. Each slice is sized from the governor's remaining
capacity on the exchange (and its per-order limit, and the free balance); a slice the governor
refuses (collar, cap) never reaches the exchange and the executor takes its failed-order path.
When an executor ends, a new one starts `cooldown_s` later around the mid of that moment.

Gradual stop: no new DCA starts and a running one is stopped: its unfilled slices are cancelled
and what it filled is closed reduce-only. On a halt the governed base holds everything.
Executors need a connector with trading rules and an order tracker (a live connector, or
`lyra-governor paper`); on Hummingbot's own `*_paper_trade` connector the script says so and
trades nothing.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import TradeType
from hummingbot.strategy_v2.executors.dca_executor.data_types import DCAExecutorConfig, DCAMode
from pydantic import Field

from lyra_strategies import budget, cycle, governed, ladders, script_config

CONTROLLER_ID = "main"
MIN_NOTIONAL = Decimal(5)


class LyraDCAConfig(script_config.OneMarketConfig):
    script_file_name: str = os.path.basename(__file__)
    bot_id: str = "lyra-dca"
    side: str = Field(default="BUY", pattern="^(BUY|SELL)$")
    levels: int = Field(default=3, ge=1, le=10)
    level_step_pct: Decimal = Field(default=Decimal("0.002"), gt=0)  # each slice this much further from mid
    total_amount_quote: Decimal = Field(default=Decimal(60), gt=0)  # at most; the governor's capacity may allow less
    take_profit: Decimal = Field(default=Decimal("0.003"), gt=0)
    stop_loss: Decimal = Field(default=Decimal("0.01"), gt=0)
    time_limit_s: int = Field(default=1800, gt=0)
    cooldown_s: float = Field(default=60.0, ge=0)


class LyraDCA(governed.GovernedStrategyV2Base):
    """One DCAExecutor at a time; a new one after the last ended and the cooldown passed."""

    def __init__(self, connectors, config: LyraDCAConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.cycle = cycle.ExecutorCycle(self, CONTROLLER_ID, config.cooldown_s)

    def on_tick(self):
        if self.executors_ready(self.config.connector_name, what="DCA"):
            self.cycle.step(self.dca_config)

    def dca_config(self):
        """The next DCA around the current mid, each slice sized to the governor's capacity, its
        per-order limit and the free balance; None when no slice would be worth placing."""
        cfg = self.config
        mid = self._mid(cfg.connector_name, cfg.trading_pair)
        if not mid.is_finite() or mid <= 0:
            return None
        connector = self.connectors[cfg.connector_name]
        base, quote = cfg.trading_pair.split("-")
        buy = cfg.side == "BUY"
        per_slice = min(budget.per_order_quote(self, cfg.connector_name, quote, cfg.levels),
                        cfg.total_amount_quote / cfg.levels)
        free = Decimal(connector.get_available_balance(quote)) if buy \
            else Decimal(connector.get_available_balance(base)) * mid
        per_slice = min(per_slice, free * budget.HEADROOM / cfg.levels)
        if per_slice < MIN_NOTIONAL:
            return None
        prices = [connector.quantize_order_price(cfg.trading_pair, p)
                  for p in ladders.steps(mid, cfg.levels, cfg.level_step_pct, below=buy)]
        return DCAExecutorConfig(
            timestamp=self.current_timestamp, connector_name=cfg.connector_name, trading_pair=cfg.trading_pair,
            side=TradeType.BUY if buy else TradeType.SELL, leverage=1, mode=DCAMode.MAKER,
            amounts_quote=[per_slice.quantize(Decimal("0.01"))] * cfg.levels, prices=prices,
            take_profit=cfg.take_profit, stop_loss=cfg.stop_loss, time_limit=cfg.time_limit_s)
