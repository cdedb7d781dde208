"""A governed bot on the real Binance and OKX connectors, and the check that its three pictures
agree, per exchange.

The three pictures of one bot's capital on one exchange after any fault script:
- the ledger's: OPEN reservations and the live book's reserved and deployed USD there;
- the bot's: the connector's in-flight orders and the governor's net position there;
- the simulator's: its open orders, its trades and its balances.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lyra_governor.config import Settings, load_settings
from lyra_governor.governor import Governor
from lyra_governor.models import DecisionStatus, Side
from tests.live_sim.harness import PAIR, SYMBOLS, Rig

EXCHANGE = "binance"
CAP_USD = Decimal(100)  # phase 4, first rung
CENT = Decimal("0.01")
#: the tier's one settings change: the governor's reference warm-up at its minimum (2 s, not 5 s)
RISK = {"reference_min_history_s": 2}


class Bot:
    """The rig, one simulator, the governor and the strategy of one governed bot, seen on that
    simulator's exchange, plus the simulator's balances when the bot started (what the
    three-picture check counts from). A bot on two venues has one `Bot` view per venue."""

    def __init__(self, rig: Rig, sim: Any, gov: Governor, strategy: Any) -> None:
        self.rig, self.sim, self.gov, self.strategy = rig, sim, gov, strategy
        self.exchange: str = sim.name
        self.symbol = SYMBOLS[self.exchange]
        balances = sim.balances()
        self.base0 = sum(balances["BTC"], Decimal(0))
        self.quote0 = sum(balances["USDT"], Decimal(0))

    @property
    def connector(self) -> Any:
        return self.rig.connectors[self.exchange]

    def buy(self, amount: str, price: str) -> str:
        return governed_order(self.rig, self.strategy, Side.BUY, amount, price, exchange=self.exchange)

    def sell(self, amount: str, price: str) -> str:
        return governed_order(self.rig, self.strategy, Side.SELL, amount, price, exchange=self.exchange)

    def cancel(self, order_id: str) -> None:
        self.strategy.cancel(self.exchange, PAIR, order_id)

    def exposure(self) -> Any:
        return self.gov.exposure("live").exchanges[self.exchange]

    def acked(self, order_id: str) -> None:
        """Wait until the connector holds the order as open on the exchange."""
        from hummingbot.core.data_type.in_flight_order import OrderState

        def done() -> bool:
            order = self.connector.in_flight_orders.get(order_id)
            return order is not None and order.current_state is OrderState.OPEN

        self.rig.wait(done, 10, f"the exchange's id for {order_id}")

    def agree(self, timeout: float = 10.0) -> None:
        agree(self.rig, self.gov, self.strategy, self.sim, self.base0, self.quote0, timeout)

    def problems(self) -> list[str]:
        return disagreements(self.rig, self.gov, self.strategy, self.sim, self.base0, self.quote0)


def agree_all(bots: list[Bot], timeout: float = 10.0) -> None:
    """Wait (bounded) until every venue's three pictures agree at once."""
    last: list[list[str]] = [[]]

    def check() -> bool:
        last[0] = [f"{b.exchange}: {p}" for b in bots for p in b.problems()]
        return not last[0]

    bots[0].rig.wait(check, timeout, lambda: "the three pictures to agree on every venue:\n  " + "\n  ".join(last[0]))


def live_settings(lyra_home: Path) -> Settings:
    """Embedded defaults on a fresh SQLite file; the governor's reference warm-up at its minimum
    (2 s instead of 5 s) so each bot starts trading sooner (the tier's time budget)."""
    return load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}", data_dir=str(lyra_home),
                         risk=RISK)  # fmt: skip


def phase4_governor(settings: Settings, bot_id: str = "live-sim-bot") -> Governor:
    """A governor on the settings' store, the ladder at phase 4 (first rung: $100 per exchange)."""
    gov = Governor.from_settings(settings, bot_id=bot_id, strategy="live_sim")
    if gov.ledger.state().phase != 4:
        gov.ledger.set_phase(4, "live-sim", "the live_sim tier trades Hummingbot's live connector at rung $100")
    gov.ladder_state(fresh=True)
    return gov


