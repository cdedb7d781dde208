"""Market context: the pure indicator functions, the history the governor feeds, and the local
voters using it (a high-volatility regime changes the market analyst's vote and, at phase 5,
the verdict; the strategy's own drawdown reaches the risk assessor; rates need samples)."""

from __future__ import annotations

import math
import random
from collections import deque
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra_governor.checks import Review
from lyra_governor.config import Settings
from lyra_governor.consensus import Council
from lyra_governor.consensus.local import fault_detector, market_analyst, risk_assessor
from lyra_governor.governor import Governor
from lyra_governor.market_context import (
    Fill,
    FloatMids,
    MarketHistory,
    bollinger_position,
    build_context,
    fills_pnl,
    log_returns,
    minute_closes,
    pct_return,
    percentile_rank,
    realised_vol_pct,
    rolling_vols,
    rsi,
    sampled_rate,
    trend_slope_pct_per_hour,
    vol_regime,
)
from lyra_governor.models import (
    CouncilContext,
    DecisionStatus,
    MarketSnapshot,
    OrderProposal,
    RiskLevel,
    Side,
    Verdict,
    VoteDecision,
)

T0 = 1_800_000_000.0


def walk(minutes: int, sigma_pct: float, seed: int = 7, start: float = 60_000.0, drift_pct: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    prices = [start]
    for _ in range(minutes - 1):
        prices.append(prices[-1] * math.exp(rng.gauss(drift_pct / 100, sigma_pct / 100)))
    return prices


def points(prices: list[float], end: float = T0) -> list[tuple[float, float]]:
    return [(end - (len(prices) - 1 - i) * 60.0, p) for i, p in enumerate(prices)]


def test_minute_closes_carry_forward_and_returns() -> None:
    pts = [(T0 - 300, 100.0), (T0 - 250, 101.0), (T0 - 100, 102.0), (T0, 103.0)]
    closes = minute_closes(pts, T0)
    assert closes == [100.0, 101.0, 101.0, 101.0, 102.0, 103.0]
    assert pct_return(closes, 1) == pytest.approx((103 / 102 - 1) * 100)
    assert pct_return(closes, 5) == pytest.approx(3.0)
    assert pct_return(closes, 60) is None  # not enough history: None, never a guess


def test_rsi_bollinger_and_slope() -> None:
    up = [100.0 + i for i in range(30)]
    assert rsi(up) == 100.0 and rsi(list(reversed(up))) == 0.0 and rsi(up[:10]) is None
    zigzag = [100.0 + (i % 2) for i in range(30)]
    assert rsi(zigzag) == pytest.approx(50.0, abs=5)
    assert bollinger_position(up) is not None and bollinger_position(up) > 0.8  # type: ignore[operator]
    assert bollinger_position([5.0] * 20) == 0.5
    rising = [100.0 * 1.0005**i for i in range(60)]  # +0.05 % a minute = +3.0 % an hour
    assert trend_slope_pct_per_hour(rising) == pytest.approx(3.04, abs=0.02)
    assert trend_slope_pct_per_hour(list(reversed(rising))) < -2.9  # type: ignore[operator]


def test_volatility_and_its_percentile_over_the_day() -> None:
    calm = walk(1440 - 60, 0.05)
    wild = walk(60, 0.4, seed=3, start=calm[-1])
    returns = log_returns(calm + wild[1:])
    vol = realised_vol_pct(returns)
    assert vol is not None and vol == pytest.approx(0.4 * math.sqrt(60), rel=0.25)
    windows = rolling_vols(returns)
    assert len(windows) == len(returns) - 60 + 1
    assert windows[0] == pytest.approx(realised_vol_pct(returns[:60]), rel=1e-6)  # type: ignore[arg-type]
    assert percentile_rank(vol, windows) == 100.0
    assert vol_regime(vol, 100.0) == "high" and vol_regime(0.2, 10.0) == "calm" and vol_regime(None, None) == "unknown"
    assert vol_regime(5.0, 50.0) == "extreme" and vol_regime(0.6, 50.0) == "normal"


def test_fills_pnl_and_drawdown() -> None:
    fills = [Fill(T0, "BUY", 1.0, 100.0), Fill(T0 + 1, "BUY", 1.0, 110.0), Fill(T0 + 2, "SELL", 1.0, 120.0, fee=1.0)]
    pnl = fills_pnl(fills, 90.0)
    assert pnl.position == 1.0
    assert pnl.realised == pytest.approx(120 - 105 - 1)  # average cost 105
    assert pnl.unrealised == pytest.approx(90 - 105)
    # peak PnL +24 (two units marked at 120 after the sale... realised 14 + open 15) down to -1
    assert pnl.drawdown_pct > 10
    flat = fills_pnl([Fill(T0, "BUY", 2.0, 100.0), Fill(T0, "SELL", 3.0, 100.0)], 100.0)
    assert flat.position == -1.0 and flat.realised == 0.0 and flat.unrealised == 0.0
    assert fills_pnl([], None).drawdown_pct == 0.0


def test_sampled_rates_need_twenty_decisions() -> None:
    assert sampled_rate(1, 1) == 0.0  # one failure out of one decision is no error rate
    assert sampled_rate(5, 19) == 0.0
    assert sampled_rate(5, 20) == 0.25 and sampled_rate(30, 20) == 1.0


def test_history_samples_and_builds_a_context() -> None:
    h = MarketHistory()
    for i, price in enumerate(walk(24 * 60 * 6, 0.02)):  # one tick every 10 s for a day
        h.observe("binance_paper_trade", "BTC-USDT", T0 + i * 10, Decimal(str(price)), 0.02, 40_000)
        h.observe("binance_paper_trade", "BTC-USDT", T0 + i * 10 + 3, Decimal(str(price)))  # same slot
    h.observe_fill("BTC-USDT", "buy", Decimal("0.01"), Decimal(60000), T0 + 100)
    end = T0 + (24 * 60 * 6 - 1) * 10 + 3
    mc = h.context("binance_paper_trade", "BTC-USDT", end)
    assert mc is not None and mc.bars >= 1439
    assert mc.vol_percentile_day is not None and mc.vol_regime in ("calm", "normal")
    assert mc.return_60m_pct is not None and mc.rsi_14 is not None and mc.bollinger_position is not None
    assert mc.fills_today == 1 and mc.position_base == 0.01 and mc.recent_fills[0].side == "BUY"
    assert h.context("okx", "BTC-USDT", end) is None
    bad = MarketHistory()
    bad.observe("x", "Y-Z", T0, Decimal("NaN"))
    assert bad.context("x", "Y-Z", T0) is None


def proposal(now: float, side: Side = Side.BUY) -> OrderProposal:
    return OrderProposal(
        bot_id="b", connector="binance_paper_trade", trading_pair="BTC-USDT", side=side, amount=Decimal("0.001"),
        price=Decimal(59990), mid_price=Decimal(60000), mid_price_ts=now,
    )  # fmt: skip


def ctx_with(prices: list[float], phase: int = 3, **overrides: object) -> CouncilContext:
    mc = build_context("binance_paper_trade", "BTC-USDT", T0, points(prices), spread_pct=0.02, depth_usd=50_000)
    snap = MarketSnapshot(
        connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=T0, mid_price=Decimal(str(prices[-1])),
        spread_pct=0.02, volatility_pct=1.0, depth_usd=50_000, data_age_s=1.0,
    )  # fmt: skip
    last = Decimal(str(round(prices[-1], 2)))
    fields: dict[str, object] = {
        "phase": phase,
        "proposal": proposal(T0).model_copy(update={"price": last, "mid_price": last}),
        "market": snap,
        "market_context": mc,
        "cap_usd": Decimal(1000),
        "now": T0,
    }
    fields.update(overrides)
    return CouncilContext(**fields)  # type: ignore[arg-type]


def test_a_high_volatility_regime_changes_the_market_analysts_vote(settings: Settings) -> None:
    calm = walk(1440, 0.05)
    stormy = calm[:-60] + walk(60, 0.4, seed=3, start=calm[-61])
    calm_ctx, storm_ctx = ctx_with(calm), ctx_with(stormy)
    assert calm_ctx.market_context and calm_ctx.market_context.vol_regime in ("calm", "normal")
    assert storm_ctx.market_context and storm_ctx.market_context.vol_regime == "high"
    assert market_analyst(calm_ctx).decision is VoteDecision.APPROVE
    vote = market_analyst(storm_ctx)
    assert vote.decision is VoteDecision.REJECT and vote.risk is RiskLevel.MEDIUM
    assert "volatility regime high" in vote.rationale and "p100 of the day" in vote.rationale
    # and the council's verdict at phase 5 (90 % threshold): 7 of 8 approvals is not enough
    council = Council.from_settings(settings)

    def live(prices: list[float]) -> CouncilContext:
        c = ctx_with(prices, phase=5)
        assert c.proposal is not None
        return c.model_copy(update={"proposal": c.proposal.model_copy(update={"connector": "binance"})})

    assert council.decide(live(calm)).verdict is Verdict.PROCEED
    stormy_result = council.decide(live(stormy))
    assert stormy_result.verdict is Verdict.HOLD_OR_INVESTIGATE and "88%" in stormy_result.reasons[0]


def test_trend_against_the_order_is_medium_risk() -> None:
    falling = walk(1440, 0.01, drift_pct=-0.05)  # -3 % an hour
    ctx = ctx_with(falling)
    vote = market_analyst(ctx)
    assert vote.risk is RiskLevel.MEDIUM and "downtrend" in vote.rationale
    assert ctx.proposal is not None
    sell = ctx.model_copy(update={"proposal": ctx.proposal.model_copy(update={"side": Side.SELL})})
    assert market_analyst(sell).risk is RiskLevel.LOW


def test_the_strategys_own_drawdown_reaches_the_risk_assessor() -> None:
    prices = walk(120, 0.01)
    fills = [Fill(T0 - 3000, "BUY", 0.1, prices[0])]
    crash = [*prices[:-1], prices[0] * 0.85]  # marked 15 % under its entry
    mc = build_context("binance_paper_trade", "BTC-USDT", T0, points(crash), fills)
    assert mc.drawdown_pct == pytest.approx(15, abs=0.5)
    vote = risk_assessor(ctx_with(crash, market_context=mc))
    assert vote.decision is VoteDecision.REJECT and vote.risk is RiskLevel.HIGH and "drawdown 15" in vote.rationale


def test_rates_without_samples_do_not_reach_critical() -> None:
    assert fault_detector(ctx_with(walk(30, 0.01), error_rate=1.0)).risk is RiskLevel.CRITICAL  # unknown samples
    assert fault_detector(ctx_with(walk(30, 0.01), error_rate=1.0, rate_samples=3)).risk is RiskLevel.LOW


def test_governor_feeds_the_context_and_gives_rates_only_with_samples(settings: Settings) -> None:
    clock = [T0]
    gov = Governor.from_settings(settings, "bot-ctx", clock=lambda: clock[0])
    gov.ledger.set_phase(3, "test", "paper")
    for i, price in enumerate(walk(180, 0.05)):
        clock[0] = T0 + i * 60
        gov.observe_market(
            MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock[0],
                           mid_price=Decimal(str(round(price, 2))), spread_pct=0.02, depth_usd=50_000)
        )  # fmt: skip
    gov.tally.failed(clock[0])  # one failed order, one decision
    gov.tally.decided(clock[0])
    mid = Decimal(str(round(walk(180, 0.05)[-1], 2)))
    p = proposal(clock[0]).model_copy(update={"mid_price": mid, "price": mid})
    context = gov.council.context(Review(p, clock[0], gov.ladder_state(fresh=True), "binance"))
    assert context.error_rate == 0.0 and context.rate_samples == 1  # old code: error_rate 1.0 -> ABORT
    mc = context.market_context
    assert mc is not None and mc.bars >= 179 and mc.return_60m_pct is not None and mc.depth_usd == 50_000
    decision = gov.review(p)
    assert decision.status in (DecisionStatus.PENDING, DecisionStatus.ALLOWED), decision.message
    assert gov.ladder_state(fresh=True).trading_state.value == "ACTIVE"
    gov.close()


