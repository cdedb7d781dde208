"""Fixtures for the commissioning e2e tests: the fake exchange and settings pointed at it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from lyra_governor.config import Settings, load_settings
from lyra_governor.exchanges import Credentials
from tests.e2e.commissioning.fake_exchange import FakeExchange
from tests.e2e.commissioning.seed import FakeClock


@pytest.fixture
def fake_exchange() -> Iterator[FakeExchange]:
    fake = FakeExchange(hold_s=2.0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_settings(lyra_home: Path, fake_exchange: FakeExchange) -> Settings:
    """Embedded defaults, a fresh SQLite ledger, every ccxt call routed to the fake exchange."""
    return load_settings(
        None,
        use_env=False,
        db_url=f"sqlite:///{lyra_home / 'lyra.db'}",
        data_dir=str(lyra_home / "data"),
        vault_path=str(lyra_home / "data" / "vault" / "lyra.vault"),
        server={"port": 1},
        commissioning={"exchange_api_url": fake_exchange.url, "timeout_s": 1.0},
    )


def make_credentials(names: list[str]) -> dict[str, Credentials]:
    """Made-up keys (Kraken and BTC Markets sign with a base64 secret)."""
    return {
        n: Credentials(f"key-{n}-0123", base64.b64encode(f"secret-{n}".encode()).decode(), f"pass-{n}") for n in names
    }


@pytest.fixture
def credentials(fake_settings: Settings) -> dict[str, Credentials]:
    return make_credentials(list(fake_settings.exchanges))


FAST = ("binance", "okx", "gate_io")  # 50-110 ms rate limits; Kraken and BTC Markets wait 1 s per call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fast_settings(fake_settings: Settings) -> Settings:
    """Three fast exchanges Hummingbot can trade, gate at 3: the same logic, a tenth of the wait.
    (Every exchange on the ladder gets a Phase-4 rung, so only tradable ones are listed.)"""
    data = fake_settings.model_dump(mode="json", exclude={"exchanges", "source"})
    data["commissioning"]["min_exchanges"] = 3
    data["exchanges"] = {n: fake_settings.exchanges[n].model_dump() for n in FAST}
    return load_settings(None, use_env=False, **data)
