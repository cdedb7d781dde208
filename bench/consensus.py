"""Council speed and cost: the parallel council against the same eight calls one after another,
the parallel council's latency over its own slowest voter's (physical limit 1.0, goal <= 1.05:
what the council adds on top of waiting for the slowest model), and AI calls per 1,000 orders
in mandate mode against per-order consensus.

Both run against a fake OpenRouter on 127.0.0.1 (tests/e2e/consensus/fake_openrouter.py) with
per-model latencies spread from 0.2 to 3 s, so the figures measure Lyra, not the internet.

Usage: python bench/consensus.py [--quick]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lyra_governor.config import Settings, load_settings
from lyra_governor.consensus import Council, MandateBook
from lyra_governor.models import CouncilContext, MarketSnapshot, OrderProposal, Side
from tests.e2e.consensus.fake_openrouter import Behaviour, FakeOpenRouter

LATENCIES = [0.2, 0.6, 1.0, 1.4, 1.8, 2.2, 2.6, 3.0]


def replay_orders(
    settings: Settings,
    fake: FakeOpenRouter,
    start: float,
    markets: list[tuple[str, str]],
    every_s: float,
    orders: int = 1000,
) -> tuple[float, int]:
    """Feed `orders` proposals through a MandateBook on a simulated clock; LLM calls per 1,000."""
    before = len(fake.calls())
    book = MandateBook(settings, Council.from_settings(settings))
    for i in range(orders):
        sim = start + i * every_s
        connector, pair = markets[i % len(markets)]
        mid = Decimal(60000 if pair.startswith("BTC") else 3000)
        p = OrderProposal(
            bot_id="bench",
            connector=connector,
            trading_pair=pair,
            side=Side.BUY,
            amount=Decimal("0.001"),
            price=mid,
            mid_price=mid,
            mid_price_ts=sim,
        )
        if book.find(p, Decimal(60), sim) is None:
            market = MarketSnapshot(
                connector=connector,
                trading_pair=pair,
                timestamp=sim,
                mid_price=mid,
                spread_pct=0.02,
                volatility_pct=1.0,
                depth_usd=50_000,
            )
            book.request(p, CouncilContext(phase=3, proposal=p, market=market, cap_usd=Decimal(1000), now=sim))
            deadline = time.time() + 10
            while book.find(p, Decimal(60), sim) is None and time.time() < deadline:
                time.sleep(0.005)
    book.close()
    return round((len(fake.calls()) - before) * 1000 / orders, 1), book.requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round and 1,000 orders (under 60 s)")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    os.environ.setdefault("LYRA_OPENROUTER_KEY1", "sk-or-bench-key")
    fake = FakeOpenRouter().start()
    tmp = tempfile.mkdtemp()
    try:
        settings = load_settings(
            None,
            use_env=False,
            db_url=f"sqlite:///{tmp}/b.db",
            data_dir=tmp,
            consensus={
                "backend": "openrouter",
                "openrouter_base_url": fake.base_url,
                "deadline_s": 8.0,
                "daily_budget_usd": 100.0,
            },
        )
        for role, latency in zip(settings.consensus.roles, LATENCIES, strict=True):
            fake.behaviour[role.model] = Behaviour(latency_s=latency)
        now = time.time()
        proposal = OrderProposal(
            bot_id="bench",
            connector="binance_paper_trade",
            trading_pair="BTC-USDT",
            side=Side.BUY,
            amount=Decimal("0.001"),
            price=Decimal(60000),
            mid_price=Decimal(60000),
            mid_price_ts=now,
        )
        context = CouncilContext(phase=3, proposal=proposal, cap_usd=Decimal(1000), now=now)
        council = Council.from_settings(settings)

        async def parallel() -> tuple[float, float]:
            started = time.perf_counter()
            result = await council.adecide(context)
            elapsed = time.perf_counter() - started
            assert result.response_rate == 1.0, result.reasons  # every voter answered: no early exit
            return elapsed, max(b.latency_s for b in result.ballots)

        async def sequential() -> float:
            started = time.perf_counter()
            for voter in council.voters:
                await voter.vote(context, 8.0)
            return time.perf_counter() - started

        async def both() -> tuple[tuple[float, float], float]:
            await parallel()  # warm-up: connections, imports
            p = min([await parallel() for _ in range(rounds)], key=lambda r: r[0] / r[1])
            s = min([await sequential() for _ in range(rounds)])
            await council.aclose()
            return p, s

        (parallel_s, slowest_voter_s), sequential_s = asyncio.run(both())

        # mandate mode: a market maker's 1,000 orders at 2 per second on one market, then the same
        # 1,000 orders spread over three markets at 0.55 per second (30 simulated minutes)
        for role in settings.consensus.roles:
            fake.behaviour[role.model] = Behaviour(latency_s=0.01)
        one_market, one_consults = replay_orders(settings, fake, now, [("binance_paper_trade", "BTC-USDT")], 0.5)
        markets = [
            ("binance_paper_trade", "BTC-USDT"),
            ("okx_paper_trade", "BTC-USDT"),
            ("okx_paper_trade", "ETH-USDT"),
        ]
        three_markets, three_consults = replay_orders(settings, fake, now, markets, 1.8)
        # per-order consensus on the same stream (200 orders, scaled): every order asks all eight
        per_order_settings = settings.model_copy(
            update={"consensus": settings.consensus.model_copy(update={"per_order": True})}
        )
        per_order, _ = replay_orders(per_order_settings, fake, now, markets[:1], 0.5, orders=200)
    finally:
        fake.stop()
    figures = {
        "parallel_s": round(parallel_s, 3),
        "sequential_s": round(sequential_s, 3),
        "speedup": round(sequential_s / parallel_s, 2),
        "slowest_voter_s": round(slowest_voter_s, 3),
        "parallel_over_slowest_voter": round(parallel_s / slowest_voter_s, 4),
        "llm_calls_per_1000_orders": one_market,
        "llm_calls_per_1000_orders_3_markets": three_markets,
        "per_order_calls_per_1000_orders": per_order,
        "council_consultations": one_consults,
    }
    print(
        f"council of 8 with latencies 0.2-3.0 s: parallel {figures['parallel_s']} s, sequential "
        f"{figures['sequential_s']} s, speedup {figures['speedup']}x"
    )
    print(
        f"parallel council / its slowest voter: {figures['parallel_s']} s / {figures['slowest_voter_s']} s = "
        f"{figures['parallel_over_slowest_voter']} (physical limit 1.0, goal <= 1.05)"
    )
    print(
        f"mandate mode: {one_market} LLM calls per 1,000 orders on one market ({one_consults} consultations), "
        f"{three_markets} over three markets ({three_consults}); per-order consensus (measured): {per_order}"
    )
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
