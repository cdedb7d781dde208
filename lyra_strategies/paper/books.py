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
(its `TradingPair`, its trade listener), and from the second quote on the first account's book
is shared. Each account's orders and balances stay its own.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hummingbot.core.data_type.order_book_row import OrderBookRow

from lyra_strategies.paper.feed import MarketSeries

BOOK_LEVELS = 40
_new_row = tuple.__new__  # OrderBookRow(...) through its Python __new__ costs twice as much


def balanced_rows(
    mid: float, min_price: float, max_price: float, step: float, volume_step: float
) -> tuple[list[OrderBookRow], list[OrderBookRow]]:
    """(bids, asks) exactly as `MockPaperExchange.c_set_balanced_order_book` builds them: the
    first level half a step from mid, each next one a step further (added, not multiplied,
    as Hummingbot does, so the prices are its doubles) and `volume_step` deeper."""
    bids: list[OrderBookRow] = []
    price, size = mid - step / 2, volume_step
    while price >= min_price:
        bids.append(_new_row(OrderBookRow, (price, size, 1)))
        price -= step
        size += volume_step
    asks: list[OrderBookRow] = []
    price, size = mid + step / 2, volume_step
    while price <= max_price:
        asks.append(_new_row(OrderBookRow, (price, size, 1)))
        price += step
        size += volume_step
    return bids, asks


def changed_ticks(series: MarketSeries) -> list[bool]:
    """Per tick: does this market show a quote other than the last one it showed? False
    before its first quote (no book: nothing may see the future) and while a quote repeats."""
    out: list[bool] = []
    last: tuple[float, float, float] | None = None
    for quote in zip(series.mid.tolist(), series.spread_bps.tolist(), series.depth_step.tolist(), strict=True):
        fresh = math.isfinite(quote[0]) and quote != last  # NaN: no quote yet
        if fresh:
            last = quote
        out.append(fresh)
    return out


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
        self.changed = changed_ticks(series)
        self.book: Any = None  # the shared CompositeOrderBook, once the market has one
        self._shared = False
        self.rebuilds = 0

    def show(self, i: int) -> Decimal | None:
        """Put tick i's quote on the books if it changed; its mid (for Hummingbot's rate
        oracle) when it did, else None."""
        if not self.changed[i]:
            return None
        mid = self.mid[i]
        step = max(mid * self.spread_bps[i] / 1e4, mid * 1e-6)
        low, high, volume = mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step, self.depth_step[i]
        self.rebuilds += 1
        if self.book is None:  # the first quote: each account's engine learns the pair
            for exchange in self.exchanges:
                exchange.set_balanced_order_book(self.trading_pair, mid, low, high, step, volume)
            if self.exchanges:
                self.book = self.exchanges[0].order_book_tracker._order_books[self.trading_pair]
            return Decimal(repr(mid))
        bids, asks = balanced_rows(mid, low, high, step, volume)
        self.book.clear_traded_order_book()
        self.book.apply_snapshot(bids, asks, 1)
        if not self._shared:
            for exchange in self.exchanges[1:]:
                exchange.order_book_tracker._order_books[self.trading_pair] = self.book
            self._shared = True
        return Decimal(repr(mid))

    def seen_at(self, i: int, now: float) -> float:
        """When the quote shown at tick i was recorded (`now` before the first quote)."""
        seen = self.updated_at[i]
        return seen if math.isfinite(seen) else now
