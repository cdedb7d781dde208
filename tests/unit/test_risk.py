"""risk.py: each pure pre-trade check refuses exactly what it names, with its code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lyra_governor import risk
from lyra_governor.models import DenialCode, Order
from tests import fixtures

NOW = 1_800_000_000.0
PAIRS = ["BTC-USDT", "ETH-USDT"]


def proposal(**overrides: Any) -> Order:
    """The review's copy of a proposal (`Order.of`): what the pure checks read."""
    return Order.of(fixtures.proposal(NOW, **overrides))


def code(denial: risk.Denial | None) -> DenialCode | None:
    return denial.code if denial else None


def test_a_sane_proposal_passes_the_input_checks() -> None:
    assert risk.check_inputs(proposal(), PAIRS, NOW, 30) is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"trading_pair": "DOGE-USDT"}, DenialCode.UNKNOWN_PAIR),
        ({"amount": Decimal("NaN")}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal(0)}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal("-1")}, DenialCode.INVALID_AMOUNT),
        ({"amount": Decimal("Infinity")}, DenialCode.INVALID_AMOUNT),
        ({"price": Decimal("NaN")}, DenialCode.INVALID_PRICE),
        ({"price": Decimal(0)}, DenialCode.INVALID_PRICE),
        ({"mid_price": Decimal(0)}, DenialCode.INVALID_MID_PRICE),
        ({"mid_price": Decimal("-Infinity")}, DenialCode.INVALID_MID_PRICE),
        ({"mid_price_ts": NOW - 31}, DenialCode.STALE_PRICE),
        ({"mid_price_ts": NOW + 31}, DenialCode.STALE_PRICE),
        ({"mid_price_ts": float("nan")}, DenialCode.STALE_PRICE),
    ],
)
def test_bad_inputs_are_refused_with_their_code(overrides: dict[str, Any], expected: DenialCode) -> None:
    assert code(risk.check_inputs(proposal(**overrides), PAIRS, NOW, 30)) is expected


def test_an_unconfigured_exchange_is_refused() -> None:
    denial = risk.check_inputs(proposal(), None, NOW, 30)
    assert code(denial) is DenialCode.UNKNOWN_EXCHANGE and denial and "exchanges" in denial.message


def test_the_collar_bounds_price_against_mid_and_mid_against_the_reference() -> None:
    mid = Decimal(60000)
    assert risk.check_collar(Decimal(61700), mid, None, 3.0) is None  # 2.8 %
    assert code(risk.check_collar(Decimal(61900), mid, None, 3.0)) is DenialCode.PRICE_COLLAR  # 3.2 %
    assert risk.check_collar(mid, mid, Decimal(59000), 3.0) is None  # mid 1.7 % from the reference
    flash = risk.check_collar(mid, mid, Decimal(65000), 3.0)  # mid 7.7 % below the reference
    assert code(flash) is DenialCode.PRICE_COLLAR and flash and "reference" in flash.message


def test_max_notional_is_inclusive() -> None:
    assert risk.check_notional(Decimal(250), Decimal(250)) is None
    assert code(risk.check_notional(Decimal("250.01"), Decimal(250))) is DenialCode.MAX_ORDER_NOTIONAL


def test_the_rate_window_slides() -> None:
    window = risk.RateWindow()
    for i in range(3):
        assert risk.check_rate(window, NOW + i * 0.1, 1.0, 3) is None
        window.add(NOW + i * 0.1)
    assert code(risk.check_rate(window, NOW + 0.5, 1.0, 3)) is DenialCode.ORDER_RATE
    assert risk.check_rate(window, NOW + 1.05, 1.0, 3) is None  # the first order left the window


def test_open_orders_limit() -> None:
    assert risk.check_open_orders(39, 40) is None
    assert code(risk.check_open_orders(40, 40)) is DenialCode.MAX_OPEN_ORDERS
