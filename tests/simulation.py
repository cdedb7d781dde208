"""A seeded, deterministic simulator of several bots against one store (in the spirit of
TigerBeetle's VOPR): random interleavings of proposals, fills, cancels, failures, halts,
gradual stops, silent bots, restarts and crashes, with the governor's invariants checked
after every step. The operator reviews the store as often as a runbook asks (lifts a bot's
restriction after an impossible event, resumes, releases a silent bot's orphans) and restarted
bots reconcile their reclaimed orders, so a large share of proposals is ALLOWED and fills: the
invariants are checked under traffic, not only under denials.

It drives only the public API (`Governor.review`, `on_order_event`, `observe_market`,
`heartbeat`, `Ledger.halt/reduce_only/resume`) and reads only what an operator reads
(`Ledger.exposure`, `totals_agree`, `fill_rows`, `audit.verify`), so it survives refactors
of what is behind them. Short in CI (tests/unit/guard/test_simulation.py), long in
`bench/simulate.py` (>= 10^5 steps, on SQLite and PostgreSQL).

A run is a pure function of its seed (and the code): the same seed gives the same decisions,
the same audit chain record for record (ids and hashes included) and the same report, so a
seed that finds a violation replays it. Nothing the governor decides on reads a clock or an
entropy source of the machine's: every governor's clock and its ladder view's cache clock are
the simulated one (`Simulation.clock`), the ids (proposals, mandates, reservations) are drawn
from a generator seeded apart from the schedule's, and the store's wall-clock budget is one no
healthy run reaches (`SIM_BUDGET_MS`; a call cut short by it is a fault the seed does not
schedule: it is counted, `store_failed:*` and STORE_BUSY/STORE_UNAVAILABLE, and a run that has
one is reproducible only up to it). tests/unit/guard/test_simulation.py runs a seed twice.

Invariants (a violation is recorded with its step and the seed that replays it):
- caps: deployed + reserved + orphaned <= cap in every scope of the paper book, and the sum
  over the exchanges <= the total cap, whenever trading is ACTIVE (a fill past a cap, from
  slippage, an overfill or a late fill, is booked and stops trading at once; `resume` is
  refused until reduce-only closes bring it back under);
- halt: no ALLOWED decision while a committed halt stands, checked on each decision and by
  replaying the audit trail (`invariants.stopped_but_allowed`: also nothing but reduce-only
  orders allowed in a gradual stop);
- closes: an allowed reduce-only close that took the close path (no mandate) never exceeds
  the bot's position on that market (with the close tolerance), counted with the closes
  already resting (hole 3);
- totals: each scope's reserved (orphaned) capital equals the sum of its open (orphaned)
  reservations, each TOTAL row the sum over its exchanges (`invariants.check_invariants`,
  every 25 steps);
- audit: the chain verifies (every `verify_every` steps and at the end).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from lyra_governor import audit
from lyra_governor.config import Settings, load_settings
from lyra_governor.errors import LyraError, StoreUnavailable
from lyra_governor.governor import Governor
from lyra_governor.invariants import TrailCursor, stopped_but_allowed
from lyra_governor.ladder_view import STATE_REFRESH_S
from lyra_governor.ledger import Ledger
from lyra_governor.models import (
    CouncilContext,
    Decision,
    Mandate,
    MarketSnapshot,
    OrderEvent,
    OrderEventKind,
    OrderProposal,
    OrderType,
    Side,
    TradingState,
    new_id,
)
from lyra_governor.order_store import OrderStore
from lyra_governor.reservation import ReservationIds
from lyra_governor.store import STORE_ERRORS, read_tx

CONNECTORS = ("binance_paper_trade", "okx_paper_trade", "kraken_paper_trade")
PAIR = "BTC-USDT"
START = 1_800_000_000.0
START_MID = Decimal(60000)
#: The store's budget per call in a simulation (the most `store.budget_ms` allows): a wall-clock
#: bound, the one thing the simulated clock cannot drive, set where a healthy run never meets it
#: so that no call's fate depends on the machine's speed (`bench/simulate.py --budget-ms 200`
#: runs with the production budget, as a loaded machine misses it: then not reproducible).
SIM_BUDGET_MS = 10_000
#: The ladder view's cache lifetimes drawn from (simulated seconds, one per governor started):
#: live it is `STATE_REFRESH_S` (0.25 s); when it aged on the wall clock here, a cache lived
#: ~300 steps on an idle machine (0.8 ms a step: ~85 simulated s) and ~50 under load (~14 s),
#: so a bot saw another's commits (a restriction lifted, a stop) that much later: kept, seeded.
VIEW_REFRESH_S = (STATE_REFRESH_S, 1.0, 5.0, 30.0, 90.0)


def hostile_proposal(
    rng: random.Random,
    bot_id: str,
    connector: str,
    mid: Decimal,
    now: float,
    position: Callable[[], Decimal],
    fullness: Callable[[], tuple[float, bool]],
    proposal_id: str | None = None,
) -> OrderProposal:
    """One random proposal as a strategy under attack makes them: mostly ordinary LIMIT quotes
    within 1 % of mid, and MARKET orders, NaN/zero/negative/1e30 prices and amounts, fat
    fingers, reduce-only closes (of the whole `position()` or half, or of nothing), a mid that
    lies. `fullness()` is (share of the total cap used, whether this exchange holds deployed
    capital): as the cap fills, the book sells its inventory off, as a strategy would.
    `proposal_id`: the proposal's id (None: a random one, `models.new_id`)."""
    side = rng.choice((Side.BUY, Side.SELL))
    used, deployed = fullness()
    if deployed and rng.random() < used:  # the book works its inventory off as the cap fills
        side = Side.SELL
    reduce_only = rng.random() < 0.25
    amount = rng.choice((Decimal("0.0005"), Decimal("0.001"), Decimal("0.002"), Decimal("0.003"), Decimal("0.004")))
    price: Decimal | None = (mid * Decimal(1 + rng.uniform(-0.01, 0.01))).quantize(Decimal("0.01"))
    order_type = OrderType.LIMIT
    kind = rng.random()
    if kind < 0.15:
        order_type, price = OrderType.MARKET, None
    elif kind < 0.20:
        price = rng.choice((Decimal("NaN"), None, Decimal(0), Decimal(-1), Decimal("1e30")))
    elif kind < 0.24:
        amount = rng.choice((Decimal("NaN"), Decimal("1e30"), Decimal(0), Decimal("-0.001"), Decimal(5)))
    elif kind < 0.26:
        price = mid * Decimal("1.5")  # a fat finger
    if reduce_only:
        held = position()
        if held and rng.random() < 0.7:
            amount = abs(held) if rng.random() < 0.5 else abs(held) / 2
            side = Side.SELL if held > 0 else Side.BUY
    if side is Side.SELL and not reduce_only and amount.is_finite() and amount > 0 and rng.random() < 0.9:
        held = position()  # a spot strategy sells what it holds (nine times in ten: the rest fail)
        if amount > held:
            amount, side = (held, Side.SELL) if held > 0 else (amount, Side.BUY)
    mid_seen = mid if rng.random() > 0.02 else mid * Decimal("1.2")  # a proposal lying about its mid
    ids = {} if proposal_id is None else {"proposal_id": proposal_id}
    return OrderProposal(**ids, bot_id=bot_id, connector=connector, trading_pair=PAIR, side=side, order_type=order_type,
                         amount=amount, price=price, mid_price=mid_seen, mid_price_ts=now,
                         reduce_only=reduce_only)  # fmt: skip


