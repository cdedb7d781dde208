"""Candles from one-second mids: closed only after they end, gaps filled, indicators."""

from __future__ import annotations

import math

import pytest

from lyra_strategies.candles import CandleBuilder, bollinger_percent_b, natr


def test_a_candle_is_visible_only_once_a_price_after_its_end_arrives() -> None:
    builder = CandleBuilder(60, 10)
    closed_at = [t for t in range(60) if builder.add(1_000_000 + t, 100.0 + t)]
    # 1_000_000 lies in the minute opened at 999_960, which ends at 1_000_020
    assert closed_at == [20]
    rows = list(builder.closed)
    assert [r[0] for r in rows] == [999_960.0]
    assert rows[0][1] == 100.0 and rows[0][4] == 119.0 and rows[0][7] == 20  # open, close, samples
    # the minute opened at 1_000_020 is still forming: none of its prices is visible
    assert max(r[2] for r in rows) == 119.0


def test_ohlc_and_no_look_ahead_at_the_boundary() -> None:
    builder = CandleBuilder(60, 10)
    prices = [5.0, 7.0, 3.0, 6.0]
    for i, p in enumerate(prices):
        builder.add(600 + i, p)
    builder.add(659, 4.0)
    assert not builder.closed  # 659 still belongs to the candle opened at 600
    assert builder.add(660, 100.0) is True  # the first price of the next minute closes it
    assert list(builder.closed) == [[600.0, 5.0, 7.0, 3.0, 4.0, 0.0, 0.0, 5.0, 0.0, 0.0]]
    assert builder.closed[-1][2] != 100.0


def test_a_gap_is_filled_with_flat_candles_and_bad_prices_are_ignored() -> None:
    builder = CandleBuilder(60, 10)
    builder.add(0, 10.0)
    assert builder.add(30, math.nan) is False and builder.add(31, 0.0) is False
    builder.add(200, 12.0)  # nothing in 60..179
    assert [r[0] for r in builder.closed] == [0.0, 60.0, 120.0]
    assert builder.closed[1][1:5] == [10.0, 10.0, 10.0, 10.0] and builder.closed[1][7] == 0.0
    assert builder.add(100, 11.0) is False  # older than the open candle: ignored


def test_max_records_bounds_memory_and_resize_keeps_history() -> None:
    builder = CandleBuilder(1, 3)
    for t in range(10):
        builder.add(t, 1.0 + t)
    assert [r[0] for r in builder.closed] == [6.0, 7.0, 8.0]
    builder.resize(5)
    builder.add(10, 1.0)
    assert [r[0] for r in builder.closed] == [6.0, 7.0, 8.0, 9.0]
    with pytest.raises(ValueError):
        CandleBuilder(0, 3)


def test_natr_is_wilders_atr_in_percent_of_the_close() -> None:
    highs, lows, closes = [11.0, 12.0, 13.0, 12.0], [9.0, 10.0, 11.0, 10.0], [10.0, 11.0, 12.0, 11.0]
    # true ranges from the second candle: 2, 2, 2 (high-low dominates): ATR 2, close 11
    assert natr(highs, lows, closes, 3) == pytest.approx(2 / 11 * 100)
    assert natr(highs, lows, closes, 4) is None  # needs length + 1 candles
    # Wilder smoothing after the first window
    h, lo, c = [10.0, 10.0, 10.0, 14.0], [10.0, 10.0, 10.0, 10.0], [10.0, 10.0, 10.0, 12.0]
    assert natr(h, lo, c, 2) == pytest.approx(((0 + 0) / 2 * 1 + 4) / 2 / 12 * 100)


def test_bollinger_percent_b() -> None:
    closes = [10.0, 10.0, 10.0, 10.0, 12.0]
    mean = 10.4
    sd = math.sqrt((4 * 0.4**2 + 1.6**2) / 5)
    expected = (12.0 - (mean - 2 * sd)) / (4 * sd)
    assert bollinger_percent_b(closes, 5, 2.0) == pytest.approx(expected)
    assert bollinger_percent_b([1.0, 1.0, 1.0], 3, 2.0) is None  # zero width
    assert bollinger_percent_b([1.0, 2.0], 3, 2.0) is None
    assert bollinger_percent_b([3.0, 2.0, 1.0], 3, 2.0) < 0.5 < bollinger_percent_b([1.0, 2.0, 3.0], 3, 2.0)


def test_dynamic_spreads_follow_volatility_within_bounds() -> None:
    from decimal import Decimal

    from lyra_strategies.dynamic_spread import DynamicParams, spreads

    params = DynamicParams(spread_natr=Decimal("0.5"), min_spread_bps=Decimal(10), max_spread_bps=Decimal(60))
    calm, normal, wild = spreads(0.05, params), spreads(0.2, params), spreads(1.0, params)
    assert calm.spread_bps == 10  # 2 x 0.5 x 5 bps = 5, floored at 10
    assert normal.spread_bps == 20 and normal.skew_bps_at_full == 20 and normal.level_step_bps == 10
    assert wild.spread_bps == 60  # capped
    assert calm.skew_bps_at_full < normal.skew_bps_at_full < wild.skew_bps_at_full
    unknown = spreads(None, params)
    assert unknown.spread_bps == 60 and spreads(float("nan"), params) == unknown
    assert spreads(0.0, params).spread_bps == 10  # a flat market is a known volatility: the tightest