def probe_strategy(rig: Rig, gov: Governor) -> Any:
    """A governed strategy with no logic of its own: the test proposes its orders through it,
    so each one takes the real path (governor, then the live connector's `buy`/`sell`)."""
    from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase

    from lyra_strategies.governed import GovernedStrategyV2Base

    names = list(rig.connectors)

    class ProbeConfig(StrategyV2ConfigBase):  # type: ignore[misc]
        script_file_name: str = "live_sim_probe.py"

        def update_markets(self, markets: Any) -> Any:
            for name in names:
                markets = markets.add_or_update(name, PAIR)
            return markets

    class Probe(GovernedStrategyV2Base):  # type: ignore[misc]
        def on_tick(self) -> None:
            pass

    config = ProbeConfig()
    Probe.init_markets(config)

    async def build() -> Any:
        return Probe(dict(rig.connectors), config, governor=gov)

    return rig.run(build())


def ready_to_trade(rig: Rig, strategy: Any, timeout: float = 20.0) -> None:
    """Wait until the strategy has reconciled with the exchange and observed its book (the
    council judges a mandate on the market it has seen)."""
    seen = strategy.lyra.watch.snapshot
    rig.wait(lambda: strategy.reconciliation is not None and all(seen(n, PAIR) is not None for n in rig.connectors),
             timeout, "reconciliation on start and a first look at every book")  # fmt: skip


def governed_order(
    rig: Rig, strategy: Any, side: Side, amount: str, price: str, timeout: float = 20.0, exchange: str = EXCHANGE
) -> str:
    """Propose until the council's mandate covers it (the first proposal asks for one); return
    the order id (a `lyra-denied-` id if the governor refused it)."""
    from hummingbot.core.data_type.common import OrderType

    place = strategy.buy if side is Side.BUY else strategy.sell
    order_id: list[str] = []

    def attempt() -> bool:
        order_id[:] = [place(exchange, PAIR, Decimal(amount), OrderType.LIMIT, Decimal(price))]
        return strategy.last_decision.status is not DecisionStatus.PENDING

    rig.wait(attempt, timeout, lambda: f"a mandate for {side} {amount} @ {price}: {strategy.last_decision}")
    return order_id[0]


def audit_rows(gov: Governor) -> list[dict[str, Any]]:
    from lyra_governor.store import audit_log

    with gov.ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.event, audit_log.c.payload).order_by(audit_log.c.seq)).all()
    return [{"event": r.event, **json.loads(r.payload)} for r in rows]


