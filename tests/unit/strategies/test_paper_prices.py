"""`PaperExchange` remembers Hummingbot's quantized prices per best price: the answers must be
Hummingbot's own, bit for bit, and follow every change of the book (a stale price would let an
executor judge its barriers on an old market)."""

from __future__ import annotations

import random
from decimal import Decimal

from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
from hummingbot.connector.test_support.mock_paper_exchange import MockPaperExchange
from hummingbot.core.data_type.common import PriceType

from lyra_strategies.paper import exchange as paper
from lyra_strategies.paper.exchange import PaperExchange

PAIR = "BTC-USDT"


def test_cached_prices_are_hummingbots_and_follow_the_book() -> None:
    rng = random.Random(1)
    ours, theirs = PaperExchange(name="cache"), MockPaperExchange()
    for ex in (ours, theirs):
        ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
    mids = [0.01234567, 1.5, 19_999.995, 60_000.0]
    for k in range(600):
        mid = rng.uniform(100, 90_000) if k % 2 else rng.choice(mids)  # repeated books hit the cache
        step = max(mid * rng.uniform(0.1, 5) / 1e4, mid * 1e-6)
        for ex in (ours, theirs):
            ex.set_balanced_order_book(PAIR, mid, mid - 40 * step, mid + 40 * step, step, 0.05)
        for _ in range(2):  # the second read comes from the cache
            for kind in (PriceType.MidPrice, PriceType.BestBid, PriceType.BestAsk, PriceType.LastTrade):
                assert str(ours.get_price_by_type(PAIR, kind)) == str(theirs.get_price_by_type(PAIR, kind))
            assert str(ours.get_mid_price(PAIR)) == str(theirs.get_mid_price(PAIR))
            for is_buy in (True, False):
                assert str(ours.get_price(PAIR, is_buy)) == str(theirs.get_price(PAIR, is_buy))
    assert 0 < len(ours._prices) <= paper.PRICE_CACHE_MAX


def test_accounts_sharing_a_book_share_its_prices() -> None:
    first, second, reference = PaperExchange(name="a"), PaperExchange(name="b"), MockPaperExchange()
    for ex in (first, second, reference):
        ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
        ex.set_balanced_order_book(PAIR, 61_234.5678, 61_000.0, 61_500.0, 3.3, 0.05)
    second.share_prices(first)
    assert str(first.get_price(PAIR, True)) == str(reference.get_price(PAIR, True))
    assert second._prices is first._prices and len(first._prices) == 1
    assert str(second.get_price(PAIR, True)) == str(reference.get_price(PAIR, True))
    assert len(first._prices) == 1  # the second account found the first one's answer


def test_cached_amounts_are_hummingbots_digit_for_digit() -> None:
    rng = random.Random(2)
    ours, theirs = PaperExchange(name="amounts"), MockPaperExchange()
    for ex in (ours, theirs):
        ex.set_quantization_param(QuantizationParams(PAIR, 6, 6, 6, 6))
        ex.set_balanced_order_book(PAIR, 60_000.0, 59_000.0, 61_000.0, 5.0, 0.05)
    amounts = [Decimal("1.0"), Decimal("1.00"), Decimal("0"), Decimal("0.00"), Decimal("0.0012345678")]
    amounts += [Decimal(str(round(rng.uniform(0, 3), rng.randint(0, 12)))) for _ in range(400)]
    for amount in amounts * 2:  # the second pass comes from the memo
        assert str(ours.quantize_order_amount(PAIR, amount)) == str(theirs.quantize_order_amount(PAIR, amount))
