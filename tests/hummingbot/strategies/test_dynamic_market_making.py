"""Dynamic-spread market making on real Hummingbot: candles from the paper books through
Hummingbot's MarketDataProvider (no look-ahead), widths from their NATR, every quote governed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from lyra_governor.models import DenialCode
from tests.hummingbot.strategies.world import book, build, fills, gradual_stop, run, run_until, warm_mandates, world

__all__ = ["world"]
BINANCE = "binance_paper_trade"


def _dmm(world: dict[str, Any], **overrides: Any) -> Any:
    warm_mandates(world, [BINANCE])
    return build(world, "lyra_dynamic_market_making.py", [BINANCE],
                 **{"candles_interval": "1s", "natr_length": 5, "refresh_s": 10_000,
                    "refresh_tolerance_bps": 10_000, **overrides})  # fmt: skip


def _spread_bps(world: dict[str, Any]) -> float:
    prices = sorted(float(o.price) for o in world["exchanges"][BINANCE].limit_orders)
    return (prices[-1] - prices[0]) / 60_000 * 1e4


def test_candles_come_from_the_paper_book_and_show_only_closed_candles(world: dict[str, Any]) -> None:
    strategy = _dmm(world, candles_interval="1m")
    run(world, strategy, 59)  # from START (a minute boundary) to START + 59: still the first minute
    feed = strategy.market_data_provider.get_candles_feed(strategy.candles_config)
    assert type(feed).__name__ == "ReplayCandles" and strategy.market_data_provider.get_candles_df(
        BINANCE, "BTC-USDT", "1m", 10).empty
    book(world, BINANCE, 60_300)  # the second minute's first price
    run(world, strategy, 1)  # START + 60: the first minute closes, without the new price in it
    df = strategy.market_data_provider.get_candles_df(BINANCE, "BTC-USDT", "1m", 10)
    assert len(df) == 1 and df["timestamp"].iloc[0] == world["now"][0] - 60
    assert df["high"].iloc[0] == 60_000 and df["close"].iloc[0] == 60_000  # 60,300 belongs to the open candle


def test_offline_the_natr_reads_the_candles_rows_hummingbots_dataframe_holds(
    world: dict[str, Any], monkeypatch: Any
) -> None:
    """Offline, the NATR's highs, lows and closes are read from the replay feed's own rows, not
    through a pandas DataFrame built once a candle: the same floats `get_candles_df` holds."""
    from lyra_strategies import candles

    strategy = _dmm(world)
    provider = strategy.market_data_provider
    for i in range(8):  # a swinging book: candles of different highs, lows and closes
        book(world, BINANCE, 60_000 * (1.002 if i % 2 else 0.998))
        run(world, strategy, 1)
    df = provider.get_candles_df(BINANCE, "BTC-USDT", "1s", 6)
    columns = (df["high"].tolist(), df["low"].tolist(), df["close"].tolist())
    assert len(columns[2]) == 6 and candles.candle_columns(provider, BINANCE, "BTC-USDT", "1s", 6) == columns

    def no_dataframe(*_args: Any) -> Any:
        raise AssertionError("a DataFrame built offline")

    monkeypatch.setattr(provider, "get_candles_df", no_dataframe)
    strategy._natr_bucket = -1  # read the candles again now
    strategy.update_natr()  # through get_candles_df on the old code
    assert strategy.natr == candles.natr(*columns[:3], strategy.config.natr_length)


def test_quotes_widen_with_volatility_and_fill_through_the_governor(world: dict[str, Any]) -> None:
    strategy = _dmm(world)
    run(world, strategy, 3)
    assert strategy.natr is None and round(_spread_bps(world)) == 60  # no NATR yet: widest spread
    run(world, strategy, 6)  # six 1 s candles of a flat book: NATR 0
    assert strategy.natr == 0
    _requote(world, strategy)
    assert round(_spread_bps(world)) == 10  # the tightest spread
    # a volatile stretch: the book swings 0.3 % every second
    for i in range(6):
        book(world, BINANCE, 60_000 * (1.003 if i % 2 else 0.997))
        run(world, strategy, 1)
    assert strategy.natr is not None and strategy.natr > 0.3
    book(world, BINANCE, 60_000)
    _requote(world, strategy)
    assert round(_spread_bps(world)) == 60  # 2 x 0.5 NATR is over the cap
    assert all(o.client_order_id in strategy._reservation_of for o in world["exchanges"][BINANCE].limit_orders)
    book(world, BINANCE, 59_500)  # through the bid
    run(world, strategy, 3)
    assert [f["side"] for f in fills(world)][-1:] == ["BUY"]


def _requote(world: dict[str, Any], strategy: Any) -> int:
    """Stop the resting quotes (as a refresh would) and wait until the script quotes again: the
    stopped quotes off the book and a new one resting on each side. A PositionExecutor cancels
    its order on its first shutdown step only once it has heard the order was created; else it
    tries again 5 s later. So the wait is on the outcome, bounded at 15 simulated seconds."""
    old = {o.client_order_id for o in _resting(world)}
    for executor in strategy.executor_orchestrator.active_executors["main"]:
        if not executor.is_closed:
            executor.early_stop()

    def requoted() -> bool:
        ids = {o.client_order_id for o in _resting(world)}
        return len(ids) == 2 and not ids & old

    return run_until(world, strategy, requoted, 15, "requote")


def _resting(world: dict[str, Any]) -> list[Any]:
    return list(world["exchanges"][BINANCE].limit_orders)


def test_a_quote_stopped_before_its_ack_is_still_cancelled(world: dict[str, Any], monkeypatch: Any) -> None:
    """An exchange that acknowledges orders late (the paper engine once did, after 10 ms of wall
    time, which a fast machine replays as several simulated seconds): a quote stopped before its
    ack is cancelled on the executor's retry, and nothing of it stays on the book."""
    from hummingbot.core.event.events import MarketEvent

    from lyra_strategies.paper.exchange import PaperExchange

    async def ack_after_4s(self: Any, event_tag: Any, event: Any) -> None:
        until = self.current_timestamp + 4
        while self.current_timestamp < until:
            await asyncio.sleep(0)
        self.trigger_event(event_tag if isinstance(event_tag, MarketEvent) else MarketEvent(int(event_tag)), event)

    monkeypatch.setattr(PaperExchange, "trigger_event_async", ack_after_4s)
    strategy = _dmm(world)
    run_until(world, strategy, lambda: len(_resting(world)) == 2, 5, "first quotes")
    _requote(world, strategy)  # stopped before either ack arrived: cancelled on the retry
    assert all(o.client_order_id in strategy._reservation_of for o in _resting(world))  # the new quotes, governed


