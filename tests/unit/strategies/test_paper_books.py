"""The replay's books (`lyra_strategies.paper.books`) are rebuilt only when a quote changes and
refilled in place: what every reader and the matching engine see must be Hummingbot's own book
for that quote, row for row, with the liquidity a MARKET fill took given back on the next quote
(as a fresh book starts with none)."""

from __future__ import annotations

import asyncio
import math
import random
from decimal import Decimal
from typing import Any

import numpy as np
from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange
from hummingbot.core.clock import Clock
from hummingbot.core.clock_mode import ClockMode
from hummingbot.core.data_type.common import OrderType
from hummingbot.core.event.events import OrderBookEvent

from lyra_strategies.paper.books import BOOK_LEVELS, MarketBook, ReplayBook, balanced_rows, changed_ticks
from lyra_strategies.paper.exchange import PaperExchange
from lyra_strategies.paper.feed import MarketSeries

PAIR = "BTC-USDT"
NAN = math.nan


def _hummingbot_book(mid: float, spread_bps: float, depth: float) -> Any:
    ex = MockPaperExchange()
    step = max(mid * spread_bps / 1e4, mid * 1e-6)
    ex.set_balanced_order_book(PAIR, mid, mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step, step, depth)
    return ex.get_order_book(PAIR)


def _rows(book: Any) -> tuple[list[Any], list[Any]]:
    return list(book.bid_entries()), list(book.ask_entries())


def _series(mid: list[float], spread: list[float], depth: list[float]) -> MarketSeries:
    t = [NAN if math.isnan(m) else 100.0 + k for k, m in enumerate(mid)]
    return MarketSeries("binance_paper_trade", PAIR, np.array(mid), np.array(spread), np.array(depth), np.array(t))


def test_rows_are_hummingbots_own_doubles() -> None:
    rng = random.Random(3)
    for _ in range(300):
        mid = rng.choice([rng.uniform(1e-3, 10), rng.uniform(10, 2e5)])
        spread, depth = rng.uniform(0, 25), rng.uniform(1e-4, 3)
        step = max(mid * spread / 1e4, mid * 1e-6)
        bids, asks = balanced_rows(mid, mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step, step, depth)
        assert (bids, asks) == _rows(_hummingbot_book(mid, spread, depth))  # exact float equality


def test_changed_ticks_skip_repeats_and_the_time_before_the_first_quote() -> None:
    series = _series([NAN, NAN, 10.0, 10.0, 10.5, 10.5, 10.5, 10.0], [2.0] * 7 + [3.0], [0.1] * 8)
    assert changed_ticks(series) == [False, False, True, False, True, False, False, True]


def test_a_refilled_book_is_a_fresh_hummingbot_book_shared_by_the_connectors_accounts() -> None:
    asyncio.run(_refilled_book())  # the engine's clock start schedules tasks: it needs a running loop


async def _refilled_book() -> None:
    mids = [NAN, 60_000.0, 60_010.0, 60_010.0, 59_990.5]
    series = _series(mids, [1.0, 1.0, 1.5, 1.5, 2.0], [0.01, 0.01, 0.02, 0.02, 0.03])
    accounts = [PaperExchange(name=f"books{k}") for k in range(3)]
    for ex in accounts:
        ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
        ex.set_balance("USDT", Decimal(100_000))
    market = MarketBook(series, accounts)
    clock = Clock(ClockMode.BACKTEST, 1.0, 100.0, 200.0)
    for ex in accounts:
        clock.add_iterator(ex)

    assert market.show(0) is None and PAIR not in accounts[0].order_books  # no book before the first quote
    assert market.show(1) == Decimal("60000.0")
    first = [ex.get_order_book(PAIR) for ex in accounts]
    assert len({id(b) for b in first}) == 3  # each account's engine learns the pair on its own book
    assert market.show(2) == Decimal("60010.0")
    book = accounts[0].get_order_book(PAIR)
    # from the second quote one ReplayBook, with the first account's trade listener, for all
    assert isinstance(book, ReplayBook) and all(ex.get_order_book(PAIR) is book for ex in accounts)
    trade = OrderBookEvent.TradeEvent
    assert book.get_listeners(trade) == first[0].get_listeners(trade) and len(book.get_listeners(trade)) == 1
    assert _rows(book) == _rows(_hummingbot_book(60_010.0, 1.5, 0.02))
    assert (book.get_price(True), book.get_price(False)) == (book.ask_entries().__next__().price,
                                                             book.bid_entries().__next__().price)

    # a MARKET buy eats the top ask of the shared book (Hummingbot records it in the composite book)
    top = next(book.ask_entries())
    clock.backtest_til(102.0)
    accounts[1].buy(PAIR, Decimal("0.015"), OrderType.MARKET)
    clock.backtest_til(110.0)  # past the engine's TRADE_EXECUTION_DELAY
    assert next(book.ask_entries()).amount < top.amount
    assert market.show(3) is None  # a repeated quote leaves the book (and what was taken) as it is
    assert next(book.ask_entries()).amount < top.amount
    assert market.show(4) == Decimal("59990.5")  # a new quote: a fresh book's liquidity again
    assert accounts[2].get_order_book(PAIR) is book
    assert _rows(book) == _rows(_hummingbot_book(59_990.5, 2.0, 0.03))
    assert market.rebuilds == 3
    assert market.seen_at(0, 99.0) == 99.0 and market.seen_at(4, 105.0) == 104.0


