"""Running a simulator by hand (`python -m tests.live_sim.binance_sim`, `... okx_sim`).

docs/commissioning.md has an operator start one before their first live rung and point Hummingbot
or ccxt at it. Both venues take the same options and walk their mids the same way; only the
protocol adapter differs, so the command line and the walk live here once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

DEFAULT_MARKETS = ("BTC-USDT=60000", "ETH-USDT=3000", "SOL-USDT=150")
DEFAULT_BALANCES = {"USDT": "1000", "BTC": "0.01", "ETH": "0.1", "SOL": "1"}


@dataclass(frozen=True)
class MarketSpec:
    base: str
    quote: str
    mid: Decimal


def parser(
    prog: str, description: str, port: int, api_key: str, api_secret: str, venue: str
) -> argparse.ArgumentParser:
    """The options both simulators take; a venue adds its own (OKX: --passphrase)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--port", type=int, default=port, help="0 picks a free port (printed)")
    p.add_argument("--api-key", default=api_key)
    p.add_argument("--api-secret", default=api_secret)
    p.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                   help="starting free balance (repeatable; default USDT=1000 BTC=0.01 ETH=0.1 SOL=1)")  # fmt: skip
    p.add_argument("--market", action="append", default=[], metavar="BASE-QUOTE=MID",
                   help=f"a market and its mid price (repeatable; default Lyra's {venue} pairs: "
                        "BTC-USDT=60000 ETH-USDT=3000 SOL-USDT=150)")  # fmt: skip
    p.add_argument("--walk-bps", type=float, default=5.0,
                   help="each mid moves up to this many basis points every second (0: a still market)")  # fmt: skip
    p.add_argument("--read-only-key", action="store_true",
                   help="the key's permissions say it cannot trade (what phases 2-3 require)")  # fmt: skip
    return p


def markets(args: argparse.Namespace) -> list[MarketSpec]:
    specs = []
    for spec in args.market or DEFAULT_MARKETS:
        pair, _, mid = spec.partition("=")
        base, _, quote = pair.partition("-")
        specs.append(MarketSpec(base, quote, Decimal(mid)))
    return specs


def balances(args: argparse.Namespace) -> dict[str, str]:
    return dict(b.split("=", 1) for b in args.balance) or dict(DEFAULT_BALANCES)


def serve_forever(sim: Any, mids: dict[str, Decimal], walk_bps: float, banner: Callable[[], str]) -> None:
    """Serve until Ctrl-C, moving every mid by up to `walk_bps` each second."""

    async def run() -> None:
        await sim.serve()
        print(banner(), flush=True)
        while True:
            await asyncio.sleep(1)
            if walk_bps <= 0:
                continue
            for symbol in list(mids):
                step = Decimal(random.uniform(-walk_bps, walk_bps)) / 10_000
                mids[symbol] = (mids[symbol] * (1 + step)).quantize(Decimal("0.01"))
            sim.walk(mids)
            await sim._flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
