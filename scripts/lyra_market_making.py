"""Lyra market making: a ladder of quotes around mid with inventory skew, each quote a
Hummingbot PositionExecutor with a triple barrier, every order governed.

Run in the Hummingbot terminal: `start --v2 conf_lyra_market_making.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_market_making.yml`.

Each quote level (`buy_0`, `sell_0`, `buy_1`, ...) is one `PositionExecutor`, the way
Hummingbot's market-making controllers (pmm_simple) quote: its open order is a LIMIT at the
quote price; once it fills, the position is closed by whichever barrier comes first:
take-profit (a LIMIT order), stop-loss or time limit (MARKET orders). The executor places its
orders through this strategy's `buy`/`sell`, so each one passes Lyra's governor (ladder caps,
collar, rate limits, AI mandate); a denied order is never sent and the executor takes its own
failed-order path. Closing orders are proposed reduce-only, so they pass in a gradual stop
when they reduce the bot's own position (see `lyra_strategies.governed`).

One quote per level: a refreshed level gets its new quote only once the old one is gone
(cancelled or filled), so at most `levels` orders a side rest at any time.

Each tick: levels whose open order has not filled are refreshed (stopped) when older than
`refresh_s` or when mid moved more than `refresh_tolerance_bps` since they were placed; a
level whose open order the governor refused (not merely deferred for a mandate) is stopped
and rests for `refresh_s` instead of being retried every second; a level without a running
executor gets a new one, sized from the governor's remaining capacity on the exchange (when
that or the free balance is too small for a level, it is sized again `RETRY_S` later, not
every second). In a gradual stop no new level is opened and unfilled ones are stopped; filled
positions keep their barriers. On a halt the governed base stops every executor and holds
its position (nothing more is sent).

Executors need a connector with trading rules and an order tracker: live connectors have them;
Hummingbot's own `*_paper_trade` connector does not (upstream issues hummingbot#7434, #8414).
There the script quotes the same ladder with plain governed limit orders, without barriers,
and says so once; `lyra-governor paper` runs the executors on a paper exchange that has both.
"""

import os
from decimal import Decimal

from hummingbot.core.data_type.common import MarketDict, OrderType, TradeType
from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from hummingbot.strategy_v2.executors.position_executor.data_types import (
    PositionExecutorConfig,
    TripleBarrierConfig,
)
from hummingbot.strategy_v2.models.executor_actions import (
    CreateExecutorAction,
    StopExecutorAction,
    StoreExecutorAction,
)
from pydantic import Field

from lyra_governor.models import Side, TradingState
from lyra_strategies import governed, quotes, sizing

CONTROLLER_ID = "main"  # the orchestrator's bucket for a script's own executors
KEEP_CLOSED = 10  # finished executors kept in memory before they go to Hummingbot's database
#: after a tick whose free level could not be sized (no capacity or balance for it), sizing (a
#: read of the governor's capacity, ~1 ms) waits this long, as in the DCA, grid and XEMM scripts
RETRY_S = 5.0
MIN_NOTIONAL = Decimal(5)  # quote currency; smaller quotes are not worth a level


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
    # the triple barrier on every filled quote (fractions of the entry price, seconds)
    stop_loss: Decimal = Field(default=Decimal("0.015"), gt=0)
    take_profit: Decimal = Field(default=Decimal("0.005"), gt=0)
    time_limit_s: int = Field(default=900, gt=0)

    def update_markets(self, markets: MarketDict) -> MarketDict:
        return markets.add_or_update(self.connector_name, self.trading_pair)


