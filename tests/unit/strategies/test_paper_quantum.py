"""`lyra_strategies.paper.quantum` must give Hummingbot's paper quanta exactly: numpy's
`ceil(log10(d))` for every Decimal, including the ones a hair off a power of ten where
Decimal's rounded logarithm is an integer, at any context precision."""

from __future__ import annotations

import decimal
import random
from decimal import Decimal

import numpy
from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
from hummingbot.connector.test_support import mock_paper_exchange
from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange

from lyra_strategies.paper import exchange as paper_exchange  # noqa: F401 (installs the quanta)
from lyra_strategies.paper.quantum import QuantumNumpy, ceil_log10


def _numpy(d: Decimal) -> object:
    return numpy.ceil(numpy.log10(d))


def _cases(rng: random.Random) -> list[Decimal]:
    out: list[Decimal] = []
    with decimal.localcontext(decimal.Context(prec=80)):
        for k in range(-25, 26):
            power = Decimal(10) ** k
            out += [power, power * Decimal("1.000"), +power]
            for j in range(1, 45):  # just above and just below a power of ten
                out += [power * (1 + Decimal(10) ** -j), power * (1 - Decimal(10) ** -j)]
    for _ in range(3000):
        x = 10 ** rng.uniform(-12, 12)
        out += [Decimal(x), Decimal(repr(x)), Decimal(f"{x:.2f}") or Decimal("0.01")]
    out += [Decimal(x) for x in (1e22, 1e23, 0.1)] + [Decimal("60003.1"), Decimal("19999.995")]  # binary doubles
    return [d for d in out if d > 0]


def test_the_ceiling_is_numpys_at_every_precision() -> None:
    cases = _cases(random.Random(11))
    for prec in (28, 6, 12, 50):
        with decimal.localcontext(decimal.Context(prec=prec)):
            for d in cases:
                assert ceil_log10(d) == _numpy(d), (prec, d)
    with decimal.localcontext(decimal.Context(prec=80)):
        near = Decimal(10) ** 4 * (1 + Decimal(10) ** -30)  # above 10**4, yet its 28-digit logarithm is 4
    assert near > 10_000 and _numpy(near) == 4 == ceil_log10(near)


def test_the_stand_in_is_numpy_for_everything_else() -> None:
    np = QuantumNumpy()
    assert np.ceil(np.log10(Decimal("60003.1"))) == 5 and isinstance(np.ceil(np.log10(Decimal(2))), int)
    assert np.ceil(np.log10(250.0)) == numpy.ceil(numpy.log10(250.0)) and np.pi == numpy.pi
    assert str(np.log10(Decimal("Infinity"))) == "Infinity"


def test_hummingbots_quanta_are_unchanged() -> None:
    assert isinstance(mock_paper_exchange.np, QuantumNumpy)
    ex = MockPaperExchange()
    ex.set_quantization_param(QuantizationParams("BTC-USDT", 6, 6, 6, 6))
    rng = random.Random(5)
    values = [Decimal(repr(10 ** rng.uniform(-8, 8))) for _ in range(400)] + [Decimal(10) ** k for k in range(-6, 7)]
    fast = [(ex.get_order_price_quantum("BTC-USDT", v), ex.get_order_size_quantum("BTC-USDT", v)) for v in values]
    fast += [(ex.quantize_order_price("BTC-USDT", v), ex.quantize_order_amount("BTC-USDT", v)) for v in values]
    mock_paper_exchange.np = numpy  # Hummingbot's own
    try:
        slow = [(ex.get_order_price_quantum("BTC-USDT", v), ex.get_order_size_quantum("BTC-USDT", v)) for v in values]
        slow += [(ex.quantize_order_price("BTC-USDT", v), ex.quantize_order_amount("BTC-USDT", v)) for v in values]
    finally:
        mock_paper_exchange.np = QuantumNumpy()
    assert [(str(p), str(s)) for p, s in fast] == [(str(p), str(s)) for p, s in slow]
