"""`PaperExchange`: Hummingbot's own paper matching engine, with what its executors read.

Why this exists: Hummingbot's `PaperTradeExchange` (behind every `<exchange>_paper_trade`
connector, and its `MockPaperExchange` test double) has no `trading_rules` and no order
tracker, so a `PositionExecutor` cannot run on it: it reads `connector.trading_rules[pair]` in
its constructor and `connector._order_tracker.fetch_order(...)` on every order event (upstream
issues hummingbot#7434 and #8414: pmm_simple fails on paper trade the same way). The class is
Cython and takes no new attributes, so this Python subclass adds them:

- `trading_rules`: one `TradingRule` per pair, from the quantization set on the exchange;
- `_order_tracker`: Hummingbot's own `ClientOrderTracker`, holding an `InFlightOrder` per
  order, kept up to date from the engine's own events (created, filled, completed, cancelled,
  failed). Fills still come from the engine; this only mirrors them where executors look.
- `_update_orders_with_error_handler`: a no-op; the engine updates its orders itself.

Used by the offline paper run and the tests. In the Hummingbot terminal a `*_paper_trade`
connector stays Hummingbot's and cannot run executors (see README, "Running with Hummingbot").
"""

from __future__ import annotations

import logging
import weakref
from decimal import Decimal
from typing import Any, cast

from cachetools import TTLCache
from hummingbot.connector.client_order_tracker import ClientOrderTracker
from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange
from hummingbot.connector.trading_rule import TradingRule
from hummingbot.connector.utils import split_hb_trading_pair
from hummingbot.core.data_type.common import PositionAction, PriceType, TradeType
from hummingbot.core.data_type.in_flight_order import InFlightOrder, OrderState, OrderUpdate, TradeUpdate
from hummingbot.core.data_type.trade_fee import TradeFeeBase, TradeFeeSchema
from hummingbot.core.event.event_forwarder import EventForwarder, SourceInfoEventForwarder
from hummingbot.core.event.event_reporter import EventReporter
from hummingbot.core.event.events import MarketEvent
from hummingbot.core.pubsub import PubSub
from hummingbot.logger.struct_logger import EVENT_LOG_LEVEL

from lyra_strategies.paper import quantum

quantum.install()  # Hummingbot's paper quanta without its 28-digit logarithm (same answers)
PRICE_CACHE_MAX = 4096  # distinct (pair, side, best price) answers kept (see get_price)


