"""Hole 11 of issue 14: no safety setting can be switched off by its value. Every limit is
finite and inside a sane range, in YAML and in LYRA_* variables, and settings that depend on
each other are checked together. Errors name the key and the range, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from lyra_governor.config import load_settings
from lyra_governor.errors import ConfigError

KEYS = [
    ("risk", "stale_price_s"),
    ("risk", "heartbeat_timeout_s"),
    ("risk", "price_collar_pct"),
    ("risk", "max_order_notional_usd"),
    ("risk", "order_rate_window_s"),
    ("risk", "future_tolerance_s"),
    ("risk", "fx_band_pct"),
    ("consensus", "daily_budget_usd"),
    ("consensus", "mandate_max_total_usd"),
    ("breakers", "daily_loss_pct"),
    ("breakers", "drawdown_pct"),
    ("ladder", "paper_virtual_usd"),
    ("ladder", "rung_min_hours"),
    ("commissioning", "max_clock_skew_ms"),
]


@pytest.mark.parametrize(("section", "key"), KEYS)
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_infinite_or_nan_limits_are_refused_in_yaml(lyra_home: Path, section: str, key: str, value: str) -> None:
    path = lyra_home / "lyra.yml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"'{section}.{key}'" in str(err.value)


@pytest.mark.parametrize(("section", "key"), KEYS)
def test_infinite_limits_are_refused_in_the_environment(
    lyra_home: Path, monkeypatch: pytest.MonkeyPatch, section: str, key: str
) -> None:
    monkeypatch.setenv(f"LYRA_{section.upper()}__{key.upper()}", "inf")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert f"'{section}.{key}'" in str(err.value)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("risk", "stale_price_s", "864000", "<= 120"),
        ("risk", "stale_price_s", "0.01", ">= 0.5"),
        ("risk", "heartbeat_timeout_s", "10", ">= 45"),  # heartbeats are written every 15 s
        ("risk", "price_collar_pct", "61.5", "<= 20"),
        ("consensus", "daily_budget_usd", "12345", "<= 1000"),
        ("breakers", "storm_min_samples", "-7", ">= 3"),
    ],
)
def test_out_of_range_limits_name_the_key_and_the_range_but_not_the_value(
    lyra_home: Path, section: str, key: str, value: str, expected: str
) -> None:
    path = lyra_home / "lyra.yml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert f"'{section}.{key}'" in message and expected in message
    # the message names the file; pytest's tmp path holds numbers ("pytest-10"), so look for
    # the value only in what the message says besides the path
    said = message.replace(str(path), "")
    assert "\n" not in message and value not in said and "got" not in message


def test_a_secret_typed_into_a_limit_is_never_echoed(lyra_home: Path) -> None:
    path = lyra_home / "lyra.yml"
    path.write_text("risk:\n  stale_price_s: sk-or-v1-0123456789abcdef\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "sk-or-v1" not in str(err.value) and "'risk.stale_price_s'" in str(err.value)


@pytest.mark.parametrize(
    ("yaml_text", "names"),
    [
        ("risk:\n  reference_min_history_s: 120\n  reference_window_s: 60\n", "reference_min_history_s"),
        ("risk:\n  future_tolerance_s: 5\n  stale_price_s: 2\n", "future_tolerance_s"),
        ("breakers:\n  storm_consecutive: 20\n  storm_min_samples: 10\n", "storm_min_samples"),
        ("risk:\n  max_order_notional_usd: 20000\n", "max_order_notional_usd"),
        ("exchanges:\n  binance: {pairs: [DOGE-USDT]}\n", "max_order_amount"),
        ("ladder:\n  rungs_usd: [100, 50000]\n", "full_capital_usd"),
    ],
)
def test_dependent_settings_are_checked_together(lyra_home: Path, yaml_text: str, names: str) -> None:
    path = lyra_home / "lyra.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert names in str(err.value)


def test_the_embedded_defaults_pass_their_own_checks(lyra_home: Path) -> None:
    settings = load_settings(None)
    assert settings.risk.stale_price_s == 10 and settings.risk.future_tolerance_s == 2
    assert settings.risk.heartbeat_timeout_s >= 45
    for exchange in settings.exchanges.values():
        for pair in exchange.pairs:
            assert settings.breakers.max_amount(pair) is not None
