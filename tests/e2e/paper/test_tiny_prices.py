"""A market priced like SHIB or PEPE (0.00002): the paper exchanges' price quantum."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from lyra_governor.store import audit_log, create_store_engine, fills
from lyra_strategies.paper import importer
from lyra_strategies.paper.replay import price_decimals, run_replay
from tests.e2e.paper.test_recordings import build_tiny_recording


def test_a_coin_priced_below_a_cent_keeps_six_significant_digits(tmp_path: Path) -> None:
    """The paper exchanges kept 6 price decimals for every market, and Hummingbot's quantum is
    the coarser of that and 6 significant digits: at 0.00002 a price moved in steps of
    0.000001 (5 %), the mid a script read was 0.000019 for 0.0000199934, and the collar (3 %)
    refused every DCA and XEMM order (85 PRICE_COLLAR of 89 decisions in 180 s; grid never
    proposed: its range collapsed, limit 0.000019 not below start 0.000019). Now a market's
    decimals keep 6 significant digits at its lowest price: orders are approved and fill at
    prices of 6 significant digits. (BTC-USDT's per-order cap is raised: the coins are many.)"""
    tiny, settings = build_tiny_recording(tmp_path)
    feed = importer.load_csv(tiny, hours=0.05)
    assert [price_decimals(m) for m in feed.markets] == [10, 10, 11]  # BTC near 0.00002, ETH near 0.000001
    assert price_decimals(importer.load_csv(tmp_path / "capture.csv", hours=0.05).markets[0]) == 6
    result = run_replay(settings, feed, tmp_path / "out", strategies="dca,grid,xemm")
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    with engine.connect() as conn:
        codes = [json.loads(p).get("code") for (p,) in
                 conn.execute(sa.select(audit_log.c.payload).where(audit_log.c.event == "decision"))]
        prices = [str(p) for (p,) in conn.execute(sa.select(fills.c.price))]
    engine.dispose()
    assert "PRICE_COLLAR" not in codes
    assert result.per_strategy["grid"]["proposed"] > 0 and result.fills > 0
    assert all(len(p.removeprefix("0.").lstrip("0")) >= 5 for p in prices), prices
