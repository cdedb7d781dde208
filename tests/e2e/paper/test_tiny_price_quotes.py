"""The market makers at a SHIB-like price (0.00002), found in review: their quotes were rounded
to a fixed 0.01, so every bid was 0 and both market-making scripts raised DivisionByZero each
tick (718 tracebacks in 360 s of the suite's capture scaled by 1e-9). Quotes now take the
market's price step (Hummingbot's quantum for the pair), or 6 significant digits when it is
unknown, never a step that rounds a positive price to 0; a bid of 0 or less is not proposed."""

from __future__ import annotations

import logging
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from lyra_strategies import quotes
from lyra_strategies.paper import importer, replay
from tests.e2e.paper.test_recordings import build_tiny_recording

MID = Decimal("0.0000199934")


@pytest.mark.parametrize("market_step", [Decimal("1E-10"), Decimal("1E-9"), None])
def test_quotes_at_a_shib_like_price_are_positive_and_on_the_markets_step(market_step: Decimal | None) -> None:
    """On main the default step (0.01) gave a bid of 0 and an ask of 0.01 (50,000 % of mid)."""
    params = quotes.QuoteParams(levels=2) if market_step is None else quotes.QuoteParams(levels=2,
                                                                                         price_step=market_step)
    ladder = quotes.make_quotes(MID, Decimal(1), Decimal(1), params)
    step = market_step or Decimal("1E-10")  # unknown: 6 significant digits of the price
    assert [q.side for q in ladder] == ["BUY", "SELL", "BUY", "SELL"]
    bids, asks = [q.price for q in ladder if q.side == "BUY"], [q.price for q in ladder if q.side == "SELL"]
    assert 0 < bids[1] < bids[0] < MID < asks[0] < asks[1]
    assert all(p % step == 0 for p in bids + asks)
    assert all(abs(p - MID) / MID < Decimal("0.003") for p in bids + asks)  # 10 and 20 bps a side, and a step


def test_prices_of_a_cent_and_more_quote_as_before() -> None:
    """The market's step is used when finer than 0.01; a coarser one (the paper BTC's 0.1 at
    20,000) leaves the quotes on 0.01 as before, and the connector rounds them."""
    mid = Decimal("20000.1234")
    for step in (None, Decimal("0.1"), Decimal("0.01")):
        ladder = quotes.make_quotes(mid, Decimal(1), Decimal(1), quotes.QuoteParams(price_step=step))
        assert [q.price for q in ladder] == [Decimal("19980.12"), Decimal("20020.13")]
    ladder = quotes.make_quotes(Decimal("2.5"), Decimal(1), Decimal(1), quotes.QuoteParams(price_step=Decimal("1E-4")))
    assert [q.price for q in ladder] == [Decimal("2.4975"), Decimal("2.5025")]


@pytest.mark.parametrize("mid", [Decimal("1E-30"), Decimal("3E-7"), Decimal(1), Decimal("1E+12")])
@pytest.mark.parametrize("step", [None, Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), Decimal(5)])
def test_no_bid_of_zero_and_no_exception_on_any_input(mid: Decimal, step: Decimal | None) -> None:
    for spread in (Decimal(20), Decimal(20_000), Decimal(40_000)):
        ladder = quotes.make_quotes(mid, Decimal(1), Decimal(0), quotes.QuoteParams(spread_bps=spread,
                                                                                  price_step=step))
        assert all(q.price > 0 for q in ladder)
        assert [q.side for q in ladder] == (["BUY", "SELL"] if spread < 20_000 else ["SELL"])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_both_market_makers_quote_a_shib_like_market_without_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On main: 718 DivisionByZero tracebacks in 360 s, no order proposed. Market making's
    `order_amount` is in base units: its 0.001 (BTC, ~$20) is 0.001 / 1e-9 of the tiny coin."""
    conf = tmp_path / "conf"
    shutil.copytree(replay.CONF_DIR, conf)
    mm = conf / "conf_lyra_market_making.yml"
    mm.write_text(mm.read_text().replace("order_amount: 0.001\n", "order_amount: 1000000\n"))
    monkeypatch.setattr(replay, "CONF_DIR", conf)
    tiny, settings = build_tiny_recording(tmp_path)
    feed = importer.load_csv(tiny, hours=0.05)
    seen = _Records()
    root = logging.getLogger()
    root.addHandler(seen)
    try:
        result = replay.run_replay(settings, feed, tmp_path / "out", strategies="market_making,dynamic_market_making")
    finally:
        root.removeHandler(seen)
    failures = [r for r in seen.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not failures, [f"{r.name}: {r.getMessage()} {r.exc_info}" for r in failures[:3]]
    for role in ("market_making", "dynamic_market_making"):
        assert result.per_strategy[role]["proposed"] > 0, result.per_strategy[role]