class PaperExchange(MockPaperExchange):  # type: ignore[misc]
    """A `MockPaperExchange` whose orders Hummingbot's executors can follow."""

    def __init__(
        self,
        min_notional: Decimal = Decimal(1),
        name: str = "lyra_paper",
        maker_fee: Decimal = Decimal(0),
        taker_fee: Decimal = Decimal(0),
        fee_token: str | None = "USDT",  # noqa: S107 (a currency, not a secret)
    ) -> None:
        # Hummingbot charges a paper fill the fee schema registered under the connector's name
        # (`build_trade_fee(self.name, ...)`): each exchange gets its own name and schema, so
        # its fills pay its fees (MockPaperExchange alone registers every instance as one name).
        self._paper_name = f"lyra_paper_{name}"
        # Fees are charged in the quote currency (USDT): a fee taken in the bought base would
        # need Hummingbot's network rate oracle to be valued, which an offline run has not.
        super().__init__(
            TradeFeeSchema(percent_fee_token=fee_token, maker_percent_fee_decimal=maker_fee,
                           taker_percent_fee_decimal=taker_fee, buy_percent_fee_deducted_from_returns=False)
        )
        self._rules: dict[str, TradingRule] = {}
        self._min_notional = min_notional
        self._order_tracker = _PaperOrderTracker(self)
        self._fills = 0
        self._prices: dict[tuple[str, bool, float], Decimal] = {}  # see get_price
        self._mids: dict[tuple[str, float, float], Decimal] = {}
        self._amounts: dict[tuple[str, str], Decimal] = {}  # see quantize_order_amount
        # kept as attributes: the connector holds its listeners weakly
        self._forwarders = [
            (MarketEvent.BuyOrderCreated, SourceInfoEventForwarder(self._created)),
            (MarketEvent.SellOrderCreated, SourceInfoEventForwarder(self._created)),
            (MarketEvent.OrderFilled, SourceInfoEventForwarder(self._filled)),
            (MarketEvent.BuyOrderCompleted, SourceInfoEventForwarder(self._completed)),
            (MarketEvent.SellOrderCompleted, SourceInfoEventForwarder(self._completed)),
            (MarketEvent.OrderCancelled, SourceInfoEventForwarder(self._cancelled)),
            (MarketEvent.OrderFailure, SourceInfoEventForwarder(self._failed)),
        ]
        # event tag -> its listeners in the order they registered (weakly, as PubSub holds them)
        self._ordered: dict[int, list[weakref.ref[Any]]] = {}
        self._dispatchers: dict[int, SourceInfoEventForwarder] = {}
        self._relays: dict[int, PubSub] = {}  # id(native listener) -> a PubSub holding only it
        for event, forwarder in self._forwarders:
            self.add_listener(event, forwarder)

    # --- events in a fixed order ---------------------------------------------------------
    #
    # Hummingbot's PubSub keeps an event's listeners in a C++ set ordered by memory address, so
    # whether an executor, the strategy (which records the fill in Lyra's ledger) or the order
    # tracker hears a fill first changes from one process to the next, and so does the run.
    # Here each event tag has one dispatcher in the PubSub, which calls the listeners in the
    # order they registered: the order tracker, Hummingbot's recorder, the strategy, then its
    # executors as they start.

    def add_listener(self, event_tag: Any, listener: Any) -> None:
        tag = int(event_tag.value)
        if tag not in self._ordered:
            self._ordered[tag] = []
            self._dispatchers[tag] = SourceInfoEventForwarder(self._dispatch)
            PubSub.add_listener(self, event_tag, self._dispatchers[tag])
        self._ordered[tag].append(weakref.ref(listener))

    def remove_listener(self, event_tag: Any, listener: Any) -> None:
        refs = self._ordered.get(int(event_tag.value), [])
        refs[:] = [r for r in refs if r() is not None and r() is not listener]
        PubSub.remove_listener(self, event_tag, listener)  # a listener registered natively

    def get_listeners(self, event_tag: Any) -> list[Any]:
        ordered = [r() for r in self._ordered.get(int(event_tag.value), [])]
        native = [x for x in PubSub.get_listeners(self, event_tag) if x not in self._dispatchers.values()]
        return [x for x in ordered if x is not None] + native

    async def trigger_event_async(self, event_tag: Any, event: Any) -> None:
        """The engine announces a resting LIMIT order (its Buy/SellOrderCreated event) from a
        task that first sleeps 0.01 s of *wall* time, so how many simulated seconds passed
        before an executor learnt its order was open depended on the machine's speed (and a
        replay differed from run to run). Here the task announces it when it first runs: after
        `buy`/`sell` returned, within the same simulated second."""
        tag = event_tag if isinstance(event_tag, MarketEvent) else MarketEvent(int(event_tag))
        self.trigger_event(tag, event)

    def adopt_native_listeners(self) -> None:
        """Move the listeners a Cython strategy registered with `c_add_listener` (past
        `add_listener`) behind the dispatchers; call once the strategy is built."""
        for event in MarketEvent:
            for listener in PubSub.get_listeners(self, event):
                if listener in self._dispatchers.values():
                    continue
                PubSub.remove_listener(self, event, listener)
                if not isinstance(listener, SourceInfoEventForwarder | EventForwarder):
                    relay = self._relays.setdefault(id(listener), PubSub())
                    relay.add_listener(event, listener)
                self.add_listener(event, listener)

    def _dispatch(self, tag: int, _caller: Any, event: Any) -> None:
        refs = self._ordered.get(tag, [])
        if any(r() is None for r in refs):
            refs[:] = [r for r in refs if r() is not None]
        for ref in list(refs):
            listener = ref()
            if listener is None:
                continue
            try:
                if isinstance(listener, SourceInfoEventForwarder):
                    listener._to_function(tag, self, event)
                elif isinstance(listener, EventForwarder):
                    listener._to_function(event)
                elif isinstance(listener, EventReporter) and not _reporting():
                    continue  # its log record would be dropped: skip the deep copy it logs
                else:  # a Cython listener: only a PubSub can call it
                    self._relays[id(listener)].trigger_event(MarketEvent(tag), event)
            except Exception:
                logging.getLogger(__name__).exception("event listener failed on %s", MarketEvent(tag).name)

    @property
    def name(self) -> str:
        return self._paper_name

    @property
    def display_name(self) -> str:
        return self._paper_name

    # --- prices: Hummingbot's, remembered per top of book -----------------------------------
    #
    # An executor reads its market's price every control step (`get_price_by_type`), and the
    # engine quantizes each one through Decimal: 50-170 us a call, ten calls a simulated second
    # with eight scripts. The answer depends only on the book's best price on that side and the
    # pair's quantization (set once, before trading), so it is computed by Hummingbot once per
    # (pair, side, best price) and looked up after that, the same Decimal bit for bit. Accounts
    # with the same quantization may share one memo (`share_prices`): the replay's accounts on a
    # connector share its book, so a new quote costs one miss per side, not one per account.

    def share_prices(self, other: PaperExchange) -> None:
        """Use `other`'s price and amount memos (call only when both have the same quantization)."""
        self._prices, self._mids, self._amounts = other._prices, other._mids, other._amounts

    def get_price(self, trading_pair: str, is_buy: bool) -> Decimal:
        top = self.get_order_book(trading_pair).get_price(is_buy)
        key = (trading_pair, is_buy, top)
        found = self._prices.get(key)
        if found is None:
            if len(self._prices) >= PRICE_CACHE_MAX:
                self._prices.clear()
            found = self._prices[key] = super().get_price(trading_pair, is_buy)
        return found

    def get_mid_price(self, trading_pair: str) -> Decimal:
        book = self.get_order_book(trading_pair)
        key = (trading_pair, book.get_price(True), book.get_price(False))
        found = self._mids.get(key)
        if found is None:
            if len(self._mids) >= PRICE_CACHE_MAX:
                self._mids.clear()
            ask, bid = self.get_price(trading_pair, True), self.get_price(trading_pair, False)
            found = self._mids[key] = (ask + bid) / Decimal("2")
        return found

    def quantize_order_amount(self, trading_pair: str, amount: Decimal) -> Decimal:
        """Hummingbot's rounding of an amount (~60 us through Decimal), remembered per (pair,
        amount as written): a position executor rounds its filled amount on every control step
        (`open_filled_amount`: a fifth of an eight-strategy replay's time). Amounts that compare
        equal but are written differently (1.0, 1.00) are kept apart, so the answer is
        Hummingbot's own, digit for digit."""
        key = (trading_pair, str(amount))
        found = self._amounts.get(key)
        if found is None:
            if len(self._amounts) >= PRICE_CACHE_MAX:
                self._amounts.clear()
            found = self._amounts[key] = super().quantize_order_amount(trading_pair, amount)
        return found

    def get_price_by_type(self, trading_pair: str, price_type: PriceType) -> Decimal:
        if price_type is PriceType.MidPrice:
            return self.get_mid_price(trading_pair)
        if price_type is PriceType.BestBid:
            return self.get_price(trading_pair, False)
        if price_type is PriceType.BestAsk:
            return self.get_price(trading_pair, True)
        return cast(Decimal, super().get_price_by_type(trading_pair, price_type))

    # --- what executors read --------------------------------------------------------------

    @property
    def trading_rules(self) -> dict[str, TradingRule]:
        """One rule per pair with a book, from the engine's own quantization (set with
        `set_quantization_param`), computed on first use."""
        for pair in self.order_books:
            if pair not in self._rules:
                mid = Decimal(str(self.get_mid_price(pair)))
                size_step = Decimal(str(self.get_order_size_quantum(pair, Decimal(1))))
                price_step = Decimal(str(self.get_order_price_quantum(pair, mid if mid.is_finite() else Decimal(1))))
                self._rules[pair] = TradingRule(
                    pair,
                    min_order_size=size_step,
                    min_price_increment=price_step,
                    min_base_amount_increment=size_step,
                    min_notional_size=self._min_notional,
                )
        return self._rules

    async def _update_orders_with_error_handler(self, orders: list[InFlightOrder], error_handler: Any) -> None:
        return None  # the paper engine moves its orders on each tick; nothing to poll

    async def _handle_update_error_for_lost_order(self, order: InFlightOrder, error: Exception) -> None:
        return None

    # --- mirror the engine's events into InFlightOrders ----------------------------------

    def _order(self, order_id: str) -> InFlightOrder | None:
        found: InFlightOrder | None = self._order_tracker.fetch_order(client_order_id=order_id)
        return found

    def _created(self, _tag: int, _source: Any, event: Any) -> None:
        if self._order(event.order_id) is not None:
            return
        side = TradeType.BUY if type(event).__name__.startswith("Buy") else TradeType.SELL
        self._track(event.order_id, event.trading_pair, event.type, side, _dec(event.amount), _dec(event.price),
                    float(event.creation_timestamp or event.timestamp), event.position)

    def _track(
        self,
        order_id: str,
        pair: str,
        order_type: Any,
        side: TradeType,
        amount: Decimal,
        price: Decimal,
        created: float,
        position: Any,
    ) -> InFlightOrder:
        order = PaperOrder(
            client_order_id=order_id,
            trading_pair=pair,
            order_type=order_type,
            trade_type=side,
            amount=amount,
            creation_timestamp=created,
            price=price if price.is_finite() else None,
            exchange_order_id=order_id,
            initial_state=OrderState.OPEN,
            position=_position(position),
        )
        self._order_tracker.start_tracking_order(order)
        return order

    def adopt_resting_order(self, order_id: str) -> InFlightOrder | None:
        """An order the engine rests but the tracker has not seen yet: an executor's listener
        can run before ours on the same event (listener order is not defined), so a lookup
        falls back to the engine's own resting orders."""
        for resting in self.limit_orders:
            if resting.client_order_id == order_id:
                side = TradeType.BUY if resting.is_buy else TradeType.SELL
                # LimitOrder (Cython) exposes order_type and position as methods, not values
                order_type = resting.order_type() if callable(resting.order_type) else resting.order_type
                return self._track(order_id, resting.trading_pair, order_type, side,
                                   _dec(resting.quantity), _dec(resting.price),
                                   float(resting.creation_timestamp) / 1e6 if resting.creation_timestamp > 1e12
                                   else float(resting.creation_timestamp),
                                   resting.position() if callable(resting.position) else resting.position)
        return None

    def _filled(self, _tag: int, _source: Any, event: Any) -> None:
        order = self._order(event.order_id)
        if order is None:  # the engine announces no creation for a MARKET order: it fills at once
            order = self._track(event.order_id, event.trading_pair, event.order_type, event.trade_type,
                                _dec(event.amount), _dec(event.price), float(event.timestamp), event.position)
        self._fills += 1
        amount, price = _dec(event.amount), _dec(event.price)
        order.update_with_trade_update(
            TradeUpdate(
                trade_id=event.exchange_trade_id or f"paper-fill-{self._fills}",
                client_order_id=event.order_id,
                exchange_order_id=order.exchange_order_id or event.order_id,
                trading_pair=event.trading_pair,
                fill_timestamp=float(event.timestamp),
                fill_price=price,
                fill_base_amount=amount,
                fill_quote_amount=amount * price,
                fee=event.trade_fee,
            )
        )
        if not order.is_filled:
            self._set_state(order, OrderState.PARTIALLY_FILLED, event.timestamp)

    def _completed(self, _tag: int, _source: Any, event: Any) -> None:
        order = self._order(event.order_id)
        if order is not None:
            self._set_state(order, OrderState.FILLED, event.timestamp)

    def _cancelled(self, _tag: int, _source: Any, event: Any) -> None:
        order = self._order(event.order_id)
        if order is not None:
            self._set_state(order, OrderState.CANCELED, event.timestamp)

    def _failed(self, _tag: int, _source: Any, event: Any) -> None:
        order = self._order(event.order_id)
        if order is not None:
            self._set_state(order, OrderState.FAILED, event.timestamp)

    def _set_state(self, order: InFlightOrder, state: OrderState, timestamp: float) -> None:
        order.update_with_order_update(
            OrderUpdate(
                trading_pair=order.trading_pair,
                update_timestamp=float(timestamp),
                new_state=state,
                client_order_id=order.client_order_id,
                exchange_order_id=order.exchange_order_id,
            )
        )
        if state in (OrderState.FILLED, OrderState.CANCELED, OrderState.FAILED):
            self._order_tracker.stop_tracking_order(order.client_order_id)  # kept in its cache


