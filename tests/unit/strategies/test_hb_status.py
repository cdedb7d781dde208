"""What a governed script shows in Hummingbot's `status` and logs on a state change."""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal

from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.mandate_provider import NoCouncil
from lyra_governor.models import CouncilContext, Mandate, OrderProposal, Side
from lyra_strategies.hb_status import Denial, LadderWatch, safe_store_url, started_line, status_lines


class OneMandate(NoCouncil):
    """A provider holding one open mandate (as MandateBook.open_mandates lists them)."""

    def __init__(self, now: float) -> None:
        super().__init__()
        self.mandate = Mandate(
            consensus_id="cns-1", connector="binance_paper_trade", trading_pair="BTC-USDT",
            sides=frozenset({Side.BUY, Side.SELL}), max_order_notional_usd=Decimal(50),
            max_total_notional_usd=Decimal(500), price_low=Decimal(1), price_high=Decimal(10**6),
            issued_at=now, expires_at=now + 600,
        )  # fmt: skip

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return None

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None

    def open_mandates(self, now: float) -> list[Mandate]:
        return [self.mandate] if now < self.mandate.expires_at else []


def test_status_block_shows_phase_state_caps_mandates_denials_and_breakers(settings: Settings) -> None:
    gov = Governor.from_settings(settings, "bot-status", mandates=OneMandate(time.time()), strategy="t")
    try:
        gov.ledger.set_phase(3, "test", "paper")
        gov.ladder_state(fresh=True)
        denials = deque([Denial(time.time(), "PRICE_COLLAR", "limit 7.0 % from mid; widen the collar or re-quote")])
        text = "\n".join(status_lines(gov, ["binance_paper_trade"], {"ALLOWED": 3, "PRICE_COLLAR": 1}, denials))
        assert "Lyra governor  bot bot-status" in text and "council local" in text
        assert "Phase 3 (paper trading)" in text and "Trading: ACTIVE" in text
        assert "Caps (paper book)" in text and "binance " in text and "all exchanges" in text
        assert "Open mandates: 1: binance_paper_trade BTC-USDT BUY/SELL <= $50/order, 10 min left" in text
        assert "Denials by code: PRICE_COLLAR x1" in text and "widen the collar" in text
        assert "Breakers" in text
        gov.ledger.halt("drill", "test")
        gov.ladder_state(fresh=True)
        halted = "\n".join(status_lines(gov, ["binance_paper_trade"], {}, deque()))
        assert "Trading: HALTED" in halted and "reason: drill" in halted and "Denials: none" in halted
    finally:
        gov.close()


def test_ladder_watch_logs_each_change_once(settings: Settings) -> None:
    gov = Governor.from_settings(settings, "bot-watch", mandates=OneMandate(time.time()))
    try:
        watch = LadderWatch()
        assert watch.changes(gov.ladder_state(fresh=True)) == []  # the first state is the start line's
        gov.ledger.set_phase(3, "test", "paper")
        assert watch.changes(gov.ladder_state(fresh=True)) == [(False, "Lyra phase 1 -> 3 (paper trading)")]
        assert watch.changes(gov.ladder_state(fresh=True)) == []
        gov.ledger.halt("operator drill", "test")
        assert watch.changes(gov.ladder_state(fresh=True)) == [(True, "Lyra trading ACTIVE -> HALTED: operator drill")]
        assert "phase 3 (paper trading), trading HALTED" in started_line(gov)
    finally:
        gov.close()


def test_store_url_never_shows_a_password() -> None:
    shown = safe_store_url("postgresql+psycopg://lyra:s3cret@db:5432/lyra")
    assert "s3cret" not in shown and "db:5432/lyra" in shown


def test_status_shows_the_breakers_that_tripped(settings: Settings) -> None:
    """The governor's own breaker board: five rejected orders in a row trip the storm breaker."""
    gov = Governor.from_settings(settings, "bot-storm", mandates=OneMandate(time.time()))
    try:
        assert "Breakers: none tripped" in "\n".join(status_lines(gov, ["binance_paper_trade"], {}, deque()))
        now = time.time()
        for i in range(settings.breakers.storm_consecutive):
            gov.breakers.outcome(f"res-{i}", "binance", True, now)
        text = "\n".join(status_lines(gov, ["binance_paper_trade"], {}, deque()))
        assert "Breakers tripped: binance blocked" in text and "BREAKER_REJECT_STORM x1" in text, text
    finally:
        gov.close()
