"""What one governor has seen of the markets: latest snapshots, FX rates, reference mids.

In memory, per process, no I/O: strategies push what they see (`observe`, `observe_fx`) and
the review reads it back (`history` for the time-weighted flash-move reference, `usd_per_quote`
to value an order, `snapshot` for the council's context).

Shared: the governors of one process that have the same settings (a paper replay's eight) may
share one watch (`Governor(..., watch=)`): their observations of one market are the same facts,
and each second's bucket of a market's reference history is then filled once, not once per
governor. A snapshot already taken in (the very object: the replay's scripts hand their
governors one snapshot per market and second, `governed._Quote`) is not taken in again, which
changes nothing: observing the latest snapshot a second time leaves the history as it was.
Every governor still sees every observation of its own, and each other's: the reference is never
absent where one governor alone would have had it, and stays time-weighted (`risk.MidHistory`).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from lyra_governor import risk
from lyra_governor.config import Settings
from lyra_governor.market_context import DAY_S, SAMPLE_S, SampledMids
from lyra_governor.models import Denial, MarketSnapshot

Market = tuple[str, str]  # (connector, trading pair)
Taken = tuple[MarketSnapshot, Decimal | None, tuple[float, float]]  # see `MarketWatch.taken`
_ZERO = Decimal(0)  # a Decimal compared with a Decimal: no int converted each time
_UNKNOWN: Any = object()  # not in a rate cache yet (None is a rate: no rate)
_POINTS_KEPT = int(DAY_S / SAMPLE_S) + 2  # `MarketHistory`'s bound on a market's sampled mids


class _Feed:
    """One market as the watch keeps it: the latest snapshot taken in, the flash-move
    reference's history and the council's sampled mids (the deque `points` holds for it).
    One dict read a snapshot reaches all three (they were three dicts of the watch, each read
    and written again for every snapshot)."""

    __slots__ = ("history", "points", "snapshot")

    def __init__(self, history: risk.MidHistory, points: deque[tuple[float, Decimal | float]]) -> None:
        self.history, self.points = history, points
        self.snapshot: MarketSnapshot | None = None


class MarketWatch:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fx_observed: dict[str, Decimal] = {}
        self._feeds: dict[Market, _Feed] = {}
        #: the council's sampled mids per market (`MarketHistory`'s points), filled with the history:
        #: shared with the watch, so each observation taken in here is sampled once
        self.points: SampledMids = {}
        # `usd_per_quote`'s answers by quote and by trading pair (what each observation's loss mark
        # asks): they depend on the observed rates and the settings only, forgotten when either changes
        self._usd: dict[str, Decimal | None] = {}
        self._usd_of_pair: dict[str, Decimal | None] = {}
        #: per market, the last snapshot taken in and what each governor takes from it (`take_in`):
        #: (snapshot, its USD mid, (spread %, depth USD)), worked out once for the governors sharing
        #: this watch; forgotten with the rates (the mark depends on them) and on a new snapshot
        self.taken: dict[Market, Taken] = {}

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings
        self._usd.clear()
        self._usd_of_pair.clear()
        self.taken.clear()

    def take_in(self, snapshot: MarketSnapshot, fields: dict[str, Any], key: Market) -> Taken:
        """A snapshot new to the watch (or to its rates; `Governor._observe` asks `taken` first):
        the latest book facts of its market; its mid joins the flash-move reference's history and
        is sampled for the council (`MarketHistory.observe`'s rule at its default `SAMPLE_S` and
        `DAY_S`, into `points`); and what each governor takes from it, kept in `taken`: its mid
        in USD at `usd_per_quote_of` its pair, None unless finite and positive (the loss limits'
        mark), and its spread and depth (the council's book). `fields` are the snapshot's
        (`__dict__`: a dict item, not a pydantic attribute read), `key` its market.

        The very snapshot taken in already changes no history (observing the latest snapshot
        again would leave it as it was): only what it gives is worked out again.

        Why one frame: the watch's `observe`, `MarketHistory.observe` and `taken_in` it replaces,
        with the four calls below them, cost ~24k instructions a new snapshot (three a simulated
        second in bench/tick_instructions.py); tests/unit/guard/test_take_in.py checks that it
        leaves what they left."""
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feed(key)
        if feed.snapshot is not snapshot:
            feed.snapshot = snapshot
            ts, mid = fields["timestamp"], fields["mid_price"]
            feed.history.observe(ts, mid)
            points = feed.points
            if points:
                slot = points[-1][0]
                if ts < slot + SAMPLE_S:
                    if ts >= slot:
                        points[-1] = (slot, mid)  # same sample slot: keep its latest price
                else:
                    points.append((ts, mid))
            else:
                points.append((ts, mid))
        pair, mid = fields["trading_pair"], fields["mid_price"]
        usd = self._usd_of_pair.get(pair, _UNKNOWN)
        if usd is _UNKNOWN:
            usd = self.usd_per_quote_of(pair)
        usd_mid: Decimal | None = None
        if usd is not None and mid.is_finite():
            usd_mid = mid * usd
            if not (usd_mid.is_finite() and usd_mid > _ZERO):
                usd_mid = None
        taken = self.taken[key] = (snapshot, usd_mid, (fields["spread_pct"], fields["depth_usd"]))
        return taken

    def _feed(self, key: Market) -> _Feed:
        """A market's first snapshot: its history, and its sampled mids unless the points had them
        (a `MarketHistory` sharing them may have sampled it first)."""
        points = self.points.get(key)
        if points is None:
            points = self.points[key] = deque(maxlen=_POINTS_KEPT)
        feed = self._feeds[key] = _Feed(risk.MidHistory(self._settings.risk.reference_window_s), points)
        return feed

    def observe_fx(self, currency: str, usd_per_unit: Decimal) -> None:
        """An observed USD rate (e.g. from an AUD-USDT book). It wins over the configured one only
        within `risk.fx_band_pct` of it; outside the band orders in that currency are denied
        (FX_RATE_OUT_OF_BAND) until an observation inside the band arrives."""
        if usd_per_unit.is_finite() and usd_per_unit > 0:
            self._fx_observed[currency] = usd_per_unit
            self._usd.clear()
            self._usd_of_pair.clear()
            self.taken.clear()

    def usd_per_quote(self, quote: str) -> Decimal | None:
        try:
            return self._usd[quote]
        except KeyError:
            rate = self._usd[quote] = self._rate(quote)
            return rate

    def usd_per_quote_of(self, trading_pair: str) -> Decimal | None:
        """`usd_per_quote` of the pair's quote currency ("BTC-USDT": USDT's)."""
        try:
            return self._usd_of_pair[trading_pair]
        except KeyError:
            rate = self._usd_of_pair[trading_pair] = self.usd_per_quote(trading_pair.rpartition("-")[2])
            return rate

    def _rate(self, quote: str) -> Decimal | None:
        observed = self._fx_observed.get(quote)
        configured = self._settings.fx_usd.get(quote)
        if observed is not None and (configured is None or self.fx_denial(quote) is None):
            return observed
        return configured

    def fx_denial(self, quote: str) -> Denial | None:
        """FX_RATE_OUT_OF_BAND when the observed rate is outside the band around the configured one."""
        observed = self._fx_observed.get(quote)
        if observed is None:  # `check_fx` passes it: nothing observed, nothing out of band
            return None
        return risk.check_fx(observed, self._settings.fx_usd.get(quote), self._settings.risk.fx_band_pct, quote)

    def history(self, connector: str, pair: str) -> risk.MidHistory | None:
        feed = self._feeds.get((connector, pair))
        return None if feed is None else feed.history

    def snapshot(self, connector: str, pair: str) -> MarketSnapshot | None:
        feed = self._feeds.get((connector, pair))
        return None if feed is None else feed.snapshot
