"""A small governed bot for the operator tests: `python bot_process.py <db_url> <bot_id> <connector> <orders>`.

It trades through the real `Governor` on the shared store with a test-double mandate provider
(the council is not what these tests are about): propose, and on ALLOWED fill in full, so
capital moves from reserved to deployed. It prints one JSON line with its decision counts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.mandate_provider import NoCouncil
from lyra_governor.models import (
    CouncilContext,
    DenialCode,
    Mandate,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    Side,
)

MID = Decimal(60000)
BUSY = {DenialCode.STORE_BUSY, DenialCode.STORE_UNAVAILABLE}


class StandingMandate(NoCouncil):
    """Test double of the council: one wide mandate per market, always there."""

    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[tuple[str, str], Mandate] = {}

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        key = (proposal.connector, proposal.trading_pair)
        if key not in self.issued:
            self.issued[key] = self._issue(proposal, now)
        return self.issued[key]

    def _issue(self, proposal: OrderProposal, now: float) -> Mandate:
        return Mandate(
            consensus_id="test-consensus",
            connector=proposal.connector,
            trading_pair=proposal.trading_pair,
            sides=frozenset(Side),
            max_order_notional_usd=Decimal(1000),
            max_total_notional_usd=Decimal(100000),
            price_low=MID / 2,
            price_high=MID * 2,
            issued_at=now - 1,
            expires_at=now + 600,
        )

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None


def wait_for_the_start(bot_id: str) -> None:
    """With LYRA_TEST_START_DIR set, say ready and wait (bounded) for the test's `go` file.

    Started bots race through interpreter start-up; on a loaded machine one could take every
    order that fits under the cap before the other proposed at all. A common start makes them
    trade at the same time, which is what the test is about.
    """
    folder = os.environ.get("LYRA_TEST_START_DIR")
    if not folder:
        return
    start = Path(folder)
    (start / f"{bot_id}.ready").touch()
    deadline = time.monotonic() + 120
    while not (start / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def main() -> None:
    db_url, bot_id, connector, orders = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.06
    settings = load_settings(None, use_env=False, db_url=db_url)
    governor = Governor.from_settings(settings, bot_id, mandates=StandingMandate(), strategy="operator-test")
    wait_for_the_start(bot_id)
    counts: dict[str, int] = {}
    filled = Decimal(0)
    try:
        for i in range(orders):
            governor.heartbeat()
            for seen in (time.time() - 10, time.time()):  # the governor watches the market
                governor.observe_market(
                    MarketSnapshot(connector=connector, trading_pair="BTC-USDT", timestamp=seen, mid_price=MID)
                )
            proposal = OrderProposal(
                bot_id=bot_id,
                connector=connector,
                trading_pair="BTC-USDT",
                side=Side.BUY,
                amount=Decimal("0.001"),
                price=MID - i,  # each order its own (the same order again would be a duplicate)
                mid_price=MID,
                mid_price_ts=time.time(),
            )
            decision = governor.review(proposal)
            retries = 0
            # A store busy past the review budget is a fail-closed denial (issue 17); a real bot
            # proposes again on its next tick, so this one does too, and counts each such retry.
            while decision.code in BUSY and retries < 50:
                counts["retried"] = counts.get("retried", 0) + 1
                retries += 1
                time.sleep(pause)
                decision = governor.review(proposal)
            key = decision.code.value if decision.code else decision.status.value
            counts[key] = counts.get(key, 0) + 1
            if decision.allowed and decision.reservation_id:
                governor.on_order_event(
                    OrderEvent(
                        kind=OrderEventKind.FILLED,
                        reservation_id=decision.reservation_id,
                        filled_amount=proposal.amount,
                        fill_price=MID,
                    )
                )
                filled += proposal.amount * MID
            print(json.dumps({"tick": key}), flush=True)
            time.sleep(pause)
    finally:
        governor.close()
    print(json.dumps({"bot_id": bot_id, "counts": counts, "filled_usd": str(filled)}), flush=True)


if __name__ == "__main__":
    main()