class PaperOrder(InFlightOrder):  # type: ignore[misc]
    """Hummingbot's in-flight order, its fees in a token remembered while no fill is added.

    Executors ask an order for its fees on every control step (`TrackedOrder.cum_fees_quote`:
    a position executor's stop loss and PnL, a grid's position metrics, DCA's take profit),
    and Hummingbot walks every fill each time. A fill's fee in a token is a function of the
    fill alone unless it has to be converted at a market rate (`fee_amount_in_token` asks the
    RateOracle, whose prices move every second), and `order_fills` only grows (a repeated
    trade id is refused). So the answer is kept per token with the number of fills it covers,
    only when no fill's fee needed a rate; any other answer is Hummingbot's, every time."""

    _fees: dict[str, tuple[int, Decimal]] | None = None

    def cumulative_fee_paid(self, token: str) -> Decimal:
        fills = self.order_fills
        kept = self._fees.get(token) if self._fees is not None else None
        if kept is not None and kept[0] == len(fills):
            return kept[1]
        total = cast(Decimal, super().cumulative_fee_paid(token))
        if all(_rate_free(fill.fee, self.trading_pair, token) for fill in fills.values()):
            if self._fees is None:
                self._fees = {}
            self._fees[token] = (len(fills), total)
        return total


def _rate_free(fee: Any, trading_pair: str, token: str) -> bool:
    """Whether Hummingbot's `TradeFeeBase.fee_amount_in_token(trading_pair, ..., token)` answers
    this fee without a rate: its percentage is in the pair's quote and each flat fee is in the
    token itself or in the base with the quote as the token (priced at the fill's price)."""
    if type(fee).fee_amount_in_token is not TradeFeeBase.fee_amount_in_token:
        return False
    try:
        base, quote = split_hb_trading_pair(trading_pair)
    except ValueError:  # Hummingbot logs it and answers what it summed: not kept
        return False
    same = fee._are_tokens_interchangeable
    if fee.percent != 0 and not same(quote, token):
        return False
    return all(same(flat.token, token) or (same(flat.token, base) and same(quote, token)) for flat in fee.flat_fees)


