"""Lyra market making: two-sided quotes around mid with inventory skew, every order governed.

Run in the Hummingbot terminal: `start --script lyra_market_making.py --conf conf_lyra_market_making.yml`.
Every order goes through Lyra's governor (ladder caps, collar, rate limits, AI mandate); a denied
order is never sent. Quotes are sized from the governor's remaining capacity on the exchange.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType
from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from pydantic import Field

from lyra_strategies import governed, quotes, sizing


class LyraMarketMakingConfig(StrategyV2ConfigBase):
    script_file_name: str = os.path.basename(__file__)
    lyra_config: str = Field(default="", description="Lyra settings file (empty: LYRA_CONFIG or defaults)")
    bot_id: str = "lyra-market-making"
    connector_name: str = "binance_paper_trade"
    trading_pair: str = "BTC-USDT"
    order_amount: Decimal = Decimal("0.001")
    spread_bps: Decimal = Decimal(20)
    levels: int = Field(default=1, ge=1, le=5)
    level_step_bps: Decimal = Decimal(10)
    refresh_s: float = Field(default=15.0, gt=0)
    refresh_tolerance_bps: Decimal = Decimal(15)
    target_base_ratio: Decimal = Decimal("0.5")

    def update_markets(self, markets: MarketDict) -> MarketDict:
        return markets.add_or_update(self.connector_name, self.trading_pair)


class LyraMarketMaking(governed.GovernedStrategyV2Base):
    """Quotes `levels` bids and asks; refreshes on age or when mid moves past the tolerance."""

    def __init__(self, connectors, config: LyraMarketMakingConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self._placed_at = -1e18
        self._placed_mid: Decimal | None = None

    def on_tick(self):
        cfg = self.config
        connector = self.connectors[cfg.connector_name]
        mid = self._mid(cfg.connector_name, cfg.trading_pair)
        if not mid.is_finite() or mid <= 0:
            return  # no usable book: no quotes (the governor would refuse them anyway)
        age = self.current_timestamp - self._placed_at
        if not quotes.needs_refresh(self._placed_mid, mid, age, cfg.refresh_s, cfg.refresh_tolerance_bps):
            return
        for order in self.get_active_orders(cfg.connector_name):
            self.cancel(cfg.connector_name, order.trading_pair, order.client_order_id)
        base, quote_asset = cfg.trading_pair.split("-")
        usd = self.lyra.usd_per_quote(quote_asset) or Decimal(0)
        base_value = Decimal(connector.get_balance(base)) * mid
        quote_value = Decimal(connector.get_balance(quote_asset))
        params = quotes.QuoteParams(spread_bps=cfg.spread_bps, levels=cfg.levels, level_step_bps=cfg.level_step_bps,
                                    order_amount=cfg.order_amount, target_base_ratio=cfg.target_base_ratio)
        capacity = self.lyra.capacity_usd(self.lyra.settings.exchange_of(cfg.connector_name))
        per_order = capacity / max(1, 2 * cfg.levels)
        for q in quotes.make_quotes(mid, base_value, quote_value, params):
            amount = sizing.fit_to_capacity(q.amount, q.price, usd, per_order,
                                            self.lyra.settings.risk.max_order_notional_usd)
            if amount <= 0:
                continue
            place = self.buy if q.side == "BUY" else self.sell
            place(cfg.connector_name, cfg.trading_pair, amount, OrderType.LIMIT, q.price)
        self._placed_at = self.current_timestamp
        self._placed_mid = mid
