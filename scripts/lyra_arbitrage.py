"""Lyra cross-exchange arbitrage: buy where it is cheap, sell where it is dear, after both
taker fees and in USD (so a BTC-AUD book can be compared with a BTC-USDT one). Both legs pass
the governor; a leg it refuses is not sent, and the other leg is not sent either.

Run in the Hummingbot terminal: `start --script lyra_arbitrage.py --conf conf_lyra_arbitrage.yml`.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType
from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from pydantic import Field

from lyra_strategies import arbitrage, governed, sizing


class LyraArbitrageConfig(StrategyV2ConfigBase):
    script_file_name: str = os.path.basename(__file__)
    lyra_config: str = Field(default="", description="Lyra settings file (empty: LYRA_CONFIG or defaults)")
    bot_id: str = "lyra-arbitrage"
    connector_a: str = "binance_paper_trade"
    pair_a: str = "BTC-USDT"
    connector_b: str = "okx_paper_trade"
    pair_b: str = "BTC-USDT"
    max_amount: Decimal = Decimal("0.002")
    taker_fee: Decimal = Decimal("0.001")
    min_profit_pct: Decimal = Decimal("0.05")
    cooldown_s: float = Field(default=5.0, ge=0)

    def update_markets(self, markets: MarketDict) -> MarketDict:
        return markets.add_or_update(self.connector_a, self.pair_a).add_or_update(self.connector_b, self.pair_b)


class LyraArbitrage(governed.GovernedStrategyV2Base):
    """Checks both directions each tick; takes an opportunity with two governed IOC-like limits."""

    def __init__(self, connectors, config: LyraArbitrageConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.seen = 0
        self.taken = 0
        self._last_trade = -1e18

    def _venue(self, connector_name: str, pair: str) -> arbitrage.Venue | None:
        connector = self.connectors[connector_name]
        try:
            book = connector.get_order_book(pair)
            top_bid = next(book.bid_entries())
            top_ask = next(book.ask_entries())
        except Exception:  # no book yet, or an empty side: nothing to compare
            return None
        bid, bid_size = Decimal(str(top_bid.price)), Decimal(str(top_bid.amount))
        ask, ask_size = Decimal(str(top_ask.price)), Decimal(str(top_ask.amount))
        usd = self.lyra.usd_per_quote(pair.rsplit("-", maxsplit=1)[-1])
        if usd is None:
            return None
        return arbitrage.Venue(connector_name, pair, bid, ask, bid_size, ask_size, self.config.taker_fee, usd)

    def on_tick(self):
        cfg = self.config
        a = self._venue(cfg.connector_a, cfg.pair_a)
        b = self._venue(cfg.connector_b, cfg.pair_b)
        if a is None or b is None:
            return
        found = arbitrage.find_opportunity(a, b, cfg.max_amount, cfg.min_profit_pct)
        if found is None:
            return
        self.seen += 1
        if self.current_timestamp - self._last_trade < cfg.cooldown_s:
            return
        risk = self.lyra.settings.risk.max_order_notional_usd
        buy_cap = self.lyra.capacity_usd(self.lyra.settings.exchange_of(found.buy.connector))
        sell_cap = self.lyra.capacity_usd(self.lyra.settings.exchange_of(found.sell.connector))
        amount = min(
            sizing.fit_to_capacity(found.amount, found.buy_price, found.buy.usd_per_quote, buy_cap, risk),
            sizing.fit_to_capacity(found.amount, found.sell_price, found.sell.usd_per_quote, sell_cap, risk),
        )
        if amount <= 0:
            return
        buy_id = self.buy(found.buy.connector, found.buy.trading_pair, amount, OrderType.LIMIT, found.buy_price)
        if buy_id.startswith(governed.DENIED_PREFIX):
            return
        self.sell(found.sell.connector, found.sell.trading_pair, amount, OrderType.LIMIT, found.sell_price)
        self.taken += 1
        self._last_trade = self.current_timestamp
