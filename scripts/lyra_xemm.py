"""Lyra cross-exchange market making: Hummingbot's XEMMExecutor, maker on one venue, hedge
on the other, every order governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_xemm.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_xemm.yml`.

Up to one `XEMMExecutor` per maker side. A buy-side executor rests a LIMIT buy on the maker
venue priced `target_profitability` (plus both venues' fees) under what selling the same
amount on the taker venue would fetch; it re-prices the order whenever the edge leaves
[`min_profitability`, `max_profitability`], and when the buy fills it hedges at once with a
MARKET sell on the taker venue. The sell side mirrors it. Both legs pass the governor: a maker
order the governor refuses (collar, cap) never reaches the exchange and the executor retries
it, up to its retry limit, then stops; a new one starts `cooldown_s` later.

Sizing: the order amount is what the governor's remaining capacity allows on both venues
(each under the per-order limit), capped by `order_amount_quote` and by the free balances the
two legs need. If a hedge cannot be placed (the governor refuses it in a gradual stop, the
taker venue rejects it), the executor stops and the script closes the filled maker leg on its
own venue with a reduce-only MARKET order (`PositionAction.CLOSE`), so nothing stays
unhedged. In a gradual stop no new maker order is placed and resting ones are cancelled.
Executors need connectors with trading rules and order trackers (live connectors or
`lyra-governor paper`); on Hummingbot's own `*_paper_trade` connectors the script says so.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType, PositionAction, TradeType
from hummingbot.strategy_v2.executors.data_types import ConnectorPair
from hummingbot.strategy_v2.executors.xemm_executor.data_types import XEMMExecutorConfig
from hummingbot.strategy_v2.models.executor_actions import CreateExecutorAction, StopExecutorAction
from pydantic import Field

from lyra_governor.models import TradingState
from lyra_strategies import budget, governed, ladders, script_config

CONTROLLER_ID = "main"
KEEP_CLOSED = 20
MIN_NOTIONAL = Decimal(5)
RETRY_S = 5.0


class LyraXEMMConfig(script_config.GovernedScriptConfig):
    script_file_name: str = os.path.basename(__file__)
    bot_id: str = "lyra-xemm"
    maker_connector: str = "binance_paper_trade"
    maker_pair: str = "BTC-USDT"
    taker_connector: str = "okx_paper_trade"
    taker_pair: str = "BTC-USDT"
    order_amount_quote: Decimal = Field(default=Decimal(30), gt=0)  # at most; sized to the governor's capacity
    min_profitability: Decimal = Field(default=Decimal("0.0005"), ge=0)
    target_profitability: Decimal = Field(default=Decimal("0.0015"), gt=0)
    max_profitability: Decimal = Field(default=Decimal("0.004"), gt=0)
    cooldown_s: float = Field(default=30.0, ge=0)

    def update_markets(self, markets: MarketDict) -> MarketDict:
        markets = markets.add_or_update(self.maker_connector, self.maker_pair)
        return markets.add_or_update(self.taker_connector, self.taker_pair)


class LyraXEMM(governed.GovernedStrategyV2Base):
    """One XEMMExecutor per maker side; unhedged maker fills are closed reduce-only."""

    def __init__(self, connectors, config: LyraXEMMConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self._side_ended: dict[TradeType, float] = {TradeType.BUY: -1e18, TradeType.SELL: -1e18}
        self._settled: set[str] = set()  # finished executors whose legs were checked
        self._retry_at: dict[TradeType, float] = {TradeType.BUY: -1e18, TradeType.SELL: -1e18}
        self.hedged = 0
        self.unwinds = 0

    def on_tick(self):
        cfg = self.config
        if not self.executors_ready(cfg.maker_connector, cfg.taker_connector, what="XEMM"):
            return
        executors = list(self.executor_orchestrator.active_executors.get(CONTROLLER_ID, []))
        self._settle(executors)
        reducing = self.lyra.trading_state() is TradingState.REDUCING
        for side in (TradeType.BUY, TradeType.SELL):
            running = [e for e in executors if not e.is_closed and e.config.maker_side == side]
            if reducing:
                for executor in running:  # a resting maker order is cancelled; a hedge in flight goes on
                    if executor.maker_order is not None and executor.taker_order is None:
                        self.executor_orchestrator.execute_action(StopExecutorAction(
                            controller_id=CONTROLLER_ID, executor_id=executor.config.id))
                continue
            if running or self.current_timestamp - self._side_ended[side] < cfg.cooldown_s:
                continue
            if self.current_timestamp < self._retry_at[side]:
                continue
            config = self.xemm_config(side)
            if config is None:  # no capacity or balance for this side: look again in a few seconds
                self._retry_at[side] = self.current_timestamp + RETRY_S
                continue
            self.executor_orchestrator.execute_action(
                CreateExecutorAction(controller_id=CONTROLLER_ID, executor_config=config))
        ladders.store_finished(self, CONTROLLER_ID, executors, KEEP_CLOSED)

    def xemm_config(self, maker_side: TradeType):
        """An executor for one maker side, sized to the governor's capacity on both venues and
        the balances both legs need; None when the order would be too small."""
        cfg = self.config
        mid = self._mid(cfg.maker_connector, cfg.maker_pair)
        if not mid.is_finite() or mid <= 0:
            return None
        maker, taker = self.connectors[cfg.maker_connector], self.connectors[cfg.taker_connector]
        base, quote = cfg.maker_pair.split("-")
        taker_base, taker_quote = cfg.taker_pair.split("-")
        maker_free, taker_free = maker.get_available_balance, taker.get_available_balance
        if maker_side == TradeType.BUY:  # buy on the maker venue, sell the base on the taker venue
            free = min(Decimal(maker_free(quote)) / mid, Decimal(taker_free(taker_base)))
        else:  # sell base on the maker venue, buy it back on the taker venue
            free = min(Decimal(maker_free(base)), Decimal(taker_free(taker_quote)) / mid)
        # the balances alone too small: no capacity to read (the amount is rounded down from at most this)
        if maker.quantize_order_amount(cfg.maker_pair, free * budget.HEADROOM) * mid < MIN_NOTIONAL:
            return None
        quote_budget = min(budget.per_order_quote(self, cfg.maker_connector, quote, 1),
                           budget.per_order_quote(self, cfg.taker_connector, taker_quote, 1, market=True),  # hedge
                           cfg.order_amount_quote)
        amount = maker.quantize_order_amount(cfg.maker_pair, min(quote_budget / mid, free * budget.HEADROOM))
        if amount <= 0 or amount * mid < MIN_NOTIONAL:
            return None
        maker_market = ConnectorPair(connector_name=cfg.maker_connector, trading_pair=cfg.maker_pair)
        taker_market = ConnectorPair(connector_name=cfg.taker_connector, trading_pair=cfg.taker_pair)
        buying, selling = (maker_market, taker_market) if maker_side == TradeType.BUY else (taker_market, maker_market)
        return XEMMExecutorConfig(
            timestamp=self.current_timestamp, buying_market=buying, selling_market=selling, maker_side=maker_side,
            order_amount=amount, min_profitability=cfg.min_profitability,
            target_profitability=cfg.target_profitability, max_profitability=cfg.max_profitability)

    def _settle(self, executors) -> None:
        """Each finished executor once: a maker fill its hedge did not match is closed on the
        maker venue, reduce-only (a MARKET order against the filled side)."""
        cfg = self.config
        for executor in executors:
            if not executor.is_closed or executor.config.id in self._settled:
                continue
            self._settled.add(executor.config.id)
            side = executor.config.maker_side
            self._side_ended[side] = max(self._side_ended[side], executor.close_timestamp or self.current_timestamp)
            made = executor.maker_order.executed_amount_base if executor.maker_order else Decimal(0)
            hedged = executor.taker_order.executed_amount_base if executor.taker_order else Decimal(0)
            if made <= 0:
                continue
            if hedged >= made:
                self.hedged += 1
                continue
            rest = self.connectors[cfg.maker_connector].quantize_order_amount(cfg.maker_pair, made - hedged)
            if rest <= 0:
                continue
            self.unwinds += 1
            close = self.sell if side == TradeType.BUY else self.buy
            close(cfg.maker_connector, cfg.maker_pair, rest, OrderType.MARKET, Decimal("NaN"), PositionAction.CLOSE)