def test_inventory_skews_both_quotes(world: dict[str, Any]) -> None:
    world["exchanges"][BINANCE].set_balance("BTC", 0.05)  # $3,000 of base against $500: sell it
    strategy = _dmm(world)
    run(world, strategy, 3)
    prices = sorted(float(o.price) for o in world["exchanges"][BINANCE].limit_orders)
    assert (prices[0] + prices[-1]) / 2 < 60_000 * (1 - 20 / 1e4)  # centre well under mid


def test_dynamic_quotes_refused_by_the_collar_and_the_gradual_stop_and_sized_to_the_cap(
    world: dict[str, Any],
) -> None:
    world["exchanges"][BINANCE].set_balance("USDT", 100_000)
    world["exchanges"][BINANCE].set_balance("BTC", 2)
    strategy = _dmm(world, order_amount_quote=Decimal(100_000), max_spread_bps=Decimal(900),
                    min_spread_bps=Decimal(800))  # fmt: skip
    run(world, strategy, 4)
    assert strategy.decisions.get("PRICE_COLLAR", 0) >= 2  # 4 % each side: outside the 3 % collar
    assert not world["exchanges"][BINANCE].limit_orders
    strategy.config.min_spread_bps, strategy.config.max_spread_bps = Decimal(10), Decimal(60)
    strategy.params = type(strategy.params)(min_spread_bps=Decimal(10), max_spread_bps=Decimal(60))
    strategy._rested_until.clear()
    run(world, strategy, 4)
    resting = world["exchanges"][BINANCE].limit_orders
    max_order = world["gov"].settings.risk.max_order_notional_usd
    assert len(resting) == 2 and all(Decimal(o.quantity) * Decimal(o.price) <= max_order for o in resting)
    gradual_stop(world)
    run_until(world, strategy, lambda: not _resting(world), 15, "quotes cancelled in the gradual stop")
    run(world, strategy, 2)
    assert not _resting(world)  # and none placed again
    assert strategy.quote_configs(Decimal(60_000), set()) == []
    refused = strategy.buy(BINANCE, "BTC-USDT", Decimal("0.0005"), _limit(), Decimal(59_900))
    assert refused.startswith("lyra-denied-") and strategy.last_decision.code is DenialCode.REDUCE_ONLY


def _limit() -> Any:
    from hummingbot.core.data_type.common import OrderType

    return OrderType.LIMIT
