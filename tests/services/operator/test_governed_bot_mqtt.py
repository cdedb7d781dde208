"""A governed Hummingbot strategy listens for Lyra's MQTT halt: it re-reads the store at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import TradingState
from lyra_governor.mqtt import broadcast_stop
from tests.loops import shut_down

START = 1_800_000_000.0


@pytest.mark.timeout(60)
def test_mqtt_halt_wakes_a_governed_bot_before_its_state_cache_ages(
    lyra_home: Path, mqtt_broker: tuple[str, int]
) -> None:
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams

    from lyra_strategies.paper.exchange import PaperExchange
    from lyra_strategies.paper.replay import load_script, start_markets_recorder

    host, port = mqtt_broker
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        None,
        use_env=False,
        db_url=f"sqlite:///{lyra_home / 'lyra.db'}",
        data_dir=str(lyra_home / "data"),
        mqtt={"enabled": True, "host": host, "port": port, "namespace": ns, "discover_s": 0.3},
    )
    now = [START]
    governor = Governor.from_settings(settings, "mqtt-bot", clock=lambda: now[0])
    governor.ledger.set_phase(3, "test", "paper")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    exchange = PaperExchange()
    exchange.set_balanced_order_book("BTC-USDT", 60_000, 59_000, 61_000, 10, 0.01)
    exchange.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
    exchange.set_balance("USDT", 5_000)
    strategy_cls, config_cls = load_script("lyra_market_making.py")
    config = config_cls(order_amount=Decimal("0.001"))
    strategy_cls.init_markets(config)
    strategy_cls.offline = True

    async def build() -> object:
        return strategy_cls({"binance_paper_trade": exchange}, config, governor=governor)

    async def recorder_for() -> object:  # Hummingbot's recorder, as in a running bot (on_stop uses it)
        return start_markets_recorder([exchange], lyra_home / "hb.sqlite")

    recorder = loop.run_until_complete(recorder_for())
    strategy = loop.run_until_complete(build())
    operator = Ledger.open(settings)
    try:
        strategy.start_halt_listener("hb-governed-1")  # what `start` does inside Hummingbot
        assert strategy._halt_listener is not None and strategy._halt_listener.connected.is_set()
        assert governor.trading_state() is TradingState.ACTIVE
        governor.ladder_view.read_at = float("inf")  # the time-based refresh would never come
        operator.halt("mqtt drill", "operator")
        result = broadcast_stop(settings, "mqtt drill", "operator")
        assert result.ok and "hb-governed-1" in result.instance_ids  # announced by the bot itself
        deadline = time.monotonic() + 5
        while not strategy._state_changed.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        now[0] += 1
        strategy.tick(now[0])
        assert governor.trading_state() is TradingState.HALTED
    finally:
        loop.run_until_complete(strategy.on_stop())
        assert strategy._halt_listener is None
        recorder.stop()
        operator.close()
        governor.close()
        shut_down(loop)
