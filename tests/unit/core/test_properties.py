"""Property: no sequence of proposals, fills, cancels and restarts ever puts deployed plus
reserved over a cap, and the ledger always agrees with its open reservations and audit chain."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderEvent, OrderEventKind, OrderProposal, Side

from .conftest import EnvelopeMandates, FakeClock

step = st.one_of(
    st.tuples(
        st.just("propose"),
        st.sampled_from(["binance_paper_trade", "okx_paper_trade"]),
        st.integers(min_value=1, max_value=400),
        st.booleans(),
    ),
    st.tuples(st.just("fill"), st.integers(min_value=0, max_value=50), st.integers(min_value=1, max_value=100)),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=400)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_caps_hold_under_any_sequence(steps: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_settings(
            None,
            use_env=False,
            db_url=f"sqlite:///{Path(tmp) / 'p.db'}",
            risk={"order_rate_max": 1000, "max_open_orders": 1000},
        )
        clock = FakeClock()
        mandates = EnvelopeMandates()
        gov = Governor.from_settings(cfg, "prop", mandates=mandates, clock=clock)
        gov.ledger.set_phase(3, "test", "property")
        open_ids: list[tuple[str, Decimal]] = []
        for action in steps:
            kind = action[0]
            if kind == "propose":
                _, connector, usd, sell = action
                amount = (Decimal(int(usd)) / Decimal(60000)).quantize(Decimal("0.00000001"))
                proposal = OrderProposal(
                    bot_id="prop",
                    connector=str(connector),
                    trading_pair="BTC-USDT",
                    side=Side.SELL if sell else Side.BUY,
                    amount=amount,
                    price=Decimal(60000),
                    mid_price=Decimal(60000),
                    mid_price_ts=clock.now,
                )
                decision = gov.review(proposal)
                if decision.status.value == "PENDING":
                    decision = gov.review(proposal)
                if decision.allowed and decision.reservation_id:
                    open_ids.append((decision.reservation_id, amount))
            elif kind == "fill" and open_ids:
                rid, amount = open_ids[int(action[1]) % len(open_ids)]
                part = (amount * int(action[2]) / 100).quantize(Decimal("0.00000001"))
                gov.on_order_event(
                    OrderEvent(
                        kind=OrderEventKind.FILLED, reservation_id=rid, filled_amount=part, fill_price=Decimal(60000)
                    )
                )
            elif kind == "cancel" and open_ids:
                rid, _ = open_ids.pop(int(action[1]) % len(open_ids))
                gov.on_order_event(OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=rid))
            elif kind == "restart":
                gov.store.close()
                gov = Governor.from_settings(cfg, "prop", mandates=mandates, clock=clock)
            elif kind == "wait":
                clock.advance(int(action[1]))
                gov.heartbeat()
            exposure = gov.ledger.exposure("paper")
            for scope in [*exposure.exchanges.values(), exposure.total]:
                assert scope.used_usd <= scope.cap_usd
        ok, detail = gov.ledger.totals_agree()
        assert ok, detail
        assert audit.verify(gov.ledger.engine).ok
        gov.close()
