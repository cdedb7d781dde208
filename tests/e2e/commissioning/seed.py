"""Replayed trading evidence for phases 3-5: real Governor, real ledger, local council, a
simulated clock. Nothing is written to the evidence tables by hand except the paper run's
summary, which is what `lyra-governor paper` records."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import MarketSnapshot, OrderEvent, OrderEventKind, OrderProposal, Side
from tests.fixtures import Clock

FakeClock = Clock  # the ledger, governor and checkpoints all read time from it

MIDS = {"USDT": Decimal(60000), "USD": Decimal(60000), "AUD": Decimal(92000)}


def seed_paper(ledger: Ledger, success_rate: float = 0.98, limits: bool = True, arbitrage: int = 3) -> None:
    ledger.record_evidence(
        "phase3_paper",
        {
            "success_rate": success_rate,
            "limits_respected": limits,
            "arbitrage_seen": arbitrage,
            "arbitrage_taken": 1,
            "orders_proposed": 200,
            "fills": 150,
            "strategies": {"market_making": {"proposed": 200, "approved": 190, "fills": 150}},
            "strategies_untested": [],
        },
        success_rate > 0.95 and limits,
        "paper",
    )


def _allowed(gov: Governor, proposal: OrderProposal) -> str:
    decision = gov.review(proposal)
    if decision.status.value == "PENDING":
        decision = gov.review(proposal.model_copy(update={"proposal_id": proposal.proposal_id + "b"}))
    assert decision.allowed, decision.message
    assert decision.reservation_id is not None
    return decision.reservation_id


def trade_round_trips(settings: Settings, ledger: Ledger, clock: FakeClock, profit_pct: Decimal) -> None:
    """On every configured exchange: buy 0.001 BTC at mid, sell it back `profit_pct` higher."""
    now = clock
    gov = Governor.from_settings(settings, "seed-bot", clock=now, ledger=ledger)
    try:
        for name, cfg in settings.exchanges.items():
            pair = cfg.pairs[0]
            mid = MIDS[pair.split("-")[1]]
            for side, price in ((Side.BUY, mid), (Side.SELL, mid * (1 + profit_pct / 100))):
                t = now()
                for seen in (t - 10, t):  # the governor has watched the market for 10 s
                    gov.observe_market(
                        MarketSnapshot(connector=name, trading_pair=pair, timestamp=seen, mid_price=price)
                    )
                reservation = _allowed(
                    gov,
                    OrderProposal(
                        bot_id="seed-bot",
                        connector=name,
                        trading_pair=pair,
                        side=side,
                        amount=Decimal("0.001"),
                        price=price,
                        mid_price=price,
                        mid_price_ts=t,
                        reduce_only=side is Side.SELL,
                    ),
                )
                gov.on_order_event(
                    OrderEvent(
                        kind=OrderEventKind.FILLED,
                        reservation_id=reservation,
                        filled_amount=Decimal("0.001"),
                        fill_price=price,
                        timestamp=t,
                    )
                )
    finally:
        gov.close()
