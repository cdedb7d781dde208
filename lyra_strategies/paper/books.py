"""The replay's order books: each market's paper book, rebuilt only when its quote changed.

Why this exists: the replay showed every market's quote on Hummingbot's paper books with
`MockPaperExchange.set_balanced_order_book` every simulated second, which builds a new
`CompositeOrderBook`, 80 `OrderBookRow`s one Python call each, a trade listener and a
`TradingPair` each time (50-80 us a book, three books a second: about a tenth of a run).

Here a market's book is rebuilt only on the seconds its quote differs from the one it shows
(a recording repeats quotes; a stale feed freezes them), and a rebuild refills the same
`CompositeOrderBook` in place: the same rows Hummingbot's `c_set_balanced_order_book` builds
(the same double arithmetic, level by level), the same snapshot update id, and the liquidity
its MARKET fills took (the composite's traded book) given back, as a fresh book starts with
none. What the matching engine and every reader see is Hummingbot's book for that quote, bit
for bit; only the allocations are gone.

Each account on a connector trades against the same book (seven of the eight scripts quote on
binance): the first quote builds every account's own book, so each engine learns the pair
(its `TradingPair`, its trade listener), and from the second quote on one `ReplayBook` (with
the first account's trade listener) is shared. Each account's orders and balances stay its own.

A `ReplayBook` builds a quote's rows only when something reads past its best bid or ask:
most seconds, nothing does (see `ReplayBook`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

from hummingbot.core.data_type.composite_order_book import CompositeOrderBook
from hummingbot.core.data_type.order_book_row import OrderBookRow
from hummingbot.core.event.events import OrderBookEvent

from lyra_strategies.paper.feed import MarketSeries

BOOK_LEVELS = 40
_new_row = tuple.__new__  # OrderBookRow(...) through its Python __new__ costs twice as much


def balanced_rows(
    mid: float, min_price: float, max_price: float, step: float, volume_step: float,
    best: tuple[float, float] | None = None,
) -> tuple[list[OrderBookRow], list[OrderBookRow]]:
    """(bids, asks) exactly as `MockPaperExchange.c_set_balanced_order_book` builds them: the
    first level half a step from mid, each next one a step further (added, not multiplied,
    as Hummingbot does, so the prices are its doubles) and `volume_step` deeper. With `best`
    (a recording's own bid and ask) the first levels are those prices, exactly: mid - step/2
    in doubles is often an ulp off the recorded bid (20066.440000000002 for 20066.44), and a
    MARKET fill took that price."""
    bid, ask = best if best is not None else (mid - step / 2, mid + step / 2)
    bids: list[OrderBookRow] = []
    price, size = bid, volume_step
    while price >= min_price:
        bids.append(_new_row(OrderBookRow, (price, size, 1)))
        price -= step
        size += volume_step
    asks: list[OrderBookRow] = []
    price, size = ask, volume_step
    while price <= max_price:
        asks.append(_new_row(OrderBookRow, (price, size, 1)))
        price += step
        size += volume_step
    return bids, asks


def changed_ticks(series: MarketSeries) -> list[bool]:
    """Per tick: does this market show a quote other than the last one it showed? False
    before its first quote (no book: nothing may see the future) and while a quote repeats."""
    out: list[bool] = []
    last: tuple[float, ...] | None = None
    columns = [series.mid, series.spread_bps, series.depth_step]
    if series.bid is not None and series.ask is not None:  # a recording's own prices: they are the quote
        columns += [series.bid, series.ask]
    for quote in zip(*(c.tolist() for c in columns), strict=True):
        fresh = math.isfinite(quote[0]) and quote != last  # NaN: no quote yet
        if fresh:
            last = quote
        out.append(fresh)
    return out


class ReplayBook(CompositeOrderBook):  # type: ignore[misc]
    """Hummingbot's `CompositeOrderBook` whose levels below the best bid and ask are built
    only when something reads past them.

    Why: the replay's books take a new quote every second (the generator moves every market
    every second), and building a quote's ~80 rows and Hummingbot's C++ book from them took
    about 46 us a book: with three books, a fifth of a three-script replay. Almost every read
    of a second is a best price (every script's observation, executors' prices, the engine's
    check of resting limits against the touch); the depth is read every 10 simulated seconds
    (the council's depth input) and by MARKET fills and volume queries.

    How it stays Hummingbot's book: every read of the rows, by Hummingbot's code as by ours
    (`get_price`, `simulate_buy`/`simulate_sell` behind the engine's MARKET fills,
    `get_vwap_for_volume` and the other volume queries, `snapshot`, Lyra's depth), goes through
    `bid_entries`/`ask_entries` (the Cython methods call them as Python methods, so these
    overrides are theirs too). While a quote is pending, those yield its best level, the row
    Hummingbot's loop builds first (`balanced_rows`' first row: the same doubles), and a read
    past it builds the whole book first, then goes on from its second row. A quote's book
    starts with no liquidity taken (the traded book is emptied when it is set, as a fresh book
    has none), and the engine records a MARKET fill's take (`record_filled_order`, also a
    Python call) only once the book is built. The C++ book keeps the last built quote until
    then: nothing reads it but through these methods, except its size (`get_price` refuses an
    empty side), so a quote is pending only while the last built one has rows on both sides."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: tuple[float, float, float, float, float, tuple[float, float]] | None = None
        self._best: tuple[OrderBookRow, OrderBookRow] | None = None
        self._sized = False  # the C++ book has rows on both sides (Hummingbot checks its size)
        self.builds = 0  # quotes whose rows were built

    def set_quote(
        self, mid: float, low: float, high: float, step: float, volume: float, best: tuple[float, float] | None = None
    ) -> None:
        """Show this balanced quote from now on (Hummingbot's `set_balanced_order_book` book;
        with `best`, its first levels at those prices: `balanced_rows`)."""
        self.clear_traded_order_book()
        quote = best if best is not None else (mid - step / 2, mid + step / 2)
        bid, ask = quote
        if self._sized and bid >= low and ask <= high:  # a level each side (always, after the first)
            self._pending = (mid, low, high, step, volume, quote)
            self._best = (_new_row(OrderBookRow, (bid, volume, 1)), _new_row(OrderBookRow, (ask, volume, 1)))
        else:  # the first quote, or an empty side: built now, as Hummingbot builds it
            self._pending = None
            self._build(mid, low, high, step, volume, quote)

    def _build(
        self, mid: float, low: float, high: float, step: float, volume: float, best: tuple[float, float]
    ) -> None:
        bids, asks = balanced_rows(mid, low, high, step, volume, best)
        CompositeOrderBook.apply_snapshot(self, bids, asks, 1)
        self._sized = bool(bids) and bool(asks)
        self.builds += 1

    def build(self) -> None:
        """Build the pending quote's rows (a no-op once built)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._build(*pending)

    def get_price(self, is_buy: bool) -> float:
        """Hummingbot's answer (the first row of the side: `c_get_price`), read off the pending
        quote's best level without two generators; Hummingbot's own code calls `c_get_price`,
        which reads the same rows through `ask_entries`/`bid_entries`."""
        best = self._best
        if self._pending is None or best is None:
            return cast(float, CompositeOrderBook.get_price(self, is_buy))
        return cast(float, best[1].price if is_buy else best[0].price)

    def depth_within(self, mid: float, band: float) -> float | None:
        """`lyra_strategies.governed._depth_within`'s walk of the rows (quote value within
        `band` of `mid`, bids then asks, row by row) over the pending quote's rows as
        `balanced_rows` makes them, without building the book: the same doubles, the same sum
        in the same order. None once the book is built (then the rows are walked)."""
        pending = self._pending
        if pending is None:
            return None
        _, low, high, step, volume, (bid, ask) = pending
        total = 0.0
        price, size = bid, volume
        while price >= low:
            if price < mid * (1 - band):
                break
            total += price * size
            price -= step
            size += volume
        price, size = ask, volume
        while price <= high:
            if price > mid * (1 + band):
                break
            total += price * size
            price += step
            size += volume
        return total

    def bid_entries(self) -> Iterator[OrderBookRow]:
        if self._pending is None:
            return cast(Iterator[OrderBookRow], CompositeOrderBook.bid_entries(self))
        return self._from_best(0)

    def ask_entries(self) -> Iterator[OrderBookRow]:
        if self._pending is None:
            return cast(Iterator[OrderBookRow], CompositeOrderBook.ask_entries(self))
        return self._from_best(1)

    def _from_best(self, side: int) -> Iterator[OrderBookRow]:
        assert self._best is not None
        yield self._best[side]
        self.build()  # a read past the best price: the whole book, then its rows after the best
        rows = CompositeOrderBook.ask_entries(self) if side else CompositeOrderBook.bid_entries(self)
        next(rows, None)
        yield from rows

    def record_filled_order(self, order_fill_event: Any) -> None:
        """The engine takes a MARKET fill's liquidity (the traded book) from the built rows."""
        self.build()
        CompositeOrderBook.record_filled_order(self, order_fill_event)

    def original_bid_entries(self) -> Iterator[OrderBookRow]:
        self.build()
        return cast(Iterator[OrderBookRow], CompositeOrderBook.original_bid_entries(self))

    def original_ask_entries(self) -> Iterator[OrderBookRow]:
        self.build()
        return cast(Iterator[OrderBookRow], CompositeOrderBook.original_ask_entries(self))

    def apply_snapshot(self, bids: Any, asks: Any, update_id: int) -> None:
        self._pending, self._sized = None, False
        CompositeOrderBook.apply_snapshot(self, bids, asks, update_id)

    def apply_diffs(self, bids: Any, asks: Any, update_id: int) -> None:
        self.build()
        self._sized = False
        CompositeOrderBook.apply_diffs(self, bids, asks, update_id)