class _PaperOrderTracker(ClientOrderTracker):  # type: ignore[misc]
    """Hummingbot's order tracker; a lookup of an order it has not seen asks the engine."""

    def __init__(self, exchange: PaperExchange) -> None:
        super().__init__(exchange)
        self._exchange = exchange
        # Hummingbot keeps finished orders CACHED_ORDER_TTL seconds of *wall* time; a replay's
        # lookups must not depend on how fast the machine is: the cache ages in simulated time.
        self._cached_orders: TTLCache[str, InFlightOrder] = TTLCache(
            maxsize=self.MAX_CACHE_SIZE, ttl=self.CACHED_ORDER_TTL, timer=lambda: float(exchange.current_timestamp)
        )

    def fetch_order(self, client_order_id: str | None = None, exchange_order_id: str | None = None) -> Any:
        # Hummingbot's lookup copies every active and cached order into two new dicts per call;
        # its cache keeps orders 30 *wall* seconds, hours of a replay, so look up by key first.
        if client_order_id is not None:
            for orders in (self._in_flight_orders, self._cached_orders, self._lost_orders):
                order = orders.get(client_order_id)
                if order is not None:
                    return order
        found = super().fetch_order(client_order_id, exchange_order_id)
        if found is None and client_order_id is not None:
            found = self._exchange.adopt_resting_order(client_order_id)
        return found


def _reporting() -> bool:
    """Would Hummingbot's `EventReporter` (every connector has one on every market event) log
    anything? It turns each event into a dict with `dataclasses.asdict` (a deep copy of the
    event, its fee and Decimals: ~0.3 ms) and hands it to its logger at EVENT_LOG level, which
    the paper run keeps at ERROR (`QUIETED_LOGGERS`): then the dict is built for nothing."""
    return bool(EventReporter.logger().isEnabledFor(EVENT_LOG_LEVEL))


def _dec(value: Any) -> Decimal:
    """The engine keeps amounts and prices as doubles and reports them as floats or as
    Decimal(float), which carries binary dust (0.000888 becomes 0.00088800000000000000894...);
    an executor that waits for its position to be exactly 0 (the grid's shutdown) would never
    stop. The shortest repr of the double is the number that was ordered."""
    return Decimal(repr(float(value)))


def _position(value: Any) -> PositionAction:
    if isinstance(value, PositionAction):
        return value
    try:
        return PositionAction(value)
    except ValueError:
        return PositionAction.NIL