def test_one_stopped_out_quote_is_no_strategy_drawdown(settings: Settings) -> None:
    """The paper run's market making quoted nothing after its first flash move: one $24 level
    stopped out 11 % under its entry was an "11 % drawdown" of the strategy (the position's
    peak cost was the denominator), so the risk assessor refused every mandate, and without
    trades the figure could never recover. The drawdown is judged against the capital the bot
    may deploy on the exchange (the cap); a loss that large against the cap is still refused."""
    clock = [T0]
    gov = Governor.from_settings(settings, "bot-dd", clock=lambda: clock[0])
    gov.ledger.set_phase(3, "test", "paper")
    prices = walk(120, 0.02)
    for i, price in enumerate(prices):
        clock[0] = T0 + i * 60
        gov.observe_market(
            MarketSnapshot(connector="binance_paper_trade", trading_pair="BTC-USDT", timestamp=clock[0],
                           mid_price=Decimal(str(round(price, 2))), spread_pct=0.02, depth_usd=50_000)
        )  # fmt: skip
    entry = prices[-1]
    gov.market_history.observe_fill("BTC-USDT", "BUY", 0.0004, entry, clock[0] - 120)
    gov.market_history.observe_fill("BTC-USDT", "SELL", 0.0004, entry * 0.89, clock[0] - 60, fee=0.02)
    mid = Decimal(str(round(entry, 2)))
    p = proposal(clock[0]).model_copy(update={"mid_price": mid, "price": mid})
    review = Review(p, clock[0], gov.ladder_state(fresh=True), "binance", rate=Decimal(1))
    context = gov.council.context(review)
    mc = context.market_context
    assert mc is not None and mc.realised_pnl == pytest.approx(-(entry * 0.0004 * 0.11) - 0.02)
    loss = -mc.realised_pnl
    assert context.cap_usd > 0
    assert mc.drawdown_pct == pytest.approx(100 * loss / float(context.cap_usd), rel=1e-3)  # old code: 11.1 %
    assert risk_assessor(context).decision is VoteDecision.APPROVE
    # a loss of 12 % of the cap is a drawdown, whatever the position's size
    big = 0.12 * float(context.cap_usd) / (entry * 0.11)
    gov.market_history.observe_fill("BTC-USDT", "BUY", big, entry, clock[0] - 50)
    gov.market_history.observe_fill("BTC-USDT", "SELL", big, entry * 0.89, clock[0] - 40)
    assert risk_assessor(gov.council.context(review)).decision is VoteDecision.REJECT
    gov.close()


