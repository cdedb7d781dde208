"""Lyra Bollinger mean reversion: Hummingbot's DirectionalTradingControllerBase with a
Bollinger %B signal, each position a PositionExecutor with a triple barrier, every order
governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_bollinger.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_bollinger.yml`.

The script runs one controller, `lyra_strategies.bollinger.LyraBollingerController`, built
from this file's config (no controller YAML needed): once per candle it reads the last
`bb_length` closed candles through Hummingbot's `MarketDataProvider` (live: the exchange's
candles; in `lyra-governor paper`: candles resampled from the replayed books, each visible
only once it closed) and signals a buy when the close is under the lower band (%B <
`bb_long_threshold`) and a sell over the upper one (%B > `bb_short_threshold`). Each signal
opens a `PositionExecutor` (MARKET open) closed by take profit, stop loss or time limit; the
closes are `PositionAction.CLOSE` orders, proposed reduce-only, so they pass in a gradual stop.

Sizing: a position commits at most `total_amount_quote / max_executors_per_side`, less when
the governor's remaining capacity on the exchange (or its per-order limit, or the free
balance: spot sells need base) allows less; nothing in a gradual stop. An open order the
governor refuses (collar, cap) never reaches the exchange and the executor takes its
failed-order path. Executors need a connector with trading rules and an order tracker (a live
connector or `lyra-governor paper`).
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import PositionMode, TradeType
from pydantic import Field

from lyra_strategies import bollinger, budget, governed, script_config

CONTROLLER_ID = "lyra_bollinger"
KEEP_CLOSED = 2  # finished executors kept in memory before they go to Hummingbot's database


class LyraBollingerConfig(script_config.OneMarketConfig):
    script_file_name: str = os.path.basename(__file__)
    bot_id: str = "lyra-bollinger"
    interval: str = "1m"
    bb_length: int = Field(default=20, ge=2, le=500)
    bb_std: float = Field(default=2.0, gt=0)
    bb_long_threshold: float = 0.0
    bb_short_threshold: float = 1.0
    total_amount_quote: Decimal = Field(default=Decimal(60), gt=0)
    max_executors_per_side: int = Field(default=2, ge=1, le=10)
    cooldown_s: int = Field(default=300, gt=0)
    stop_loss: Decimal = Field(default=Decimal("0.006"), gt=0)
    take_profit: Decimal = Field(default=Decimal("0.004"), gt=0)
    time_limit_s: int = Field(default=1800, gt=0)


class LyraBollinger(governed.GovernedStrategyV2Base):
    """StrategyV2Base runs the controller and its executors; the governed base judges every
    order; this class builds the controller and gives it the governor's sizing."""

    reports_on_change = True  # the controller counts its executors by side and status, never by PnL
    #: finished executors kept before StrategyV2Base stores them in Hummingbot's database: every
    #: report rebuild (each executor change, at least every 10 s) recomputes each kept one's PnL,
    #: ~0.3 ms each; with Hummingbot's 100 the paper run's hour cost grew until 100 had closed
    #: (bollinger alone 1.2 -> 3.8 s CPU per simulated hour by hour 3; 10 kept: ~3 s from hour 3).
    #: The controller counts only active executors, so fewer kept changes no decision.
    closed_executors_buffer = KEEP_CLOSED

    def __init__(self, connectors, config: LyraBollingerConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.add_controller(bollinger.LyraBollingerControllerConfig(
            id=CONTROLLER_ID, connector_name=config.connector_name, trading_pair=config.trading_pair,
            interval=config.interval, bb_length=config.bb_length, bb_std=config.bb_std,
            bb_long_threshold=config.bb_long_threshold, bb_short_threshold=config.bb_short_threshold,
            total_amount_quote=config.total_amount_quote, max_executors_per_side=config.max_executors_per_side,
            cooldown_time=config.cooldown_s, leverage=1, position_mode=PositionMode.ONEWAY,
            stop_loss=config.stop_loss, take_profit=config.take_profit, time_limit=config.time_limit_s))
        self.controller = self.controllers[CONTROLLER_ID]
        self.controller.budget_quote = self.budget_quote

    def create_actions_proposal(self):
        return []  # the controller proposes; the script itself does not

    def stop_actions_proposal(self):
        return []

    def budget_quote(self, side: TradeType) -> Decimal:
        """Quote currency one new position may commit: the governor's remaining capacity (its
        per-order limit, nothing in a gradual stop), and what the account holds to pay with."""
        cfg = self.config
        connector = self.connectors[cfg.connector_name]
        base, quote = cfg.trading_pair.split("-")
        allowed = budget.per_order_quote(self, cfg.connector_name, quote, 1, market=True)  # MARKET opens
        if side == TradeType.BUY:
            free = Decimal(connector.get_available_balance(quote))
        else:
            mid = self._mid(cfg.connector_name, cfg.trading_pair)
            free = Decimal(connector.get_available_balance(base)) * mid if mid.is_finite() else Decimal(0)
        return min(allowed, free * budget.HEADROOM)
