"""`MarketWatch.take_in` (one frame) leaves what the calls it replaced left: `MidHistory.observe`
of the mid, `MarketHistory.observe`'s sample of it (default `SAMPLE_S`, `DAY_S`) and the USD mark
(`usd_per_quote_of` the pair times the mid, None unless finite and positive), here rebuilt as
the reference from those pieces. Random sequences of snapshots of a few markets: out-of-order,
repeated and same-second timestamps, the very snapshot again, NaN, infinite, zero and negative
mids (built as a replay builds them, unvalidated), new FX rates in between. And `MidHistory.observe`
leaves what it left before its Decimal zero and its `math.floor` test."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lyra_governor import risk
from lyra_governor.config import load_settings
from lyra_governor.market_context import MarketHistory
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import MarketSnapshot

MARKETS = [("binance_paper_trade", "BTC-USDT"), ("btc_markets_paper_trade", "BTC-AUD"), ("okx", "ETH-XYZ")]
MIDS = st.one_of(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100000), places=4),
    st.sampled_from([Decimal(0), Decimal(-5), Decimal("NaN"), Decimal("Infinity"), Decimal("1E-30")]),
)
STEP = st.one_of(
    st.tuples(st.just("snap"), st.integers(0, len(MARKETS) - 1), st.floats(-3, 25, allow_nan=False), MIDS),
    st.tuples(st.just("again"), st.integers(0, len(MARKETS) - 1)),
    st.tuples(st.just("fx"), st.sampled_from([Decimal("0.64"), Decimal("0.66"), Decimal(5)])),
)


class Reference:
    """The watch's observations as `Governor._take_in` made them before `take_in`."""

    def __init__(self, window_s: float, usd_of: Any) -> None:
        self.window_s, self.usd_of = window_s, usd_of
        self.snapshots: dict[tuple[str, str], MarketSnapshot] = {}
        self.history: dict[tuple[str, str], risk.MidHistory] = {}
        self.council = MarketHistory()
        self.taken: dict[tuple[str, str], tuple[Any, ...]] = {}

    def observe(self, snapshot: MarketSnapshot) -> tuple[Any, ...]:
        key = (snapshot.connector, snapshot.trading_pair)
        if self.snapshots.get(key) is not snapshot:
            self.snapshots[key] = snapshot
            self.history.setdefault(key, risk.MidHistory(self.window_s)).observe(snapshot.timestamp, snapshot.mid_price)
            self.council.observe(*key, snapshot.timestamp, snapshot.mid_price, snapshot.spread_pct, snapshot.depth_usd)
        usd, mid, usd_mid = self.usd_of(snapshot.trading_pair), snapshot.mid_price, None
        if usd is not None and mid.is_finite():
            product = mid * usd
            usd_mid = product if product.is_finite() and product > 0 else None
        self.taken[key] = (snapshot, usd_mid, (snapshot.spread_pct, snapshot.depth_usd))
        return self.taken[key]


@hsettings(max_examples=100, deadline=None, phases=[Phase.generate])
@given(st.lists(STEP, max_size=60))
def test_take_in_leaves_what_the_separate_calls_left(steps: list[tuple[Any, ...]]) -> None:
    settings = load_settings(None, use_env=False, db_url="sqlite:///:memory:")
    watch = MarketWatch(settings)
    reference = Reference(settings.risk.reference_window_s, watch.usd_per_quote_of)
    last: dict[int, MarketSnapshot] = {}
    clock = 1_000.0
    for step in steps:
        if step[0] == "fx":
            watch.observe_fx("AUD", step[1])
            reference.taken.clear()  # the marks depend on the rates: worked out again
            continue
        if step[0] == "again":
            if step[1] not in last:
                continue
            snapshot = last[step[1]]
        else:
            _, m, dt, mid = step
            clock += dt
            connector, pair = MARKETS[m]
            snapshot = last[m] = MarketSnapshot.model_construct(connector=connector, trading_pair=pair, timestamp=clock,
                                                mid_price=mid, spread_pct=float(m), depth_usd=dt)  # fmt: skip
        key = (snapshot.connector, snapshot.trading_pair)
        assert watch.take_in(snapshot, snapshot.__dict__, key) == reference.observe(snapshot)
    for key in reference.snapshots:
        assert watch.snapshot(*key) is reference.snapshots[key]
        mine, theirs = watch.history(*key), reference.history[key]
        assert mine is not None and list(mine._buckets) == list(theirs._buckets) and mine.latest == theirs.latest
        assert list(watch.points[key]) == list(reference.council._points[key])
        for now in (clock, clock + 0.5, clock + 7, clock + 70):
            assert mine.reference(now, 5) == theirs.reference(now, 5)
    assert watch.taken == reference.taken


def _observed_before(history: risk.MidHistory, ts: float, mid: Decimal) -> None:
    """`MidHistory.observe` as it was before it compared with a Decimal zero and let
    `math.floor` refuse a NaN or infinite `ts`."""
    if not (math.isfinite(ts) and mid.is_finite() and mid > 0):
        return
    second = math.floor(ts)
    buckets = history._buckets
    if buckets and second <= buckets[-1][0]:
        if second == buckets[-1][0]:
            buckets[-1] = (second, mid)
        return
    buckets.append((second, mid))
    while len(buckets) > 1 and buckets[1][0] <= second - history.window_s:
        buckets.popleft()
    history._cache = None


@hsettings(max_examples=100, deadline=None, phases=[Phase.generate])
@given(st.lists(st.tuples(st.one_of(st.floats(0, 400), st.sampled_from([math.nan, math.inf, -math.inf])), MIDS),
                max_size=80))  # fmt: skip
def test_mid_history_observe_is_what_it_was(observations: list[tuple[float, Decimal]]) -> None:
    mine, theirs = risk.MidHistory(60), risk.MidHistory(60)
    for ts, mid in observations:
        mine.observe(ts, mid)
        _observed_before(theirs, ts, mid)
        assert list(mine._buckets) == list(theirs._buckets) and mine._cache == theirs._cache