def _minute_closes_by_loop(points: list[tuple[float, float]], now: float, span_s: float = 86_400.0) -> list[float]:
    """`minute_closes` as it was (a loop over the points, 9ffd467): the reference."""
    if not points:
        return []
    start = max(points[0][0], now - span_s)
    n = int((now - start) // 60.0) + 1
    closes: list[float | None] = [None] * n
    base = now - (n - 1) * 60.0
    for ts, price in points:
        if ts < start - 60.0 or ts > now:
            continue
        closes[min(max(math.ceil((ts - base) / 60.0 - 1e-9), 0), n - 1)] = price
    out: list[float] = []
    last: float | None = None
    for close in closes:
        last = close if close is not None else last
        if last is not None:
            out.append(last)
    return out


_times = st.floats(min_value=T0 - 3 * 86_400, max_value=T0 + 3 * 86_400, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_times, st.floats(min_value=1e-9, max_value=1e9)), max_size=300),
    _times,
    st.sampled_from([60.0, 3_600.0, 86_400.0, 0.5]),
    st.booleans(),
)
def test_minute_closes_are_the_loops_on_random_points(
    points: list[tuple[float, float]], now: float, span_s: float, in_order: bool
) -> None:
    """The numpy `minute_closes` gives the loop's closes exactly (same floats, same count), in
    time order as the history keeps them and in any order, on bar edges and off them."""
    if in_order:
        points = sorted(points)
    points += [(math.floor(now / 60.0) * 60.0 - 60.0 * k, 100.0 + k) for k in range(3)]  # on the bars' edges
    if in_order:
        points = sorted(points)
    try:
        expected = _minute_closes_by_loop(points, now, span_s)
    except IndexError:  # the loop's one failure: a first point after `now` (no minute), then one before it
        assert points[0][0] > now
        expected = []
    assert minute_closes(points, now, span_s) == expected


