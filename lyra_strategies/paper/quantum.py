"""Hummingbot's paper price and size quanta, without its 28-digit logarithm.

Why this exists: `MockPaperExchange.c_get_order_price_quantum` (and `..._size_quantum`), behind
every paper order, every `get_price` and every tick of an engine with resting orders (it prices
the opposite side of the book for each pair it rests orders on), computes
`Decimal(f"1e{np.ceil(np.log10(price)) - precision}")`. numpy hands a Decimal to its own
`log10()`: a correctly rounded 28-digit logarithm, 20-45 us a call, ten calls a simulated second
with eight scripts (about a tenth of a replay's CPU). Only its ceiling is used, and that is
read off the Decimal's digits: for a positive finite `d` with `a = d.adjusted()` (so
`10**a <= d < 10**(a + 1)`), the ceiling is `a` when `d` is exactly `10**a`, else `a + 1`.

The one place the two can differ is Decimal's rounding: a `d` a hair above `10**a` (within
about 1e-27 of it at 28 digits) has a logarithm that rounds to the integer `a`. There, and
for anything that is not a positive finite Decimal, `log10` is computed as Hummingbot does,
so the answer is always numpy's own (`tests/unit/strategies/test_paper_quantum.py`).

The Cython module reads its global `np` on each call; `install()` gives it `QuantumNumpy`,
which is numpy except for these two functions.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from types import ModuleType
from typing import Any

import numpy


def ceil_log10(d: Decimal) -> int:
    """`math.ceil(d.log10())` (what `np.ceil(np.log10(d))` returns) for a positive finite
    Decimal, from its digits; through `log10` itself only where rounding could matter."""
    _, digits, _ = d.as_tuple()
    a = d.adjusted()
    if digits[0] == 1:
        # zeros after the leading 1 that put d so close to 10**a that the rounded logarithm
        # may be the integer a: then ask Decimal (a safety margin of 4 digits)
        near = getcontext().prec - len(str(abs(a))) - 4
        if not any(digits[1:]):
            return a  # exactly a power of ten: its logarithm is exact
        if near <= 0 or not any(digits[1 : 1 + near]):
            return math.ceil(d.log10())
    return a + 1


class _Log10:
    """np.log10 of a Decimal, kept for the np.ceil that follows (the module does nothing else
    with it)."""

    __slots__ = ("value",)

    def __init__(self, value: Decimal) -> None:
        self.value = value


class QuantumNumpy:
    """numpy, except `log10` of a positive finite Decimal and `ceil` of that (see module)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(numpy, name)

    @staticmethod
    def log10(x: Any) -> Any:
        if isinstance(x, Decimal) and x.is_finite() and x > 0:
            return _Log10(x)
        return numpy.log10(x)

    @staticmethod
    def ceil(x: Any) -> Any:
        if isinstance(x, _Log10):
            return ceil_log10(x.value)
        return numpy.ceil(x)


def install(module: ModuleType | None = None) -> None:
    """Give Hummingbot's `mock_paper_exchange` module (or `module`) the exact fast quanta."""
    if module is None:
        from hummingbot.connector.test_support import mock_paper_exchange

        module = mock_paper_exchange
    setattr(module, "np", QuantumNumpy())  # noqa: B010 (a Cython module's global, unknown to mypy)