def test_an_event_skips_hummingbots_event_report_only_while_nothing_would_log_it() -> None:
    """Every connector's EventReporter deep-copies each market event (`dataclasses.asdict`)
    for a log record at EVENT_LOG level; with that level off (the paper run's loggers are at
    ERROR) the copy is skipped, and every other listener still hears the event."""
    import cProfile
    import dataclasses
    import logging
    import pstats

    from hummingbot.core.event.event_forwarder import SourceInfoEventForwarder
    from hummingbot.core.event.events import MarketEvent, OrderCancelledEvent
    from hummingbot.logger.struct_logger import EVENT_LOG_LEVEL

    ex = PaperExchange(name="reporter")
    heard: list[str] = []
    forwarder = SourceInfoEventForwarder(lambda _tag, _src, event: heard.append(event.order_id))
    ex.add_listener(MarketEvent.OrderCancelled, forwarder)
    ex.adopt_native_listeners()

    def copies(n: int) -> int:
        profile = cProfile.Profile()
        profile.enable()
        for k in range(n):
            ex.trigger_event(MarketEvent.OrderCancelled, OrderCancelledEvent(100.0 + k, f"o{k}"))
        profile.disable()
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        return sum(v[1] for (_f, _l, name), v in stats.items() if name == dataclasses.asdict.__name__)

    reporter = logging.getLogger("hummingbot.core.event.event_reporter")
    level = reporter.level
    try:
        reporter.setLevel(logging.ERROR)
        assert copies(20) == 0 and len(heard) == 20
        reporter.setLevel(EVENT_LOG_LEVEL)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        reporter.addHandler(handler)
        try:
            assert copies(3) == 3 and len(heard) == 23
        finally:
            reporter.removeHandler(handler)
        assert [r.__dict__["dict_msg"]["order_id"] for r in records] == ["o0", "o1", "o2"]
    finally:
        reporter.setLevel(level)


def test_a_replay_book_builds_its_rows_only_when_read_past_the_best_prices() -> None:
    asyncio.run(_lazy_rows())


async def _lazy_rows() -> None:
    series = _series([60_000.0, 60_010.0, 60_020.0, 60_030.0, 60_040.0], [1.0] * 5, [0.01] * 5)
    ex = PaperExchange(name="lazy")
    ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
    market = MarketBook(series, [ex])
    market.show(0)
    market.show(1)  # the shared book's first quote is built: Hummingbot checks its size
    book = ex.get_order_book(PAIR)
    assert isinstance(book, ReplayBook) and book.builds == 1
    market.show(2)
    assert (book.get_price(True), book.get_price(False)) == (60_023.001, 60_016.999)
    assert next(book.ask_entries()) == _rows(_hummingbot_book(60_020.0, 1.0, 0.01))[1][0]
    assert book.builds == 1  # best prices only: no rows built
    assert _rows(book) == _rows(_hummingbot_book(60_020.0, 1.0, 0.01)) and book.builds == 2
    market.show(3)
    market.show(4)  # a quote nobody read past the touch is never built
    assert book.get_vwap_for_volume(True, 0.05).result_price == \
        _hummingbot_book(60_040.0, 1.0, 0.01).get_vwap_for_volume(True, 0.05).result_price
    assert book.builds == 3


