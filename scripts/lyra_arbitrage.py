"""Lyra cross-exchange arbitrage: buy where it is cheap, sell where it is dear, after both
taker fees and in USD (so a BTC-AUD book can be compared with a BTC-USDT one). Both legs pass
the governor; a leg it refuses is not sent, and the other leg is not sent either.

Risk: the two legs are simultaneous and hedge each other, so there is no position to put a
stop-loss or a time limit on while both go through; a triple barrier per leg would close one
leg of a hedged pair. The risk is a one-sided failure: when the governor refuses the second
leg, or the exchange fails either leg, the other leg is an unhedged position. The script then
cancels what is left of it and closes what filled with a governed MARKET order marked
`PositionAction.CLOSE` on the same venue (a sell is proposed reduce-only and passes in a
gradual stop; a spot buy-back must fit the caps like any buy, see `lyra_strategies.governed`).

Run in the Hummingbot terminal: `start --script lyra_arbitrage.py --conf conf_lyra_arbitrage.yml`.
"""

import os
from dataclasses import dataclass
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType, PositionAction
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


@dataclass
class Leg:
    connector: str
    pair: str
    is_buy: bool
    other: str  # the other leg's order id
    filled: Decimal = Decimal(0)
    unhedged: bool = False
    done: bool = False  # completed or cancelled at the exchange


class LyraArbitrage(governed.GovernedStrategyV2Base):
    """Checks both directions each tick; takes an opportunity with two governed IOC-like limits."""

    def __init__(self, connectors, config: LyraArbitrageConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.seen = 0
        self.taken = 0
        self._last_trade = -1e18
        self._legs: dict[str, Leg] = {}  # order id -> leg, while its pair is in flight

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
        sell_id = self.sell(found.sell.connector, found.sell.trading_pair, amount, OrderType.LIMIT, found.sell_price)
        self._legs[buy_id] = Leg(found.buy.connector, found.buy.trading_pair, True, sell_id)
        self._last_trade = self.current_timestamp
        if sell_id.startswith(governed.DENIED_PREFIX):
            self._unwind(buy_id)  # the governor refused the hedge: the bought leg stands alone
            return
        self._legs[sell_id] = Leg(found.sell.connector, found.sell.trading_pair, False, buy_id)
        self.taken += 1

    # --- a one-sided failure: close the leg that went through ------------------------------

    def _unwind(self, order_id: str) -> None:
        leg = self._legs.get(order_id)
        if leg is None or leg.unhedged:
            return
        leg.unhedged = True
        self.cancel(leg.connector, leg.pair, order_id)  # whatever has not filled yet
        if leg.filled > 0:
            self._close(leg, leg.filled)

    def _close(self, leg: Leg, amount: Decimal) -> None:
        place = self.sell if leg.is_buy else self.buy
        place(leg.connector, leg.pair, amount, OrderType.MARKET, Decimal("NaN"), PositionAction.CLOSE)

    def did_fill_order(self, event):
        super().did_fill_order(event)
        leg = self._legs.get(event.order_id)
        if leg is None:
            return
        leg.filled += Decimal(event.amount)
        if leg.unhedged:
            self._close(leg, Decimal(event.amount))

    def did_fail_order(self, event):
        super().did_fail_order(event)
        leg = self._legs.pop(event.order_id, None)
        if leg is not None:
            self._unwind(leg.other)  # this leg failed at the exchange: its partner is unhedged

    def did_cancel_order(self, event):
        super().did_cancel_order(event)
        self._forget(event.order_id)

    def did_complete_buy_order(self, event):
        super().did_complete_buy_order(event)
        self._forget(event.order_id)

    def did_complete_sell_order(self, event):
        super().did_complete_sell_order(event)
        self._forget(event.order_id)

    def _forget(self, order_id: str) -> None:
        """A leg is kept until its partner is settled too: a partner failing later still
        leaves this leg unhedged."""
        leg = self._legs.get(order_id)
        if leg is None:
            return
        leg.done = True
        partner = self._legs.get(leg.other)
        if leg.unhedged or partner is None or partner.done:
            self._legs.pop(order_id, None)
            self._legs.pop(leg.other, None)
