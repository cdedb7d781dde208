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

from decimal import Decimal
from typing import Any

from lyra_governor import risk
from lyra_governor.config import Settings
from lyra_governor.market_context import SampledMids
from lyra_governor.models import Denial, MarketSnapshot

Market = tuple[str, str]  # (connector, trading pair)
Taken = tuple[MarketSnapshot, Decimal | None, tuple[float, float]]  # see `MarketWatch.taken`
_ZERO = Decimal(0)  # a Decimal compared with a Decimal: no int converted each time


class MarketWatch:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fx_observed: dict[str, Decimal] = {}
        self._snapshots: dict[Market, MarketSnapshot] = {}
        self._history: dict[Market, risk.MidHistory] = {}  # time-weighted reference per market
        #: the council's sampled mids per market (`MarketHistory`'s points), filled with the history:
        #: shared with the watch, so each observation taken in here is sampled once
        self.points: SampledMids = {}
        # `usd_per_quote`'s answers by quote and by trading pair (what each observation's loss mark
        # asks): they depend on the observed rates and the settings only, forgotten when either changes
        self._usd: dict[str, Decimal | None] = {}
        self._usd_of_pair: dict[str, Decimal | None] = {}
        #: per market, the last snapshot taken in and what each governor takes from it (`taken_in`):
        #: (snapshot, its USD mid (`_usd_mid`), (spread %, depth USD)), worked out once for the governors sharing
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

    def observe(self, snapshot: MarketSnapshot) -> bool:
        """The latest book facts of one market; its mid joins the reference's history. False when
        this very snapshot was taken in already (then its mid is in `points` too, see `Governor`)."""
        fields = snapshot.__dict__  # the fields where pydantic keeps them: a dict item, not an attribute read
        key = (fields["connector"], fields["trading_pair"])
        if self._snapshots.get(key) is snapshot:
            return False  # taken in already (by a governor sharing this watch): the same again changes nothing
        self._snapshots[key] = snapshot
        self.taken.pop(key, None)  # what was taken from the one before
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = risk.MidHistory(self._settings.risk.reference_window_s)
        history.observe(fields["timestamp"], fields["mid_price"])
        return True

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

    def taken_in(self, snapshot: MarketSnapshot, key: Market) -> Taken:
        """What a governor takes from `snapshot` of the market `key`, once `observe` has taken it in
        (the latest: `taken` keeps it for the governors that hand it the same one)."""
        fields = snapshot.__dict__
        taken = self.taken[key] = (snapshot, self._usd_mid(fields), (fields["spread_pct"], fields["depth_usd"]))
        return taken

    def _usd_mid(self, fields: dict[str, Any]) -> Decimal | None:
        """The snapshot's mid in USD at `usd_per_quote_of` its pair, None unless finite and
        positive (the loss limits' mark, `Governor._observe`)."""
        usd, mid = self.usd_per_quote_of(fields["trading_pair"]), fields["mid_price"]
        if usd is not None and mid.is_finite():
            usd_mid: Decimal = mid * usd
            if usd_mid.is_finite() and usd_mid > _ZERO:
                return usd_mid
        return None

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
        return self._history.get((connector, pair))

    def snapshot(self, connector: str, pair: str) -> MarketSnapshot | None:
        return self._snapshots.get((connector, pair))