def test_a_replay_book_answers_every_read_and_fill_as_a_book_rebuilt_each_quote() -> None:
    """Random quotes, reads (best prices, the first rows, whole sides, volume queries) and the
    engine's MARKET and LIMIT fills, on a ReplayBook and on Hummingbot's book refilled for each
    quote (the replay's books before it): the same answers and the same fills, event by event."""
    asyncio.run(_same_as_rebuilt())


async def _same_as_rebuilt() -> None:
    from hummingbot.core.event.event_forwarder import SourceInfoEventForwarder
    from hummingbot.core.event.events import MarketEvent

    rng = random.Random(11)
    n = 400
    mids = [30_000.0]
    for _ in range(n - 1):
        mids.append(mids[-1] if rng.random() < 0.2 else mids[-1] * (1 + rng.gauss(0, 4e-4)))
    spreads = [rng.uniform(0.5, 6) for _ in range(n)]
    depths = [rng.uniform(0.002, 0.05) for _ in range(n)]
    series = _series(mids, spreads, depths)
    worlds = []
    for name in ("rebuilt", "replay"):
        ex = PaperExchange(name=f"same-{name}")
        ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
        ex.set_balance("USDT", Decimal(10_000_000))
        ex.set_balance("BTC", Decimal(300))
        events: list[tuple[Any, ...]] = []
        forwarder = SourceInfoEventForwarder(lambda tag, _src, e, events=events: events.append(
            (tag, getattr(e, "price", None), getattr(e, "amount", None), getattr(e, "base_asset_amount", None))))
        for event in (MarketEvent.OrderFilled, MarketEvent.BuyOrderCompleted, MarketEvent.SellOrderCompleted,
                      MarketEvent.OrderFailure, MarketEvent.OrderCancelled):
            ex.add_listener(event, forwarder)
        clock = Clock(ClockMode.BACKTEST, 1.0, 100.0, 100.0 + n + 20)
        clock.add_iterator(ex)
        worlds.append((ex, events, clock, MarketBook(series, [ex]), forwarder))  # listeners are held weakly
    reads: list[list[Any]] = [[], []]
    changed = changed_ticks(series)
    ops = [rng.random() for _ in range(n * 4)]
    for i in range(n):
        for k, (ex, _events, clock, market, _heard) in enumerate(worlds):
            if k == 0:  # the old way: Hummingbot's book at the first quote, refilled in place after
                if changed[i]:
                    mid, step = mids[i], max(mids[i] * spreads[i] / 1e4, mids[i] * 1e-6)
                    low, high = mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step
                    if i == 0:
                        ex.set_balanced_order_book(PAIR, mid, low, high, step, depths[i])
                    else:
                        book = ex.get_order_book(PAIR)
                        book.clear_traded_order_book()
                        book.apply_snapshot(*balanced_rows(mid, low, high, step, depths[i]), 1)
            else:
                market.show(i)
            book = ex.get_order_book(PAIR)
            op, size = ops[4 * i], 0.001 + 0.2 * ops[4 * i + 1]
            out = reads[k]
            out.append((book.get_price(True), book.get_price(False)))
            if op < 0.15:
                out.append(list(book.bid_entries())[:3])
            elif op < 0.3:
                asks = book.ask_entries()
                out.append((next(asks), next(asks)))
            elif op < 0.4:
                out.append(book.get_vwap_for_volume(op < 0.35, size).result_price)
            elif op < 0.5:
                out.append(book.get_price_for_volume(op < 0.45, size).result_price)
            elif op < 0.6:
                (ex.buy if op < 0.55 else ex.sell)(PAIR, Decimal(repr(round(size, 4))), OrderType.MARKET)
            elif op < 0.65:
                touch = book.get_price(op < 0.625)
                price = Decimal(repr(round(touch * (1 + (0.0004 if op < 0.625 else -0.0004)), 1)))
                (ex.sell if op < 0.625 else ex.buy)(PAIR, Decimal("0.01"), OrderType.LIMIT, price)
            clock.backtest_til(100.0 + i)
            out.append((next(book.ask_entries()), next(book.bid_entries())))
    assert reads[0] == reads[1]
    assert worlds[0][1] == worlds[1][1] and len(worlds[0][1]) > 50
    replay_book = worlds[1][0].get_order_book(PAIR)
    assert isinstance(replay_book, ReplayBook) and replay_book.builds < worlds[1][3].rebuilds