def disagreements(rig: Rig, gov: Governor, strategy: Any, sim: Any, base0: Decimal, quote0: Decimal) -> list[str]:
    """Every way the ledger, the bot and the simulator of `sim`'s exchange disagree (empty:
    they agree)."""
    from lyra_governor import audit

    exchange = sim.name
    connector = rig.connectors[exchange]
    problems: list[str] = []
    rid_of: dict[str, str] = {**strategy._reservation_of}
    sim_orders = {o.client_id: o for o in sim.call(lambda: list(sim.orders.values()))}
    bot_orders = {cid for cid in sim_orders if cid.startswith(connector.client_order_id_prefix)}
    sim_open = {cid for cid in bot_orders if sim_orders[cid].is_open}
    hb_open = {cid for cid, o in connector.in_flight_orders.items() if not o.is_done}
    if sim_open != hb_open:
        problems.append(f"open orders: simulator {sorted(sim_open)} vs Hummingbot {sorted(hb_open)}")
    ledger_open = {
        r["reservation_id"]: r for r in gov.ledger.open_reservations(gov.bot_id) if r["connector"] == exchange
    }
    expected_open = {rid_of[cid] for cid in sim_open if cid in rid_of}
    if set(ledger_open) != expected_open:
        problems.append(
            f"OPEN reservations: ledger {sorted(ledger_open)} vs the simulator's open orders {sorted(expected_open)}"
        )
    exposure = gov.ledger.exposure("live")
    ex = exposure.exchanges[exchange]

    def reserves(cid: str) -> bool:  # a reduce-only sell (closing a long) reserves nothing
        row = ledger_open.get(rid_of.get(cid, ""))
        return row is not None and not (row["reduce_only"] and row["side"] == "SELL")

    reserved = sum((sim_orders[cid].remaining * sim_orders[cid].price for cid in sim_open if reserves(cid)), Decimal(0))
    if abs(ex.reserved_usd - reserved) > CENT:
        problems.append(f"reserved: ledger {ex.reserved_usd} USD vs open orders on the simulator {reserved} USD")
    trades = [t for t in sim.trades_of(SYMBOLS[exchange]) if t.client_id in bot_orders]
    deployed = Decimal(0)  # the ledger's rule: a sale never takes deployed capital below zero
    for t in sorted(trades, key=lambda t: t.trade_id):
        deployed = max(Decimal(0), deployed + t.qty * t.price * (1 if t.side == "BUY" else -1))
    if abs(ex.deployed_usd - deployed) > CENT:
        problems.append(f"deployed: ledger {ex.deployed_usd} USD vs the simulator's fills {deployed} USD")
    if ex.reserved_usd + ex.deployed_usd > ex.cap_usd or ex.cap_usd != CAP_USD:
        problems.append(f"cap: reserved {ex.reserved_usd} + deployed {ex.deployed_usd} vs cap {ex.cap_usd}")
    fills = gov.ledger.fill_rows(book="live", exchange=exchange)
    net_ledger = sum((Decimal(f["amount"]) * (1 if f["side"] == "BUY" else -1) for f in fills), Decimal(0))
    net_sim = sum((t.qty * (1 if t.side == "BUY" else -1) for t in trades), Decimal(0))
    position = gov.store.bot_position(gov.bot_id, "live", exchange, PAIR)
    if not (net_ledger == net_sim == position):
        problems.append(f"position: ledger fills {net_ledger}, governor {position}, simulator trades {net_sim} BTC")
    if len(fills) != len(trades):
        problems.append(f"fills: {len(fills)} in the ledger vs {len(trades)} trades on the simulator")
    fees_usd = sum((t.commission * (t.price if t.commission_asset == "BTC" else 1) for t in trades), Decimal(0))
    ledger_fees = sum((Decimal(f["fee_musd"]) / 1_000_000 for f in fills), Decimal(0))
    if abs(ledger_fees - fees_usd) > CENT:
        problems.append(f"fees: ledger {ledger_fees} USD vs the simulator's commissions {fees_usd} USD")
    base_fees = sum((t.commission for t in trades if t.commission_asset == "BTC"), Decimal(0))
    quote_fees = sum((t.commission for t in trades if t.commission_asset == "USDT"), Decimal(0))
    free_b, locked_b = sim.balances()["BTC"]
    free_q, locked_q = sim.balances()["USDT"]
    if free_b + locked_b != base0 + net_sim - base_fees:
        problems.append(f"BTC balance {free_b + locked_b} vs start {base0} + fills {net_sim} - fees {base_fees}")
    spent = sum((t.qty * t.price * (1 if t.side == "BUY" else -1) for t in trades), Decimal(0))
    if free_q + locked_q != quote0 - spent - quote_fees:
        problems.append(f"USDT balance {free_q + locked_q} vs start {quote0} - fills {spent} - fees {quote_fees}")
    hb_total = connector.get_balance("USDT")
    if hb_total != free_q + locked_q:
        problems.append(f"Hummingbot's USDT balance {hb_total} vs the simulator's {free_q + locked_q}")
    rows = audit_rows(gov)
    allowed = {r["reservation_id"] for r in rows if r["event"] == "decision" and r.get("status") == "ALLOWED"}
    missing = {rid for rid in rid_of.values() if rid not in allowed}
    if missing:
        problems.append(f"decisions missing from the audit trail: {sorted(missing)}")
    audited_fills = [r for r in rows if r["event"] == "order_event" and r.get("kind") == "FILLED"]
    all_fills = gov.ledger.fill_rows(book="live")
    if len(audited_fills) != len(all_fills):
        problems.append(f"fills in the audit trail {len(audited_fills)} vs fill rows {len(all_fills)}")
    verified = audit.verify(gov.ledger.engine)
    if not verified.ok:
        problems.append(f"audit chain broken: {verified.problem}")
    return problems


def agree(
    rig: Rig, gov: Governor, strategy: Any, sim: Any, base0: Decimal, quote0: Decimal, timeout: float = 10.0
) -> None:
    """Wait (bounded) until the three pictures agree; fail naming every disagreement left."""
    last: list[list[str]] = [[]]

    def check() -> bool:
        last[0] = disagreements(rig, gov, strategy, sim, base0, quote0)
        return not last[0]

    rig.wait(check, timeout, lambda: "the three pictures to agree:\n  " + "\n  ".join(last[0]))


def cap_monitor(gov: Governor) -> Callable[[], None]:
    """A check for every poll of `Rig.wait`: on every exchange, reserved + deployed never above
    the cap (`peak`: the most used on any one)."""
    peak = [Decimal(0)]

    def check() -> None:
        for name, ex in gov.exposure("live").exchanges.items():
            used = ex.reserved_usd + ex.deployed_usd
            peak[0] = max(peak[0], used)
            assert used <= ex.cap_usd, f"cap exceeded on {name}: {used} USD > {ex.cap_usd} USD"

    check.peak = peak  # type: ignore[attr-defined]
    return check
