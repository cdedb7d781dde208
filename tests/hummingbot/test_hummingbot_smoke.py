"""Hummingbot 20260922 on Python 3.11 really works: strategy base, paper exchange, back-test clock,
and the ccxt/urllib3 pair installed beside it."""

from __future__ import annotations

import asyncio
from decimal import Decimal


def test_mock_paper_exchange_runs_under_a_backtest_clock() -> None:
    from hummingbot.strategy.strategy_v2_base import StrategyV2Base

    assert StrategyV2Base.__name__ == "StrategyV2Base"
    # Hummingbot's connectors take the thread's current event loop when they are built; a test
    # earlier in the session may have ended with none set (asyncio.run, e.g. a paper replay,
    # leaves the thread without one), so this test sets its own, as Hummingbot's own start does
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        _trade_under_a_backtest_clock()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _trade_under_a_backtest_clock() -> None:
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
    from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange
    from hummingbot.core.clock import Clock
    from hummingbot.core.clock_mode import ClockMode
    from hummingbot.core.data_type.common import OrderType

    start = 1_700_000_000.0
    clock = Clock(ClockMode.BACKTEST, 1.0, start, start + 5)
    exchange = MockPaperExchange()
    exchange.set_balanced_order_book("BTC-USDT", 50_000, 49_000, 51_000, 10, 10)
    exchange.set_balance("USDT", 1_000)
    exchange.set_balance("BTC", 0.1)
    exchange.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
    clock.add_iterator(exchange)
    clock.backtest_til(start + 5)
    assert exchange.current_timestamp == start + 5
    mid = exchange.get_mid_price("BTC-USDT")
    assert Decimal("49_900") < mid < Decimal("50_100")
    order_id = exchange.buy("BTC-USDT", Decimal("0.001"), OrderType.LIMIT, Decimal("49_000"))
    assert order_id


def test_ccxt_imports_beside_hummingbot() -> None:
    import ccxt
    import urllib3
    from hummingbot.connector.exchange.binance import binance_exchange

    assert ccxt.__version__.startswith("4.5")
    assert urllib3.__version__.startswith("2.")
    assert hasattr(binance_exchange, "BinanceExchange")