#: What a store that does not answer in its budget raises (lyra_governor.store.STORE_ERRORS).
STORE_FAILURES = STORE_ERRORS

T = TypeVar("T")


def patient(call: Callable[[], T], seconds: float = 60) -> T:
    """`call()`, again while the store does not answer (up to `seconds` wall s, then it raises)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except STORE_FAILURES:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def deliver_event(gov: Governor, event: OrderEvent, counts: Counter[str]) -> None:
    """`gov.on_order_event(event)`, retried while the store does not answer (see `deliver`)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            gov.on_order_event(event)
            return
        except StoreUnavailable:
            counts["event_retried"] += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SimMandates:
    """A standing mandate per market (the council is not under test; the code path is real).
    `new_id(prefix)` names its mandates (a seeded simulation's: `Simulation.new_id`)."""

    per_order = False

    def __init__(self, new_id: Callable[[str], str] = new_id) -> None:
        self.new_id = new_id

    def find(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> Mandate | None:
        return Mandate(
            mandate_id=self.new_id("mnd"), consensus_id="cns-sim", connector=proposal.connector,
            trading_pair=proposal.trading_pair,
            sides=frozenset(Side), max_order_notional_usd=Decimal(10**6), max_total_notional_usd=Decimal(10**15),
            price_low=Decimal(0), price_high=Decimal(10**12), issued_at=now, expires_at=now + 900,
        )  # fmt: skip

    def request(self, proposal: OrderProposal, context: CouncilContext) -> None:
        return None

    def revoke(self, exchange: str | None, why: str) -> None:
        return None

    def subscribe(self, listener: Any) -> None:
        return None

    def stats(self) -> dict[str, float]:
        return {"requests": 0, "cost_usd": 0.0}

    def close(self) -> None:
        return None


@dataclass
class Order:
    reservation_id: str
    connector: str
    side: Side
    amount: Decimal
    price: Decimal
    reduce_only: bool
    filled: Decimal = Decimal(0)
    done: bool = False
    market: bool = False


@dataclass
class Bot:
    bot_id: str
    gov: Governor
    orders: list[Order] = field(default_factory=list)
    closed: list[Order] = field(default_factory=list)  # for duplicate and late events
    silent_until: float = 0.0
    reconcile: bool = False  # restarted: once its first heartbeat reclaimed its orphans, reconcile


#: Invariants whose holes the core engineer closes (issue 14 holes 3, 4, 7, 8, 9, 10); the rest
#: (halt, caps without overfills, totals, audit) must hold everywhere.
CORE_HOLES = ("hole 3", "hole 4", "hole 7", "hole 8", "hole 9", "hole 10")


@dataclass
class Report:
    steps: int = 0
    violations: list[str] = field(default_factory=list)  # one per incident (an invariant newly broken)
    broken_steps: int = 0  # steps after which some invariant did not hold
    actions: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    fills: int = 0  # fills the store booked (read from its fills table at the end)

    @property
    def allowed(self) -> int:
        return self.decisions.get("ALLOWED", 0)

    @property
    def denials(self) -> dict[str, int]:
        return {code: n for code, n in sorted(self.decisions.items()) if code != "ALLOWED"}

    @property
    def core_violations(self) -> list[str]:
        return [v for v in self.violations if any(h in v for h in CORE_HOLES)]

    @property
    def other_violations(self) -> list[str]:
        return [v for v in self.violations if not any(h in v for h in CORE_HOLES)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "allowed": self.allowed,
            "proposals": sum(self.decisions.values()),
            "fills": self.fills,
            "denials": self.denials,
            "violations": len(self.violations),
            "violations_core_holes": len(self.core_violations),
            "broken_steps": self.broken_steps,
            "first_violations": self.violations[:10],
            "actions": dict(self.actions),
            "decisions": dict(self.decisions),
        }


class Simulation:
    def __init__(
        self, db_url: str, seed: int, bots: int = 3, verify_every: int = 2000, budget_ms: int | None = None
    ) -> None:
        self.rng = random.Random(seed)
        # the ids and the governors' cache lifetimes: seeded, apart from the schedule's draws
        self.ids = random.Random(f"{seed}:ids")
        self.reservation_ids = ReservationIds(self.ids.randbytes)  # one source: ids unique over restarts
        self.seed = seed
        self.now = START
        self.settings: Settings = load_settings(
            None, use_env=False, db_url=db_url,
            risk={"order_rate_max": 50, "max_open_orders": 30},
            store={"budget_ms": budget_ms or SIM_BUDGET_MS},
            # loss limits wide: the random walk is not a strategy, and the unit tests cover them
            breakers={"storm_cooldown_s": 30, "duplicate_window_s": 0.5, "daily_loss_pct": 50, "drawdown_pct": 50},
        )  # fmt: skip
        self.operator = Ledger.open(self.settings, self.clock)
        self.desk = OrderStore(self.operator.engine)  # what `resume --bot` and `orphans release` write with
        self._ledgers: dict[str, Ledger] = {}
        if self.operator.state().phase != 3:
            self.operator.set_phase(3, "sim", "simulated paper trading")
        self.mids = {c: START_MID for c in CONNECTORS}
        self.bots = [self._start(f"sim-{seed}-{i}") for i in range(bots)]
        self.report = Report()
        self.verify_every = verify_every
        self.overfilled = False
        self.bad_fills = False
        self._broken: set[str] = set()
        self._trail = TrailCursor()
        self._positions: dict[tuple[str, str], Decimal] = {}
        self._fill_id, self._fill_ts = 0, 0.0
        self.tolerance = 1 + Decimal(str(self.settings.risk.close_tolerance_pct)) / 100

    def clock(self) -> float:
        return self.now

    def new_id(self, prefix: str) -> str:
        """An id in `models.new_id`'s form, from the seeded id generator."""
        return f"{prefix}-{self.ids.randbytes(6).hex()}"

    def _start(self, bot_id: str) -> Bot:
        # A new governor (its own dedicated store connection, its memory empty) on the bot's
        # Ledger, opened once: the Ledger holds no state but its engine, and opening one checks
        # the whole schema (0.75 s on a loaded PostgreSQL, 2,000 restarts in 10^5 steps).
        ledger = self._ledgers.get(bot_id)
        if ledger is None:
            ledger = self._ledgers[bot_id] = Ledger.open(self.settings, self.clock)
        gov = Governor.from_settings(self.settings, bot_id, mandates=SimMandates(self.new_id), clock=self.clock,
                                     ledger=ledger, reservation_ids=self.reservation_ids.new)  # fmt: skip
        # its cache of the ladder state ages on the simulated clock too (live: the wall clock's)
        gov.ladder_view.clock, gov.ladder_view.refresh_s = self.clock, self.ids.choice(VIEW_REFRESH_S)
        bot = Bot(bot_id, gov)
        for row in gov.ledger.open_reservations(bot_id):  # what a restarted bot learns from the store
            bot.orders.append(Order(row["reservation_id"], row["connector"], Side(row["side"]), Decimal(row["amount"]),
                                    Decimal(row["price"]), bool(row["reduce_only"]),
                                    Decimal(row["filled_amount"])))  # fmt: skip
        return bot

    def close(self) -> None:
        for bot in self.bots:
            bot.gov.close()
        for ledger in self._ledgers.values():
            ledger.close()
        self.desk.close()
        self.operator.close()

    # --- the run ----------------------------------------------------------------------------

    def run(self, steps: int, progress: Any = None) -> Report:
        """`steps` random actions, the invariants checked after each; `progress(report)` is
        called every `verify_every` steps (the long run prints a line)."""
        actions = (
            (self.tick, 30), (self.propose, 32), (self.fill, 14), (self.cancel, 8), (self.fail, 5),
            (self.bad_event, 2), (self.operator_move, 1), (self.operator_review, 3), (self.silence, 0.3),
            (self.restart, 1), (self.crash, 1),
        )  # fmt: skip
        names = [a.__name__ for a, _ in actions]
        weights = [w for _, w in actions]
        for _ in range(steps):
            i = self.rng.choices(range(len(actions)), weights)[0]
            self.report.actions[names[i]] += 1
            self.weather(actions[i][0], f"store_failed:{names[i]}")
            self.report.steps += 1
            self.weather(self.check, "check_deferred")  # the next step's check covers it
            if self.report.steps % self.verify_every == 0:
                patient(self.check_audit)
                if progress is not None:
                    progress(self.report)
        patient(self.check)
        patient(self.check_audit)
        self.report.fills = len(patient(lambda: self.operator.fill_rows(book="paper")))
        return self.report

    def weather(self, action: Callable[[], None], what: str) -> None:
        """Run `action`; a store that did not answer in its budget (a loaded machine, a
        PostgreSQL reconnect) makes it fail as it would fail an operator's command or a bot's
        tick: counted, and the run goes on (what the store holds is checked all the same)."""
        try:
            action()
        except STORE_FAILURES:
            self.report.actions[what] += 1
            time.sleep(0.05)

    # --- actions ----------------------------------------------------------------------------

    def tick(self) -> None:
        self.now += self.rng.choice((0.1, 0.5, 1.0, 1.0, 2.0))
        for c in CONNECTORS:
            flash = self.rng.random() < 0.005
            step = Decimal(self.rng.choice((-0.06, 0.06))) if flash else Decimal(self.rng.gauss(0, 0.0005))
            step += (START_MID - self.mids[c]) / START_MID / 200  # back towards 60,000: no loss limit for ever
            self.mids[c] = max(Decimal(1000), (self.mids[c] * (1 + step)).quantize(Decimal("0.01")))
        for bot in self.bots:
            if self.now < bot.silent_until:
                continue
            for c in CONNECTORS:
                bot.gov.observe_market(MarketSnapshot(connector=c, trading_pair=PAIR, timestamp=self.now,
                                                      mid_price=self.mids[c]))  # fmt: skip
            bot.gov.heartbeat()
            if bot.reconcile:
                self.reconcile(bot)

    def propose(self) -> None:
        bot = self.rng.choice(self.bots)
        if self.now < bot.silent_until:
            return
        c = self.rng.choice(CONNECTORS)
        proposal = hostile_proposal(self.rng, bot.bot_id, c, self.mids[c], self.now, lambda: self.position(bot, c),
                                    lambda: self._fullness(c), self.new_id("prp"))  # fmt: skip
        side, amount, reduce_only, price = proposal.side, proposal.amount, proposal.reduce_only, proposal.price
        mid = self.mids[c]
        state_before = self.operator.state().trading_state
        position_before = self.position(bot, c)
        resting_closes = sum(
            (o.amount - o.filled for o in bot.orders if o.connector == c and o.reduce_only and o.side is side
             and not o.done), Decimal(0),
        )  # fmt: skip
        decision: Decision = bot.gov.review(proposal)
        self.report.decisions[decision.code.value if decision.code else decision.status.value] += 1
        if not decision.allowed:
            return
        if state_before is TradingState.HALTED:
            self.violation(f"ALLOWED {proposal.side} {proposal.amount} on {c} after a committed halt")
        if reduce_only and decision.mandate_id is None:  # took the close path
            closable = position_before if side is Side.SELL else -position_before
            if amount + resting_closes > max(closable, Decimal(0)) * self.tolerance:
                self.violation(
                    f"close of {amount} {side} on {c} with {resting_closes} resting, position {position_before} "
                    "(hole 3: closes stack)"
                )
        assert decision.reservation_id is not None
        valued = price if price is not None else mid
        bot.orders.append(Order(decision.reservation_id, c, side, amount, valued, reduce_only, market=price is None))

    def deliver(self, bot: Bot, event: OrderEvent) -> None:
        """Hand an exchange event to the bot's governor as a connector does: a store that does
        not answer in its budget (StoreUnavailable/StoreBusy: a loaded machine, a PostgreSQL
        reconnect) gets it again until it takes it (up to 30 wall s, then the run fails)."""
        deliver_event(bot.gov, event, self.report.actions)

    def _pick(self) -> tuple[Bot, Order] | None:
        bot = self.rng.choice(self.bots)
        live = [o for o in bot.orders if not o.done]
        if not live:
            return None
        return bot, self.rng.choice(live)

    def fill(self) -> None:
        picked = self._pick()
        if picked is None:
            return
        bot, order = picked
        left = order.amount - order.filled
        r = self.rng.random()
        amount = left if r < 0.6 else (left / 2).quantize(Decimal("0.00000001"))
        if amount <= 0:
            return
        if order.side is Side.SELL and self.position(bot, order.connector) < amount:  # spot: nothing to sell
            self.report.actions["sell_failed_no_balance"] += 1
            self.deliver(bot, OrderEvent(kind=OrderEventKind.FAILED, reservation_id=order.reservation_id))
            order.done = True
            bot.closed.append(order)
            return
        # a LIMIT order fills at its price or better; a MARKET order at the mid, a little worse
        better = Decimal(self.rng.uniform(0, 0.001))
        buy = order.side is Side.BUY
        if order.market:
            price = self.mids[order.connector] * (1 + better / 5 if buy else 1 - better / 5)
        else:
            price = order.price * (1 - better if buy else 1 + better)
        event = OrderEvent(kind=OrderEventKind.FILLED, reservation_id=order.reservation_id,
                           filled_amount=amount, fill_price=price.quantize(Decimal("0.01")),
                           timestamp=self.now)  # fmt: skip
        self.deliver(bot, event)
        order.filled += amount
        if order.filled >= order.amount:
            order.done = True
            bot.closed.append(order)
        if self.rng.random() < 0.05:  # the exchange delivers the same fill twice
            self.report.actions["duplicate_fill"] += 1
            self.bad_fills = True
            self.deliver(bot, event)

    def cancel(self) -> None:
        picked = self._pick()
        if picked is not None:
            bot, order = picked
            self.deliver(bot, OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=order.reservation_id))
            order.done = True
            bot.closed.append(order)

    def fail(self) -> None:
        picked = self._pick()
        if picked is not None:
            bot, order = picked
            self.deliver(bot, OrderEvent(kind=OrderEventKind.FAILED, reservation_id=order.reservation_id))
            order.done = True
            bot.closed.append(order)

    def bad_event(self) -> None:
        """Late and impossible events: a fill after a cancel, a negative or zero-price fill, an
        overfill (1000x), an event for an unknown reservation."""
        bot = self.rng.choice(self.bots)
        kind = self.rng.random()
        if kind < 0.5 and bot.closed:
            order = self.rng.choice(bot.closed)
            amount = order.amount / 4
            self.report.actions["late_fill"] += 1
            self.bad_fills = True
            self.deliver(bot, OrderEvent(kind=OrderEventKind.FILLED, reservation_id=order.reservation_id,
                                              filled_amount=amount, fill_price=order.price))  # fmt: skip
            # a fill after the cancel released its capital is booked all the same (it happened):
            # if it takes a cap past its limit, the store stops trading at once (check)
        elif kind < 0.8:
            self.report.actions["unknown_event"] += 1
            self.deliver(bot, OrderEvent(kind=OrderEventKind.FILLED, reservation_id="res-doesnotexist",
                                              filled_amount=Decimal("0.001"), fill_price=Decimal(60000)))  # fmt: skip
        else:
            live = [o for o in bot.orders if not o.done]
            if not live:
                return
            order = self.rng.choice(live)
            amount, price = self.rng.choice(
                ((Decimal("-0.001"), order.price), (order.amount * 1000, order.price), (order.amount, Decimal(0)))
            )
            self.report.actions["impossible_fill"] += 1
            self.bad_fills = True
            if amount > order.amount:
                self.overfilled = True
            try:
                self.deliver(bot, OrderEvent(kind=OrderEventKind.FILLED, reservation_id=order.reservation_id,
                                                  filled_amount=amount, fill_price=price))  # fmt: skip
            except Exception as exc:  # the governor may refuse it loudly; it must not corrupt the ledger
                self.report.actions[f"raised:{type(exc).__name__}"] += 1
            # the bot is now restricted to reducing (an impossible event) until the operator
            # checks it and lets it trade again (`operator_review`)

    def operator_move(self) -> None:
        state = self.operator.state().trading_state
        r = self.rng.random()
        if state is not TradingState.ACTIVE:
            if r < 0.9:
                self.resume("simulated resume")
        elif r < 0.3:
            self.operator.reduce_only("simulated gradual stop", "sim-operator")
        elif r < 0.5:
            self.operator.halt("simulated halt", "sim-operator", demote=False)
        for bot in self.bots:  # what the MQTT halt message does: each bot re-reads the store at once
            bot.gov.ladder_state(fresh=True)

    def resume(self, why: str) -> bool:
        """The operator resumes; refused while a booked fill holds a cap past its limit (then
        the bots' reduce-only closes, which pass in the stop, bring it back under)."""
        try:
            self.operator.resume("sim-operator", why)
        except LyraError:
            self.report.actions["resume_refused_over_cap"] += 1
            return False
        return True

    def operator_review(self) -> None:
        """The operator reads `status` and acts, as the runbook says: lets a bot restricted after
        an impossible event trade again (`resume --bot`, after checking it), resumes a stopped
        store, and releases a silent bot's orphaned reservations once the exchange shows none of
        its orders (`orphans release`: the sim's exchange cancels them first). Without it the run
        soon has every bot reduce-only and tests the denials only."""
        for bot in self.bots:
            if self.rng.random() < 0.6 and self.desk.lift_restriction(bot.bot_id, "sim-operator", self.now):
                self.report.actions["restriction_lifted"] += 1
        state = self.operator.state().trading_state
        if state is not TradingState.ACTIVE and self.rng.random() < 0.5 and self.resume("simulated review"):
            self.report.actions["resumed"] += 1
            for bot in self.bots:
                bot.gov.ladder_state(fresh=True)
        for bot in self.bots:
            if self.now >= bot.silent_until or self.rng.random() < 0.5:
                continue
            released = set(self.desk.release_orphans(bot.bot_id, "sim-operator", self.now, "checked the exchange"))
            if released:
                self.report.actions["orphans_released"] += 1
                for order in bot.orders:
                    if order.reservation_id in released and not order.done:
                        order.done = True
                        bot.closed.append(order)

    def reconcile(self, bot: Bot) -> None:
        """A restarted bot, once its first heartbeat made its orphaned reservations its own again,
        reconciles with the exchange: it adopts what the exchange still holds (tracks it again) and
        cancels the rest."""
        bot.reconcile = False
        known = {o.reservation_id for o in bot.orders}
        for row in bot.gov.ledger.open_reservations(bot.bot_id):
            if row["reservation_id"] in known:
                continue
            order = Order(row["reservation_id"], row["connector"], Side(row["side"]), Decimal(row["amount"]),
                          Decimal(row["price"]), bool(row["reduce_only"]), Decimal(row["filled_amount"]))  # fmt: skip
            if self.rng.random() < 0.5:
                self.report.actions["reconcile_adopted"] += 1
                bot.orders.append(order)
            else:
                self.report.actions["reconcile_cancelled"] += 1
                self.deliver(bot, OrderEvent(kind=OrderEventKind.CANCELLED, reservation_id=order.reservation_id))
                order.done = True
                bot.closed.append(order)

    def silence(self) -> None:
        """A bot stops heartbeating for a while (its reservations may be swept as expired)."""
        bot = self.rng.choice(self.bots)
        bot.silent_until = self.now + self.rng.choice((15, 45, 150))  # past the 120 s timeout: orphaned

    def restart(self) -> None:
        i = self.rng.randrange(len(self.bots))
        old = self.bots[i]
        old.gov.close()
        self.bots[i] = patient(lambda: self._start(old.bot_id))
        self.bots[i].reconcile = True

    def crash(self) -> None:
        """kill -9 of the bot process: the governor is dropped without `close` (its memory is
        gone; only what it committed remains)."""
        i = self.rng.randrange(len(self.bots))
        old = self.bots[i]
        old.gov.store.close()  # the process's connection dies with it
        self.bots[i] = patient(lambda: self._start(old.bot_id))
        self.bots[i].reconcile = True

    # --- invariants -------------------------------------------------------------------------

    def position(self, bot: Bot, connector: str) -> Decimal:
        """The bot's net position on one market as the store's fills say (read incrementally)."""
        for f in self.operator.fill_rows(since=self._fill_ts, book="paper"):
            if int(f["id"]) <= self._fill_id:
                continue
            self._fill_id, self._fill_ts = int(f["id"]), float(f["ts"])
            key = (str(f["bot_id"]), str(f["exchange"]))
            signed = Decimal(f["amount"]) if f["side"] == "BUY" else -Decimal(f["amount"])
            self._positions[key] = self._positions.get(key, Decimal(0)) + signed
        return self._positions.get((bot.bot_id, Settings.exchange_of(connector)), Decimal(0))

    def violation(self, what: str) -> None:
        self.report.violations.append(f"step {self.report.steps} (seed {self.seed}): {what}")

    def _fullness(self, connector: str) -> tuple[float, bool]:
        """How much of the total cap is used (0..1), and whether the connector's exchange holds
        deployed capital (a sell there frees some), as an operator's `status` shows them."""
        exposure = self.operator.exposure("paper")
        total = exposure.total
        held = exposure.exchanges.get(Settings.exchange_of(connector))
        fullness = min(1.0, float(total.used_usd / total.cap_usd)) if total.cap_usd else 1.0
        return fullness, held is not None and held.deployed_usd > 0

    def check(self) -> None:
        """The store's invariants after a step, read in one snapshot (as an operator reads them)."""
        with read_tx(self.operator.engine) as conn:
            exposure = self.operator.exposure("paper", conn)
            stopped = self.operator.state(conn).trading_state is not TradingState.ACTIVE
            totals = self.operator.totals_agree(conn) if self.report.steps % 25 == 0 else None
        # a fill past a cap (slippage, an overfill, a late fill) is booked, it happened, and the
        # store stops trading in the same transaction; it may not resume while the cap is passed
        over = [
            f"{name} used {s.used_usd} > cap {s.cap_usd}"
            for name, s in [*exposure.exchanges.items(), ("TOTAL", exposure.total)]
            if s.used_usd > s.cap_usd
        ]
        summed = sum((s.used_usd for s in exposure.exchanges.values()), Decimal(0))
        if summed > exposure.total.cap_usd:
            over.append(f"sum over exchanges {summed} > total cap {exposure.total.cap_usd} (hole 10)")
        broken = set()
        if over and not stopped:
            broken.add("caps")
            if "caps" not in self._broken:  # one violation per incident; `broken_steps` counts its length
                blame = " (hole 8: an impossible fill was applied)" if self.overfilled else ""
                self.violation("; ".join(over) + " while trading is ACTIVE" + blame)
        if totals is not None:
            ok, why = totals
            if not ok:
                broken.add("totals")
                if "totals" not in self._broken:
                    blame = " (hole 8/9: impossible or late fills)" if self.bad_fills else ""
                    self.violation(f"ledger totals: {why}{blame}")
        elif "totals" in self._broken:
            broken.add("totals")
        self.report.broken_steps += bool(broken)
        self._broken = broken

    def check_audit(self) -> None:
        result = audit.verify(self.operator.engine)
        if not result.ok:
            self.violation(f"audit chain: {result.problem}")
        seen = len(self._trail.problems)  # the trail replayed: nothing ALLOWED under a halt
        self._trail = stopped_but_allowed(self.operator.engine, self._trail)
        for problem in self._trail.problems[seen:]:
            self.violation(problem)