class MarketBook:
    """One market of the feed as the replay walks it: its quotes as plain floats (no numpy
    scalar per read), the ticks its quote changes, and the paper book every account on its
    connector trades against."""

    def __init__(self, series: MarketSeries, exchanges: list[Any]) -> None:
        self.connector, self.trading_pair = series.connector, series.trading_pair
        self.exchanges = exchanges
        self.mid: list[float] = series.mid.tolist()
        self.spread_bps: list[float] = series.spread_bps.tolist()
        self.depth_step: list[float] = series.depth_step.tolist()
        self.updated_at: list[float] = series.updated_at.tolist()
        bid, ask = series.bid, series.ask  # a recording's own best prices, shown exactly
        self.best: list[tuple[float, float]] | None = (
            list(zip(bid.tolist(), ask.tolist(), strict=True)) if bid is not None and ask is not None else None
        )
        self.changed = changed_ticks(series)
        self.book: Any = None  # the first account's book, then the shared ReplayBook
        self._shared = False
        self.rebuilds = 0

    def show(self, i: int) -> Decimal | None:
        """Put tick i's quote on the books if it changed; its mid (for Hummingbot's rate
        oracle) when it did, else None."""
        if not self.changed[i]:
            return None
        mid = self.mid[i]
        step = max(mid * self.spread_bps[i] / 1e4, mid * 1e-6)
        best = self.best[i] if self.best is not None else None
        # a spread wider than 1/BOOK_LEVELS of mid (250 bps: an illiquid market, a recording's
        # bad moment) would put the deepest bids at or below zero: the book stops at half a step,
        # or at the recorded bid when that is lower (a stub quote, bid 1 and ask 100,000: a
        # spread wider than mid, whose bid side was otherwise empty and unpriceable)
        low = max(mid - BOOK_LEVELS * step, step / 2 if best is None else min(step / 2, best[0]))
        high, volume = mid + BOOK_LEVELS * step, self.depth_step[i]
        self.rebuilds += 1
        if self.book is None:  # the first quote: each account's engine learns the pair
            for exchange in self.exchanges:
                exchange.set_balanced_order_book(self.trading_pair, mid, low, high, step, volume)
                if best is not None:  # the recording's own best prices (`balanced_rows`)
                    book = exchange.order_book_tracker._order_books[self.trading_pair]
                    book.apply_snapshot(*balanced_rows(mid, low, high, step, volume, best), 1)
            if self.exchanges:
                self.book = self.exchanges[0].order_book_tracker._order_books[self.trading_pair]
            return Decimal(repr(mid))
        if not self._shared:  # the second quote: one ReplayBook for every account from now on
            shared = ReplayBook()
            for listener in self.book.get_listeners(OrderBookEvent.TradeEvent):  # the first account's
                shared.add_listener(OrderBookEvent.TradeEvent, listener)
            for exchange in self.exchanges:
                exchange.order_book_tracker._order_books[self.trading_pair] = shared
            self.book, self._shared = shared, True
        self.book.set_quote(mid, low, high, step, volume, best)
        return Decimal(repr(mid))

    def seen_at(self, i: int, now: float) -> float:
        """When the quote shown at tick i was recorded (`now` before the first quote)."""
        seen = self.updated_at[i]
        return seen if math.isfinite(seen) else now