def test_a_pending_quotes_depth_is_the_walk_of_its_rows_without_building_them() -> None:
    """The council's depth input (`governed._depth_within`) off a pending quote: the same sum
    as walking the built rows, the book still unbuilt; once built, the rows are walked."""
    from lyra_strategies.governed import _depth_within

    rng = random.Random(5)
    for _ in range(300):
        mid = rng.uniform(1, 2e5)
        step = max(mid * rng.uniform(0, 40) / 1e4, mid * 1e-6)
        quote = (mid, mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step, step, rng.uniform(1e-4, 3))
        book = ReplayBook()
        book.set_quote(*quote)  # the first quote is built
        book.set_quote(*quote)
        exchange = type("Exchange", (), {"get_order_book": lambda self, pair, book=book: book})()
        at, band = mid * (1 + rng.uniform(-0.01, 0.01)), rng.choice([0.01, 0.002, 0.05])
        pending = _depth_within(exchange, PAIR, at, band)
        assert book.builds == 1
        book.build()
        assert book.depth_within(at, band) is None
        assert pending == _depth_within(exchange, PAIR, at, band)  # exact float equality


def test_a_snapshot_is_what_pydantics_model_construct_builds() -> None:
    from lyra_governor.models import MarketSnapshot
    from lyra_strategies import governed

    assert governed._PLAIN_SNAPSHOT  # else the fast path is off (and this test checks nothing)
    quote = governed._Quote("binance_paper_trade", PAIR, (59_994.125, 60_006.5, True))
    ours = quote.snapshot(1_700_000_000.0, 1234.5, 0.25)
    theirs = MarketSnapshot.model_construct(
        connector=quote.connector, trading_pair=quote.pair, timestamp=1_700_000_000.0, mid_price=quote.mid,
        best_bid=quote.bid, best_ask=quote.ask, spread_pct=quote.spread_pct, depth_usd=1234.5, data_age_s=0.25,
        **governed._SNAPSHOT_DEFAULTS,
    )
    assert ours == theirs and list(ours.__dict__.items()) == list(theirs.__dict__.items())
    assert ours.model_fields_set == theirs.model_fields_set
    assert (ours.__pydantic_extra__, ours.__pydantic_private__) == (theirs.__pydantic_extra__, None)
    assert ours.model_dump_json() == theirs.model_dump_json() and hash(ours) == hash(theirs)


def test_a_spread_wider_than_the_book_keeps_every_price_positive() -> None:
    """A recording's 500 bps spread (an illiquid moment) put half of the 40 bid levels at or
    below zero, on the first quote's Hummingbot book as on the refilled one: a MARKET sell
    walking it would have sold for nothing or less."""
    asyncio.run(_wide_spread())


async def _wide_spread() -> None:
    series = _series([20_000.0, 20_100.0], [500.0, 900.0], [0.01, 0.01])
    account = PaperExchange(name="wide")
    account.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
    market = MarketBook(series, [account])
    for i in range(2):
        market.show(i)
        bids, asks = _rows(account.get_order_book(PAIR))
        step = series.mid[i] * series.spread_bps[i] / 1e4
        assert bids and asks and min(r.price for r in bids) >= step / 2 > 0
        assert bids[0].price == series.mid[i] - step / 2 and len(asks) == BOOK_LEVELS