def test_a_days_closes_are_the_loops() -> None:
    """A full day of the history's points (8,642, one per 10 s) gives the loop's 1,441 closes."""
    day = [(T0 + 10.0 * i, 100.0 + math.sin(i / 50.0)) for i in range(8_642)]
    closes = minute_closes(day, T0 + 86_410.0)
    assert closes == _minute_closes_by_loop(day, T0 + 86_410.0) and len(closes) == 1_441


_mids = st.one_of(
    st.decimals(min_value=Decimal("-5"), max_value=Decimal("1e6"), places=4, allow_nan=False),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal(0), float("nan"), float("inf"), 0.0, 2.5]),
    st.floats(min_value=-1.0, max_value=1e6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("observe"), st.floats(min_value=-30, max_value=400,
                                                                     allow_nan=False), _mids),
                          st.tuples(st.just("context"), st.just(0.0), st.just(0.0)),
                          st.tuples(st.just("new deque"), st.just(0.0), st.just(0.0))), max_size=80))
def test_the_points_as_floats_are_those_converted_afresh(ops: list[tuple[str, float, Decimal | float]]) -> None:
    """`FloatMids.valid`, kept in step between contexts, equals the conversion of the whole
    deque each time (the old `[(ts, float(mid)) ... if finite and > 0]`): on random observations
    (appends, the last slot replaced, old ones ignored, the front falling off a short deque,
    NaN, inf, zero and negative mids), the deque swapped for another, contexts in between."""
    history = MarketHistory(sample_s=10.0, span_s=40.0)  # five points kept: the front falls off often
    key, now = ("binance_paper_trade", "BTC-USDT"), 0.0
    floats, seldom = FloatMids(), FloatMids()  # asked after every step; only at a context (many steps between)
    for op, ts, mid in ops:
        if op == "observe":
            now = max(now, T0 + ts)
            history.observe(*key, T0 + ts, mid)
        elif op == "new deque" and key in history._points:
            history._points[key] = deque(history._points[key], maxlen=5)
        points = history._points.get(key)
        if points:
            afresh = [(t, p) for t, p in ((t, float(m)) for t, m in points) if math.isfinite(p) and p > 0]
            assert floats.valid(points) == afresh
        if op == "context" and points:
            assert seldom.valid(points) == afresh
            history.context(*key, now)
