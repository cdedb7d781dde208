"""A documented, seeded generator of realistic L2 books for the offline paper run.

Why generated: recorded exchange data cannot be redistributed in this repository, and a seeded
generator makes every paper run reproducible. Users with their own recordings use the CSV
importer (`lyra-governor paper --data FILE`) or record with `lyra-governor record`.

What it produces, per simulated second (seed fixed => identical output):
- BTC-USDT on binance and okx, ETH-USDT on okx. The reference price follows a random walk
  whose volatility clusters (a GARCH(1,1)-like variance), with occasional jump gaps.
- okx BTC trades at a basis to binance: a mean-reverting process with bursts that open
  cross-exchange spreads wider than two taker fees (arbitrage opportunities).
- Spreads widen with volatility; depth thins when they do.
- A stale-feed episode: okx's BTC book stops updating for 90 s (its `updated_at` freezes).
- A flash move: binance BTC drops 7 % within two seconds and recovers over a minute, which
  the governor's collar must refuse to trade into.
"""

from __future__ import annotations

import numpy as np

from lyra_strategies.paper.feed import Feed, MarketSeries

START = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def generate(hours: float, seed: int = 7, start: float = START) -> Feed:
    seconds = max(60, int(hours * 3600))
    rng = np.random.default_rng(seed)
    t = start + np.arange(seconds, dtype=np.float64)

    # volatility clustering: per-second variance follows GARCH(1,1)
    omega, alpha, beta = 2e-10, 0.06, 0.93
    var = np.empty(seconds)
    ret = np.empty(seconds)
    var[0] = omega / (1 - alpha - beta)
    shocks = rng.standard_normal(seconds)
    for i in range(seconds):
        if i:
            var[i] = omega + alpha * ret[i - 1] ** 2 + beta * var[i - 1]
        ret[i] = np.sqrt(var[i]) * shocks[i]
    gaps = rng.random(seconds) < 1 / 7200  # about one gap every two hours
    ret[gaps] += rng.normal(0, 0.004, gaps.sum())
    btc = 60_000 * np.exp(np.cumsum(ret))
    vol_bps = np.sqrt(var) * 1e4

    # okx basis: Ornstein-Uhlenbeck with bursts
    basis = np.zeros(seconds)
    burst = np.zeros(seconds)
    for i in range(1, seconds):
        basis[i] = basis[i - 1] * 0.995 + rng.normal(0, 0.00004)
    for centre in rng.choice(seconds, size=max(2, seconds // 1800), replace=False):
        width = int(rng.integers(20, 90))
        sign = rng.choice([-1.0, 1.0])
        lo, hi = centre, min(seconds, centre + width)
        burst[lo:hi] += sign * float(rng.uniform(0.0028, 0.0045))
    okx_btc = btc * (1 + basis + burst)

    eth_ret = 0.8 * ret + np.sqrt(var) * 0.6 * rng.standard_normal(seconds)
    eth = 3_000 * np.exp(np.cumsum(eth_ret))

    def spread(base_bps: float) -> np.ndarray:
        return np.clip(base_bps + 0.8 * vol_bps + rng.gamma(1.5, 0.3, seconds), base_bps, 60.0)

    events: list[dict[str, object]] = []
    binance_mid = btc.copy()
    # the flash move: at 40 % of the run, -7 % in 2 s, recovering linearly over 60 s
    flash = int(seconds * 0.4)
    if flash + 62 < seconds:
        drop = np.concatenate([np.linspace(1.0, 0.93, 3), np.linspace(0.93, 1.0, 60)])
        binance_mid[flash : flash + len(drop)] *= drop
        events.append(
            {
                "kind": "flash_move",
                "connector": "binance_paper_trade",
                "trading_pair": "BTC-USDT",
                "at": float(t[flash]),
                "depth_pct": -7.0,
            }
        )
    binance_updated = t.copy()
    okx_updated = t.copy()
    # the stale feed: at 65 % of the run, okx BTC stops updating for 90 s
    stale = int(seconds * 0.65)
    okx_mid = okx_btc.copy()
    if stale + 90 < seconds:
        okx_mid[stale : stale + 90] = okx_mid[stale]
        okx_updated[stale : stale + 90] = t[stale]
        events.append(
            {
                "kind": "stale_feed",
                "connector": "okx_paper_trade",
                "trading_pair": "BTC-USDT",
                "at": float(t[stale]),
                "seconds": 90,
            }
        )

    binance_spread = spread(1.5)
    okx_spread = spread(2.0)
    eth_spread = spread(2.5)
    depth = np.clip(0.05 / (1 + vol_bps), 0.002, 0.05)
    feed = Feed(start=start, seconds=seconds, events=events, source=f"generator seed {seed}")
    feed.markets = [
        MarketSeries("binance_paper_trade", "BTC-USDT", binance_mid, binance_spread, depth, binance_updated),
        MarketSeries("okx_paper_trade", "BTC-USDT", okx_mid, okx_spread, depth, okx_updated),
        MarketSeries("okx_paper_trade", "ETH-USDT", eth, eth_spread, depth * 20, okx_updated.copy()),
    ]
    # the ETH book keeps updating while okx BTC is stale
    feed.markets[2].updated_at = t.copy()
    return feed