class LyraMarketMaking(governed.GovernedStrategyV2Base):
    """One PositionExecutor per quote level; refreshed on age or when mid moves."""

    def __init__(self, connectors, config: LyraMarketMakingConfig, governor=None):
        super().__init__(connectors, config, governor)
        self.config = config
        self._placed_mid: dict[str, Decimal] = {}  # executor id -> mid when it was created
        self._warned = False
        self._rested_until: dict[str, float] = {}  # level id -> when a refused level may quote again
        self._direct_placed_at, self._direct_mid = -1e18, None  # quote_directly's last refresh
        self._levels = {f"{side}_{level}" for side in ("buy", "sell") for level in range(config.levels)}
        self._size_again_at = -1e18  # when a level that could not be sized is sized again

    def on_tick(self):
        cfg = self.config
        mid = self._mid(cfg.connector_name, cfg.trading_pair)
        if not mid.is_finite() or mid <= 0:
            return  # no usable book: no quotes (the governor would refuse them anyway)
        if cfg.connector_name not in self._executors_ok and not self.executors_supported(cfg.connector_name):
            if not self._warned:
                self._warned = True
                self.logger().warning(f"{cfg.connector_name} cannot run Hummingbot executors (no trading rules or "
                                      "order tracker): quoting with plain governed orders, without the triple "
                                      "barrier. With barriers: a live connector, or `lyra-governor paper`.")
            self.quote_directly(mid)
            return
        self._executors_ok.add(cfg.connector_name)  # a connector able to run executors stays able
        reducing = self.lyra.trading_state() is TradingState.REDUCING
        executors = self.executor_orchestrator.active_executors.get(CONTROLLER_ID, [])
        busy: set[str] = set()
        closed = 0
        for executor in executors:
            if executor.is_closed:
                closed += 1
                continue
            if not executor.is_active:  # shutting down: its level stays taken until its quote is gone
                if executor.is_trading or not _open_order_done(executor):
                    busy.add(executor.config.level_id)
                continue
            if not executor.is_trading:  # its open order has not filled: refresh or keep
                age = self.current_timestamp - executor.config.timestamp
                placed = self._placed_mid.get(executor.config.id)
                side = Side.BUY if executor.config.side == TradeType.BUY else Side.SELL
                # refused since it was created, and the executor saw its order fail (its custom
                # info prices the position: read only after a refusal, not every tick)
                refused = (self.refused_at.get((cfg.connector_name, cfg.trading_pair, side), -1.0)
                           >= executor.config.timestamp
                           and executor.get_custom_info().get("current_retries", 0) > 0)
                if refused:  # the governor (or the exchange) refused its open order: rest the level
                    self._rested_until[executor.config.level_id] = self.current_timestamp + cfg.refresh_s
                if reducing or refused or quotes.needs_refresh(placed, mid, age, cfg.refresh_s,
                                                               cfg.refresh_tolerance_bps):
                    self.executor_orchestrator.execute_action(
                        StopExecutorAction(controller_id=CONTROLLER_ID, executor_id=executor.config.id))
                    busy.add(executor.config.level_id)  # its quote rests until the cancel lands
                    continue
            busy.add(executor.config.level_id)
        # a refused level waits one refresh period instead of being retried every second
        busy |= {level for level, until in self._rested_until.items() if self.current_timestamp < until}
        free = self._levels - busy
        if not reducing and free and self.current_timestamp >= self._size_again_at:  # size it (the buy-back too)
            configs = self.quote_configs(mid, busy, self._buy_back_quote(executors, mid))
            for config in configs:
                self.executor_orchestrator.execute_action(
                    CreateExecutorAction(controller_id=CONTROLLER_ID, executor_config=config))
                self._placed_mid[config.id] = mid
            if len(configs) < len(free):  # a level too small to quote now: look again in a while
                self._size_again_at = self.current_timestamp + RETRY_S
        if closed > KEEP_CLOSED:
            self._store_finished(executors)

    def quote_directly(self, mid: Decimal) -> None:
        """Hummingbot's `*_paper_trade` connectors: the same ladder as plain governed limit
        orders, cancelled and re-placed on the same refresh rule."""
        cfg = self.config
        age = self.current_timestamp - self._direct_placed_at
        if not quotes.needs_refresh(self._direct_mid, mid, age, cfg.refresh_s, cfg.refresh_tolerance_bps):
            return
        for order in self.get_active_orders(cfg.connector_name):
            self.cancel(cfg.connector_name, order.trading_pair, order.client_order_id)
        if self.lyra.trading_state() is not TradingState.REDUCING:
            for config in self.quote_configs(mid, set()):
                place = self.buy if config.side == TradeType.BUY else self.sell
                place(cfg.connector_name, cfg.trading_pair, config.amount, OrderType.LIMIT, config.entry_price)
        self._direct_placed_at, self._direct_mid = self.current_timestamp, mid

    def _buy_back_quote(self, executors, mid: Decimal) -> Decimal:
        """Quote currency the filled sell levels need to buy back at their stop-loss (on spot
        a sold level is closed by a buy): new bids leave it free."""
        return sum((e.amount_to_close * mid * (1 + self.config.stop_loss) for e in executors
                    if e.is_trading and e.config.side == TradeType.SELL), Decimal(0))

    def quote_configs(self, mid: Decimal, busy: set[str],
                      keep_quote: Decimal = Decimal(0)) -> list[PositionExecutorConfig]:
        """A PositionExecutorConfig for each quote level not in `busy`, sized to fit the
        governor's remaining capacity on the exchange and its per-order limit, and the
        exchange balance the order would lock (less `keep_quote` for bids)."""
        cfg = self.config
        if self._levels <= busy:
            return []  # every level is quoted: nothing to size (and no capacity read) this tick
        connector = self.connectors[cfg.connector_name]
        base, quote_asset = cfg.trading_pair.split("-")
        usd = self.lyra.usd_per_quote(quote_asset) or Decimal(0)
        base_value = Decimal(connector.get_balance(base)) * mid
        quote_value = Decimal(connector.get_balance(quote_asset))
        params = quotes.QuoteParams(spread_bps=cfg.spread_bps, levels=cfg.levels, level_step_bps=cfg.level_step_bps,
                                    order_amount=cfg.order_amount, target_base_ratio=cfg.target_base_ratio,
                                    price_step=quotes.market_price_step(connector, cfg.trading_pair, mid))
        per_order: Decimal | None = None  # the governor's capacity read once a level's balance allows it
        barrier = TripleBarrierConfig(
            stop_loss=cfg.stop_loss, take_profit=cfg.take_profit, time_limit=cfg.time_limit_s,
            open_order_type=OrderType.LIMIT, take_profit_order_type=OrderType.LIMIT,
            stop_loss_order_type=OrderType.MARKET, time_limit_order_type=OrderType.MARKET)
        configs = []
        for q in quotes.make_quotes(mid, base_value, quote_value, params):
            level_id = f"{q.side.lower()}_{q.level}"
            if level_id in busy:
                continue
            # the exchange balance the order would lock (the executor refuses more) ...
            free = (Decimal(connector.get_available_balance(quote_asset)) - keep_quote) / q.price \
                if q.side == "BUY" else Decimal(connector.get_available_balance(base))
            lockable = connector.quantize_order_amount(cfg.trading_pair, max(free, 0) * Decimal("0.98"))
            if lockable <= 0 or lockable * q.price < MIN_NOTIONAL:
                continue  # too small whatever the capacity: none read for it
            if per_order is None:
                capacity = self.lyra.capacity_usd(self.lyra.settings.exchange_of(cfg.connector_name))
                per_order = capacity / max(1, 2 * cfg.levels)
            # ... and the governor's capacity on the exchange and its per-order limit
            amount = min(sizing.fit_to_capacity(q.amount, q.price, usd, per_order,
                                                self.lyra.settings.risk.max_order_notional_usd), lockable)
            if amount <= 0 or amount * q.price < MIN_NOTIONAL:
                continue
            configs.append(PositionExecutorConfig(
                timestamp=self.current_timestamp, connector_name=cfg.connector_name, trading_pair=cfg.trading_pair,
                side=TradeType.BUY if q.side == "BUY" else TradeType.SELL, amount=amount, entry_price=q.price,
                triple_barrier_config=barrier, level_id=level_id))
        return configs

    def _store_finished(self, executors) -> None:
        """Hand finished executors to Hummingbot's database beyond a small buffer, as
        StrategyV2Base does for controllers."""
        finished = [e for e in executors if e.is_closed]
        for executor in finished[:-KEEP_CLOSED] if len(finished) > KEEP_CLOSED else []:
            self._placed_mid.pop(executor.config.id, None)
            self.executor_orchestrator.execute_action(
                StoreExecutorAction(controller_id=CONTROLLER_ID, executor_id=executor.config.id))


def _open_order_done(executor) -> bool:
    """Whether a stopped executor's entry order no longer rests on the exchange (cancelled,
    filled or never placed): until then a new quote on its level would make two."""
    tracked = getattr(executor, "_open_order", None)
    return tracked is None or tracked.is_done or (tracked.order is None and not tracked.order_id)