def test_a_recordings_own_bid_and_ask_are_the_books_best_prices_exactly() -> None:
    """A recording's bid and ask (20066.44, 20070.46) are the book's first levels, exactly: the
    book built them as mid -/+ half its spread in doubles, an ulp off for 59 % of random
    two-decimal quotes (20066.439999999995), and a MARKET sell filled at that price. Pending,
    built, on the first quote's Hummingbot book and the shared ReplayBook alike; the deeper
    levels keep their step."""
    asyncio.run(_exact_best())


async def _exact_best() -> None:
    rng = random.Random(5)
    bids = [round(rng.uniform(15_000, 70_000), 2) for _ in range(60)]
    asks = [round(b + rng.choice([0.01, 0.1, 1.37, 4.02]), 2) for b in bids]
    mids = [(b + a) / 2 for b, a in zip(bids, asks, strict=True)]
    off = sum(repr(m - (a - b) / 2) != repr(b) for b, a, m in zip(bids, asks, mids, strict=True))
    assert off > 10  # the old construction's bids
    series = _series(mids, [(a - b) / m * 1e4 for b, a, m in zip(bids, asks, mids, strict=True)], [0.5] * 60)
    series.bid, series.ask = np.array(bids), np.array(asks)
    account = PaperExchange(name="exact")
    account.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
    account.set_balance("BTC", Decimal(100))
    fills: list[float] = []
    from hummingbot.core.event.event_forwarder import SourceInfoEventForwarder
    from hummingbot.core.event.events import MarketEvent

    heard = SourceInfoEventForwarder(lambda _tag, _src, e: fills.append(float(e.price)))
    account.add_listener(MarketEvent.OrderFilled, heard)
    clock = Clock(ClockMode.BACKTEST, 1.0, 100.0, 200.0)
    clock.add_iterator(account)
    market = MarketBook(series, [account])
    for i in range(60):
        market.show(i)
        clock.backtest_til(100.0 + i)
        book = account.get_order_book(PAIR)
        assert (repr(book.get_price(False)), repr(book.get_price(True))) == (repr(bids[i]), repr(asks[i]))
        if i % 3 == 0:
            rows = _rows(book)  # built
            step = max(mids[i] * series.spread_bps[i] / 1e4, mids[i] * 1e-6)
            assert (rows[0][0].price, rows[1][0].price) == (bids[i], asks[i])
            assert rows[0][1].price == bids[i] - step and rows[1][1].price == asks[i] + step
        if i % 10 == 2:
            account.sell(PAIR, Decimal("0.1"), OrderType.MARKET)  # filled a few seconds on, at that bid
    assert len(fills) == 6 and all(repr(price) in {repr(b) for b in bids} for price in fills), fills


def test_a_stub_quote_wider_than_its_mid_keeps_its_recorded_bid() -> None:
    """A recording's stub quote (bid 1, ask 100,000: a thin market's resting placeholders; any
    quote whose ask is more than three times its bid) has a spread wider than its mid. The
    book, stopping at half a step above zero (49,999.5 here), had no bid level at all: every
    `get_price` of the bid side raised "Order book is empty - no price quote is possible", on
    the first quote's Hummingbot book as on the shared one. It now keeps the recorded bid as
    its one bid level; a normal quote after it is built as before."""
    asyncio.run(_stub_quote())


async def _stub_quote() -> None:
    bids, asks = [1.0, 20_000.0, 1.0], [100_000.0, 20_001.0, 100_000.0]
    mids = [(b + a) / 2 for b, a in zip(bids, asks, strict=True)]
    series = _series(mids, [(a - b) / m * 1e4 for b, a, m in zip(bids, asks, mids, strict=True)], [0.01] * 3)
    series.bid, series.ask = np.array(bids), np.array(asks)
    account = PaperExchange(name="stub")
    account.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
    market = MarketBook(series, [account])
    for i, sizes in enumerate(((1, BOOK_LEVELS), (BOOK_LEVELS, BOOK_LEVELS), (1, BOOK_LEVELS))):
        market.show(i)
        book_bids, book_asks = _rows(account.get_order_book(PAIR))
        assert (len(book_bids), len(book_asks)) == sizes
        assert (book_bids[0].price, book_asks[0].price) == (bids[i], asks[i])
        assert float(account.get_price(PAIR, False)) == bids[i] and float(account.get_price(PAIR, True)) == asks[i]
