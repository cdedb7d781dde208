"""Lyra rebalancer: keep a portfolio at target weights on one exchange, trading only when an
asset drifts beyond the band and the trade is worth its fee. Every order is governed.

Risk: a rebalancing trade is not a position to exit; it moves holdings to their target weights,
and a stop-loss or time limit on it would undo the rebalance it just made. So there is no triple
barrier here: the risk is bounded by the drift band and minimum trade, and by the governor's
caps, collar and per-order limit on every order.

Run in the Hummingbot terminal: `start --v2 conf_lyra_rebalancer.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_rebalancer.yml`.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType
from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from pydantic import Field

from lyra_strategies import governed, rebalance, sizing


class LyraRebalancerConfig(StrategyV2ConfigBase):
    script_file_name: str = os.path.basename(__file__)
    lyra_config: str = Field(default="", description="Lyra settings file (empty: LYRA_CONFIG or defaults)")
    bot_id: str = "lyra-rebalancer"
    connector_name: str = "okx_paper_trade"
    quote_asset: str = "USDT"
    targets: dict[str, Decimal] = Field(default_factory=lambda: {"BTC": Decimal("0.4"), "ETH": Decimal("0.2"),
                                                                 "USDT": Decimal("0.4")})
    drift_band: Decimal = Decimal("0.05")
    min_trade_usd: Decimal = Decimal(10)
    check_every_s: float = Field(default=60.0, gt=0)
    taker_fee: Decimal = Decimal("0.001")

    def update_markets(self, markets: MarketDict) -> MarketDict:
        for asset in self.targets:
            if asset != self.quote_asset:
                markets = markets.add_or_update(self.connector_name, f"{asset}-{self.quote_asset}")
        return markets


class LyraRebalancer(governed.GovernedStrategyV2Base):
    """Every `check_every_s`: cancel what the last check left unfilled, value holdings in USD,
    plan trades, send them as limits just through the touch."""

    def __init__(self, connectors, config: LyraRebalancerConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self._last_check = -1e18

    def on_tick(self):
        cfg = self.config
        if self.current_timestamp - self._last_check < cfg.check_every_s:
            return
        self._last_check = self.current_timestamp
        connector = self.connectors[cfg.connector_name]
        # a trade from the last check that has not filled is stale: re-plan from what is held
        for order in self.get_active_orders(cfg.connector_name):
            self.cancel(cfg.connector_name, order.trading_pair, order.client_order_id)
        usd = self.lyra.usd_per_quote(cfg.quote_asset)
        if usd is None:
            return
        values: dict[str, Decimal] = {}
        mids: dict[str, Decimal] = {}
        for asset in cfg.targets:
            balance = Decimal(connector.get_balance(asset))
            if asset == cfg.quote_asset:
                values[asset] = balance * usd
                continue
            mid = self._mid(cfg.connector_name, f"{asset}-{cfg.quote_asset}")
            if not mid.is_finite() or mid <= 0:
                return  # a book without a price: skip this round rather than guess
            mids[asset] = mid
            values[asset] = balance * mid * usd
        capacity = self.lyra.capacity_usd(self.lyra.settings.exchange_of(cfg.connector_name))
        for trade in rebalance.plan(values, cfg.targets, cfg.drift_band, cfg.min_trade_usd, cfg.taker_fee):
            if trade.asset == cfg.quote_asset:
                continue  # the quote side is the other half of the base trades
            pair = f"{trade.asset}-{cfg.quote_asset}"
            mid = mids[trade.asset]
            price = mid * (Decimal("1.001") if trade.side == "BUY" else Decimal("0.999"))
            amount = sizing.fit_to_capacity(trade.value_usd / (mid * usd), price, usd, capacity,
                                            self.lyra.settings.risk.max_order_notional_usd)
            if amount <= 0:
                continue
            place = self.buy if trade.side == "BUY" else self.sell
            place(cfg.connector_name, pair, amount, OrderType.LIMIT, price)
