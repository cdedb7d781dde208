"""What one governor has seen of the markets: latest snapshots, FX rates, reference mids.

In memory, per process, no I/O: strategies push what they see (`observe`, `observe_fx`) and
the review reads it back (`history` for the time-weighted flash-move reference, `usd_per_quote`
to value an order, `snapshot` for the council's context).
"""

from __future__ import annotations

from decimal import Decimal

from lyra_governor import risk
from lyra_governor.config import Settings
from lyra_governor.models import Denial, MarketSnapshot

Market = tuple[str, str]  # (connector, trading pair)


class MarketWatch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fx_observed: dict[str, Decimal] = {}
        self._snapshots: dict[Market, MarketSnapshot] = {}
        self._history: dict[Market, risk.MidHistory] = {}  # time-weighted reference per market

    def observe(self, snapshot: MarketSnapshot) -> None:
        """The latest book facts of one market; its mid joins the reference's history."""
        key = (snapshot.connector, snapshot.trading_pair)
        self._snapshots[key] = snapshot
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = risk.MidHistory(self.settings.risk.reference_window_s)
        history.observe(snapshot.timestamp, snapshot.mid_price)

    def observe_fx(self, currency: str, usd_per_unit: Decimal) -> None:
        """An observed USD rate (e.g. from an AUD-USDT book). It wins over the configured one only
        within `risk.fx_band_pct` of it; outside the band orders in that currency are denied
        (FX_RATE_OUT_OF_BAND) until an observation inside the band arrives."""
        if usd_per_unit.is_finite() and usd_per_unit > 0:
            self._fx_observed[currency] = usd_per_unit

    def usd_per_quote(self, quote: str) -> Decimal | None:
        observed = self._fx_observed.get(quote)
        configured = self.settings.fx_usd.get(quote)
        if observed is not None and (configured is None or self.fx_denial(quote) is None):
            return observed
        return configured

    def fx_denial(self, quote: str) -> Denial | None:
        """FX_RATE_OUT_OF_BAND when the observed rate is outside the band around the configured one."""
        observed = self._fx_observed.get(quote)
        if observed is None:  # `check_fx` passes it: nothing observed, nothing out of band
            return None
        return risk.check_fx(observed, self.settings.fx_usd.get(quote), self.settings.risk.fx_band_pct, quote)

    def history(self, connector: str, pair: str) -> risk.MidHistory | None:
        return self._history.get((connector, pair))

    def snapshot(self, connector: str, pair: str) -> MarketSnapshot | None:
        return self._snapshots.get((connector, pair))
