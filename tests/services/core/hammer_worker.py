"""One bot hammering a shared ladder: run as a separate process by the concurrency tests.

Usage: python hammer_worker.py DB_URL BOT_ID N SEED
Proposes N orders of 40-120 USD on two exchanges; fills, cancels or leaves open each allowed one;
then closes what it bought with reduce-only sells, judged on its own fills in the shared store.
"""

from __future__ import annotations

import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal, Side
from tests.standing_mandate import StandingMandate
from tests.watched import UNTHROTTLED, watch


def main() -> None:
    db_url, bot_id, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    # eight processes on two cores contend for one write lock: a store budget of seconds, not the
    # default 200 ms (whose STORE_BUSY denials the review-budget tests cover), keeps this about caps
    settings = load_settings(None, use_env=False, db_url=db_url, store={"budget_ms": 5000}, **UNTHROTTLED)
    gov = Governor.from_settings(settings, bot_id, mandates=StandingMandate())
    gov.heartbeat()
    allowed = 0
    bought: list[tuple[str, Decimal]] = []
    for i in range(n):
        connector = rng.choice(["binance_paper_trade", "okx_paper_trade"])
        watch(gov, connector, "BTC-USDT", Decimal(60000))
        usd = Decimal(rng.randint(40, 120))
        amount = (usd / Decimal(60000)).quantize(Decimal("0.00000001"))
        decision = gov.review(
            OrderProposal(
                bot_id=bot_id,
                connector=connector,
                trading_pair="BTC-USDT",
                side=Side.BUY,
                amount=amount,
                price=Decimal(60000) - Decimal(i % 1000) / 100,  # the same order twice is a duplicate
                mid_price=Decimal(60000),
                mid_price_ts=time.time(),
            )
        )
        if not decision.allowed or decision.reservation_id is None:
            continue
        allowed += 1
        roll = rng.random()
        if roll < 0.3:
            gov.on_order_event(
                OrderEvent(
                    kind=OrderEventKind.FILLED,
                    reservation_id=decision.reservation_id,
                    filled_amount=amount,
                    fill_price=Decimal(60000),
                )
            )
            bought.append((connector, amount))
        elif roll < 0.8:
            gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=decision.reservation_id))
    closes = []
    for connector, amount in bought:  # each fill closed on its own (each is under the order limit)
        close = gov.review(
            OrderProposal(
                bot_id=bot_id, connector=connector, trading_pair="BTC-USDT", side=Side.SELL, amount=amount,
                price=Decimal(60000), mid_price=Decimal(60000), mid_price_ts=time.time(), reduce_only=True,
            )
        )  # fmt: skip
        closes.append(f"{connector}:{close.status.value}:{close.code.value if close.code else ''}")
    print(f"{bot_id} closes={','.join(closes)} allowed={allowed}", flush=True)
    gov.close()


if __name__ == "__main__":
    main()
