from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lyra_governor.config import load_settings
from lyra_governor.errors import ConfigError


def test_embedded_defaults_hold_the_ladder_and_eight_roles(lyra_home: Path) -> None:
    settings = load_settings(None)
    assert settings.ladder.full_capital_usd == Decimal("13947.76")
    assert [int(r) for r in settings.ladder.rungs_usd] == [100, 500, 1000, 2500]
    assert settings.ladder.thresholds == {1: 0.70, 2: 0.75, 3: 0.80, 4: 0.85, 5: 0.90}
    assert len(settings.consensus.roles) == 8
    assert settings.consensus.backend == "local"
    assert settings.source == "<embedded defaults>"


def test_file_overrides_defaults_and_env_overrides_file(lyra_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = lyra_home / "lyra.yml"
    path.write_text("risk:\n  price_collar_pct: 1.5\n  max_open_orders: 7\n")
    monkeypatch.setenv("LYRA_RISK__MAX_OPEN_ORDERS", "9")
    monkeypatch.setenv("LYRA_DB_URL", "sqlite:///elsewhere.db")
    settings = load_settings(path)
    assert settings.risk.price_collar_pct == 1.5
    assert settings.risk.max_open_orders == 9
    assert settings.db_url == "sqlite:///elsewhere.db"
    assert settings.risk.stale_price_s == 10  # untouched keys keep their defaults


def test_lyra_config_env_picks_the_file(lyra_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = lyra_home / "other.yml"
    path.write_text("consensus:\n  per_order: true\n")
    monkeypatch.setenv("LYRA_CONFIG", str(path))
    assert load_settings(None).consensus.per_order is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("risk:\n  max_order_notinal_usd: 5\n", "unknown key 'risk.max_order_notinal_usd'"),
        ("consensus:\n  backend: magic\n", "'consensus.backend': Input should be 'local' or 'openrouter'"),
        ("consensus:\n  mandate_ttl_s: 3600\n", "'consensus.mandate_ttl_s': Input should be less than or equal to 900"),
        ("risk: [1, 2\n", "malformed YAML at line"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("fx_usd:\n  AUD: -1\n", "fx_usd.AUD must be a positive number"),
        ("exchanges:\n  kraken: {pairs: [btc/usd]}\n", "must look like BASE-QUOTE"),
        ("exchanges:\n  kraken: {pairs: [BTC-JPY]}\n", "fx_usd has no rate for JPY"),
    ],
)
def test_bad_config_names_file_key_and_allowed_values(lyra_home: Path, text: str, expected: str) -> None:
    path = lyra_home / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert info.value.exit_code == 2


def test_missing_file_is_a_clear_error(lyra_home: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(lyra_home / "nope.yml")


def test_bad_env_value_is_reported(lyra_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYRA_RISK__MAX_OPEN_ORDERS", "lots")
    with pytest.raises(ConfigError, match=r"risk\.max_open_orders"):
        load_settings(None)


def test_repo_config_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "conf" / "lyra_governor.yml", use_env=False)
    assert len(settings.consensus.roles) == 8
