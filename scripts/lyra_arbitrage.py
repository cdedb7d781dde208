"""Lyra cross-exchange arbitrage: buy where it is cheap, sell where it is dear, after both
taker fees and in USD (so a BTC-AUD book can be compared with a BTC-USDT one). Both legs pass
the governor; a leg it refuses is not sent, and the other leg is not sent either.

Risk: the two legs are simultaneous and hedge each other, so there is no position to put a
stop-loss or a time limit on while both go through; a triple barrier per leg would close one
leg of a hedged pair. The risk is a one-sided failure: when the governor refuses the second
leg, or a leg ends short at the exchange (failed, cancelled for lack of balance, or still open
after `leg_timeout_s` and cancelled), what one leg filled beyond the other is an unhedged
position. The script then cancels the rest of the pair and closes that imbalance with a
governed MARKET order marked `PositionAction.CLOSE` on the venue it was filled on (proposed
reduce-only: it passes in a gradual stop when it reduces the bot's own position).

Run in the Hummingbot terminal: `start --v2 conf_lyra_arbitrage.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_arbitrage.yml`.
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
    leg_timeout_s: float = Field(default=10.0, gt=0)  # a leg still open after this is cancelled

    def update_markets(self, markets: MarketDict) -> MarketDict:
        return markets.add_or_update(self.connector_a, self.pair_a).add_or_update(self.connector_b, self.pair_b)


@dataclass
class Leg:
    connector: str
    pair: str
    is_buy: bool
    amount: Decimal
    other: str  # the other leg's order id
    placed_at: float
    filled: Decimal = Decimal(0)
    closed: Decimal = Decimal(0)  # closed again by unwind orders
    unhedged: bool = False  # the pair is broken: fills beyond the partner's are closed
    done: bool = False  # completed, cancelled or failed at the exchange


class LyraArbitrage(governed.GovernedStrategyV2Base):
    """Checks both directions each tick; takes an opportunity with two governed crossing limits."""

    def __init__(self, connectors, config: LyraArbitrageConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self.seen = 0
        self.taken = 0
        self.unwinds = 0
        self._last_trade = -1e18
        self._legs: dict[str, Leg] = {}  # order id -> leg, while its pair is in flight

    def _top(self, connector_name: str, pair: str):
        """The book's best bid and ask entries, or None (no book yet, or an empty side)."""
        try:
            book = self.connectors[connector_name].get_order_book(pair)
            return next(book.bid_entries()), next(book.ask_entries())
        except Exception:  # no book yet, or an empty side: nothing to compare
            return None

    def _venue(self, connector_name: str, pair: str, top=None) -> arbitrage.Venue | None:
        top = top or self._top(connector_name, pair)
        if top is None:
            return None
        top_bid, top_ask = top
        bid, bid_size = Decimal(str(top_bid.price)), Decimal(str(top_bid.amount))
        ask, ask_size = Decimal(str(top_ask.price)), Decimal(str(top_ask.amount))
        usd = self.lyra.usd_per_quote(pair.rsplit("-", maxsplit=1)[-1])
        if usd is None:
            return None
        return arbitrage.Venue(connector_name, pair, bid, ask, bid_size, ask_size, self.config.taker_fee, usd)

    def on_tick(self):
        cfg = self.config
        self._expire_legs()
        top_a, top_b = self._top(cfg.connector_a, cfg.pair_a), self._top(cfg.connector_b, cfg.pair_b)
        if top_a is None or top_b is None:
            return
        if cfg.pair_a.rsplit("-", 1)[-1] == cfg.pair_b.rsplit("-", 1)[-1] and arbitrage.no_edge(
                top_a[0].price, top_a[1].price, top_b[0].price, top_b[1].price, float(cfg.taker_fee)):
            return  # a spread apart after fees, by far: nothing the exact check could find
        a = self._venue(cfg.connector_a, cfg.pair_a, top_a)
        b = self._venue(cfg.connector_b, cfg.pair_b, top_b)
        if a is None or b is None:
            return
        found = arbitrage.find_opportunity(a, b, cfg.max_amount, cfg.min_profit_pct)
        if found is None:
            return
        self.seen += 1
        if self.current_timestamp - self._last_trade < cfg.cooldown_s:
            return
        buyer, seller = self.connectors[found.buy.connector], self.connectors[found.sell.connector]
        base, quote = found.buy.trading_pair.split("-")[0], found.buy.trading_pair.split("-")[-1]
        # what the two venues can actually settle: quote to pay here, base to sell there
        settle = min(Decimal(buyer.get_available_balance(quote)) / found.buy_price * Decimal("0.98"),
                     Decimal(seller.get_available_balance(base)) * Decimal("0.98"))
        if min(buyer.quantize_order_amount(found.buy.trading_pair, settle),
               seller.quantize_order_amount(found.sell.trading_pair, settle)) <= 0:
            return  # nothing either venue can settle, whatever the capacity: none read
        # ... and what the governor's capacity on both exchanges and its per-order limit allow
        risk = self.lyra.settings.risk.max_order_notional_usd
        buy_cap = self.lyra.capacity_usd(self.lyra.settings.exchange_of(found.buy.connector))
        sell_cap = self.lyra.capacity_usd(self.lyra.settings.exchange_of(found.sell.connector))
        amount = min(
            sizing.fit_to_capacity(found.amount, found.buy_price, found.buy.usd_per_quote, buy_cap, risk),
            sizing.fit_to_capacity(found.amount, found.sell_price, found.sell.usd_per_quote, sell_cap, risk),
            settle,
        )
        amount = min(buyer.quantize_order_amount(found.buy.trading_pair, amount),
                     seller.quantize_order_amount(found.sell.trading_pair, amount))
        if amount <= 0:
            return
        now = self.current_timestamp
        buy_id = self.buy(found.buy.connector, found.buy.trading_pair, amount, OrderType.LIMIT, found.buy_price)
        if buy_id.startswith(governed.DENIED_PREFIX):
            return
        sell_id = self.sell(found.sell.connector, found.sell.trading_pair, amount, OrderType.LIMIT, found.sell_price)
        self._legs[buy_id] = Leg(found.buy.connector, found.buy.trading_pair, True, amount, sell_id, now)
        self._last_trade = now
        if sell_id.startswith(governed.DENIED_PREFIX):
            self._break(buy_id)  # the governor refused the hedge: the bought leg stands alone
            return
        self._legs[sell_id] = Leg(found.sell.connector, found.sell.trading_pair, False, amount, buy_id, now)
        self.taken += 1

    # --- a one-sided failure: close what one leg filled beyond the other -------------------

    def _expire_legs(self) -> None:
        """Both legs are crossing limits; one still open after `leg_timeout_s` missed the
        market: cancel it, and its cancellation breaks the pair."""
        for order_id, leg in list(self._legs.items()):
            if not leg.done and not leg.unhedged and self.current_timestamp - leg.placed_at > self.config.leg_timeout_s:
                self.cancel(leg.connector, leg.pair, order_id)

    def _break(self, order_id: str) -> None:
        """Leg `order_id` ended short of its amount (refused, failed, cancelled or expired):
        stop its partner and close the imbalance. Idempotent."""
        leg = self._legs.get(order_id)
        if leg is None:
            return
        partner = self._legs.get(leg.other)
        if not leg.unhedged:
            leg.unhedged = True
            self.unwinds += 1
            if partner is not None:
                partner.unhedged = True
                if not partner.done:
                    self.cancel(partner.connector, partner.pair, leg.other)
            elif not leg.done:
                self.cancel(leg.connector, leg.pair, order_id)  # no partner was ever sent
        self._rebalance(leg, partner)

    def _rebalance(self, leg: Leg, partner: Leg | None) -> None:
        """Whatever one leg holds beyond the other is an unhedged position: close it with a
        governed MARKET order marked as a close, on the venue it was filled on."""
        held = leg.filled - leg.closed
        hedged = partner.filled - partner.closed if partner is not None else Decimal(0)
        if held > hedged:
            self._close(leg, held - hedged)
        elif partner is not None and hedged > held:
            self._close(partner, hedged - held)

    def _close(self, leg: Leg, amount: Decimal) -> None:
        leg.closed += amount
        place = self.sell if leg.is_buy else self.buy
        place(leg.connector, leg.pair, amount, OrderType.MARKET, Decimal("NaN"), PositionAction.CLOSE)

    def did_fill_order(self, event):
        super().did_fill_order(event)
        leg = self._legs.get(event.order_id)
        if leg is None:
            return
        leg.filled += Decimal(event.amount)
        if leg.unhedged:
            self._rebalance(leg, self._legs.get(leg.other))

    def did_fail_order(self, event):
        super().did_fail_order(event)
        self._ended(event.order_id)

    def did_cancel_order(self, event):
        super().did_cancel_order(event)
        self._ended(event.order_id)

    def did_complete_buy_order(self, event):
        super().did_complete_buy_order(event)
        self._ended(event.order_id)

    def did_complete_sell_order(self, event):
        super().did_complete_sell_order(event)
        self._ended(event.order_id)

    def _ended(self, order_id: str) -> None:
        """A leg is done at the exchange. Short of its amount, the pair is broken; a leg is
        kept until its partner is done too (a partner failing later still breaks the pair)."""
        leg = self._legs.get(order_id)
        if leg is None:
            return
        leg.done = True
        if leg.filled < leg.amount:
            self._break(order_id)
        partner = self._legs.get(leg.other)
        if partner is None or partner.done:
            self._legs.pop(order_id, None)
            self._legs.pop(leg.other, None)
