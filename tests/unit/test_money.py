"""money.py: micro-dollar rounding, capital scopes and the arithmetic of one fill."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra_governor.money import TOTAL, fill_effect, from_musd, scope, scopes, to_musd


def test_to_musd_rounds_half_even_and_round_trips() -> None:
    assert to_musd(Decimal("1.0000005")) == 1_000_000  # half to even: down
    assert to_musd(Decimal("1.0000015")) == 1_000_002  # half to even: up
    assert to_musd(Decimal("-0.0000025")) == -2
    assert from_musd(to_musd(Decimal("60.123456"))) == Decimal("60.123456")


def test_scopes_name_the_exchange_row_and_the_books_total() -> None:
    assert scope("paper", "binance") == "paper:binance"
    assert scopes("live", "okx") == ("live:okx", f"live:{TOTAL}")


def _fill(**overrides: object) -> object:
    fields: dict[str, object] = {
        "side": "BUY",
        "amount": Decimal("0.002"),
        "price": Decimal(60000),
        "usd_per_quote": Decimal(1),
        "reserved_musd": 120_000_000,
        "filled_before": Decimal(0),
        "fill_amount": Decimal("0.001"),
        "fill_price": Decimal(60000),
    }
    fields.update(overrides)
    return fill_effect(**fields)  # type: ignore[arg-type]


def test_a_partial_buy_turns_over_its_share_of_the_reservation() -> None:
    effect = _fill()
    assert effect.notional_musd == 60_000_000
    assert effect.release_musd == 60_000_000
    assert effect.deployed_delta_musd == 60_000_000
    assert effect.done == Decimal("0.001") and not effect.fully


def test_the_completing_fill_releases_whatever_is_left() -> None:
    effect = _fill(reserved_musd=60_000_001, filled_before=Decimal("0.001"), fill_price=Decimal(59000))
    assert effect.fully and effect.release_musd == 60_000_001
    assert effect.notional_musd == 59_000_000


def test_a_sell_reduces_deployed_capital() -> None:
    effect = _fill(side="SELL", amount=Decimal("0.001"))
    assert effect.deployed_delta_musd == -60_000_000 and effect.fully


def test_a_close_that_reserved_nothing_releases_nothing() -> None:
    effect = _fill(side="SELL", reserved_musd=0)
    assert effect.release_musd == 0 and not effect.fully


def test_a_buy_that_closes_a_short_releases_its_share_as_it_fills() -> None:
    # old code: a reduce-only buy released nothing until complete, so a partial fill counted twice
    effect = _fill(reserved_musd=120_000_000)
    assert effect.release_musd == 60_000_000 and effect.deployed_delta_musd == 60_000_000


def test_a_partial_fill_never_releases_more_than_is_reserved() -> None:
    effect = _fill(reserved_musd=10)
    assert effect.release_musd == 10


@pytest.mark.parametrize("rate", [Decimal("0.65"), Decimal(1)])
def test_the_fx_rate_scales_the_notional(rate: Decimal) -> None:
    effect = _fill(usd_per_quote=rate, amount=Decimal("0.001"))
    assert from_musd(effect.notional_musd) == Decimal(60) * rate
