"""Replay a feed through Hummingbot's paper engine with Lyra's three scripts, governed.

Why MockPaperExchange + a back-test Clock: it is Hummingbot's own `PaperTradeExchange` (the
matching engine behind `<exchange>_paper_trade`) with an order book we set ourselves, so fills
come from Hummingbot's code, not ours, and the run needs no network. Each simulated second the
replay rebuilds the book of every market whose quote changed (`lyra_strategies.paper.books`;
a stale feed leaves the book as it was, and its age grows), then the Clock ticks the
exchanges, then the strategies, then the
replay yields to the event loop `YIELDS_PER_TICK` times so Hummingbot's executors (asyncio tasks,
on the back-test clock: `lyra_strategies.paper.backtest`) check their barriers and place their
orders every simulated second. The exchange is `PaperExchange`: the same engine, plus the
trading rules and order tracker executors read (`lyra_strategies.paper.exchange`).

The run has its own store (`<out>/lyra_paper.db`) put in phase 3, so a fresh machine can run
it whatever phase the operator's ladder is in; the result is also written as evidence to the
operator's ledger, which is what `lyra-governor promote` reads.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import yaml

from lyra_governor import audit
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import (
    Decision,
    DecisionStatus,
    MarketSnapshot,
    OrderEvent,
    OrderProposal,
    TradingState,
    new_id,
)
from lyra_governor.order_store import OrderStore
from lyra_strategies.paper.books import MarketBook
from lyra_strategies.paper.candles import ReplayCandles
from lyra_strategies.paper.feed import Feed, MarketSeries

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "scripts"
#: One yield runs each executor's control step once per simulated second, which is what the
#: replay's scripts need (they create executors synchronously in their tick). A controller's
#: actions go through a queue to the orchestrator and need three to land in the same second.
YIELDS_PER_TICK = 1
#: The paper store's budget per call (the most `store.budget_ms` allows): see `run_replay`.
PAPER_STORE_BUDGET_MS = 10_000
#: How often (simulated seconds) each governor re-reads the ladder state: live it is 0.25 s of
#: wall time, which would make a replay depend on the machine's speed.
STATE_REFRESH_SIM_S = 5.0

#: The virtual capital (`ladder.paper_virtual_usd`, $1,000 by default) split in USD, per script,
#: exchange and asset. Each script trades from its own account on each exchange, as bots with
#: their own (sub-)accounts do: one script's fills never spend the cash another set aside. The
#: governor's caps still count every account on an exchange together. Coins are bought at the
#: data's first price of `<asset>-USDT` on that exchange, so the start is worth exactly the
#: capital whatever the year of the data; an asset without such a market is held as USDT.
ALLOCATION_USD: dict[str, dict[str, dict[str, Decimal]]] = {
    "market_making": {"binance_paper_trade": {"USDT": Decimal(64), "BTC": Decimal(60)}},
    "arbitrage": {
        "binance_paper_trade": {"USDT": Decimal(32), "BTC": Decimal(30)},
        "okx_paper_trade": {"USDT": Decimal(32), "BTC": Decimal(30)},
    },
    "rebalancer": {"okx_paper_trade": {"USDT": Decimal(52), "BTC": Decimal(36), "ETH": Decimal(39)}},
    "dynamic_market_making": {"binance_paper_trade": {"USDT": Decimal(64), "BTC": Decimal(60)}},
    "bollinger": {"binance_paper_trade": {"USDT": Decimal(64), "BTC": Decimal(60)}},
    "grid": {"binance_paper_trade": {"USDT": Decimal(126)}},
    "xemm": {
        "binance_paper_trade": {"USDT": Decimal(32), "BTC": Decimal(30)},
        "okx_paper_trade": {"USDT": Decimal(32), "BTC": Decimal(30)},
    },
    "dca": {"binance_paper_trade": {"USDT": Decimal(126)}},
}
QUOTE_ASSETS = ("USDT", "USD", "USDC")
COIN_STEP = Decimal("0.00000001")


@dataclass
class Account:
    """One script's paper account on one exchange."""

    role: str
    connector: str
    exchange: Any
    assets: dict[str, Decimal]  # the starting balances


def starting_accounts(
    feed: Feed, capital_usd: Decimal, roles: list[str] | None = None
) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Balances per script and connector worth `capital_usd` at the feed's first prices (the
    scripts in `roles` share it in the proportions of ALLOCATION_USD)."""
    chosen = {role: ALLOCATION_USD[role] for role in (roles or list(ALLOCATION_USD))}
    scale = capital_usd / sum(v for per in chosen.values() for assets in per.values() for v in assets.values())
    out: dict[str, dict[str, dict[str, Decimal]]] = {}
    for role, per_exchange in chosen.items():
        for connector, assets in per_exchange.items():
            balances: dict[str, Decimal] = {}
            for asset, usd in assets.items():
                value = usd * scale
                price = _first_price(feed, connector, asset)
                if asset in QUOTE_ASSETS or price is None:
                    balances["USDT"] = balances.get("USDT", Decimal(0)) + value
                    balances.setdefault(asset, Decimal(0))
                else:
                    balances[asset] = (value / price).quantize(COIN_STEP)
            out.setdefault(role, {})[connector] = balances
    return out


def _first_price(feed: Feed, connector: str, asset: str) -> Decimal | None:
    for m in feed.markets:
        if m.connector == connector and m.trading_pair == f"{asset}-USDT":
            first = m.first_mid()
            return Decimal(repr(first)) if first is not None else None
    return None


#: The eight governed scripts of the paper run, by role (`--strategies` picks among them).
SCRIPTS = {
    "market_making": ("lyra_market_making.py", "conf_lyra_market_making.yml"),
    "arbitrage": ("lyra_arbitrage.py", "conf_lyra_arbitrage.yml"),
    "rebalancer": ("lyra_rebalancer.py", "conf_lyra_rebalancer.yml"),
    "dynamic_market_making": ("lyra_dynamic_market_making.py", "conf_lyra_dynamic_market_making.yml"),
    "bollinger": ("lyra_bollinger.py", "conf_lyra_bollinger.yml"),
    "grid": ("lyra_grid.py", "conf_lyra_grid.yml"),
    "xemm": ("lyra_xemm.py", "conf_lyra_xemm.yml"),
    "dca": ("lyra_dca.py", "conf_lyra_dca.yml"),
}


def pick_strategies(names: str | list[str] | None) -> list[str]:
    """The roles to run: all eight for None or "all", else the comma-separated (or listed)
    roles, in `SCRIPTS` order; a ValueError naming the valid ones for anything else."""
    if names is None or names in ("all", ["all"]):
        return list(SCRIPTS)
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in wanted if n not in SCRIPTS]
    if unknown or not wanted:
        raise ValueError(
            f"unknown strategy {', '.join(unknown) or '(none given)'}; choose from {', '.join(SCRIPTS)} or all"
        )
    return [role for role in SCRIPTS if role in wanted]


_perf_counter = time.perf_counter


class GovernorTimer:
    """The governor share's count: wall seconds inside governor calls (`spent_s`), and whether
    one is under way (`depth`: a call inside a call is counted once, by the outer one).

    An instance, not class attributes of `TimedGovernor`: setting a class attribute (three
    times a call) invalidates the class's entries in Python's attribute cache, so every `self.`
    lookup inside the governor's own code then walked the class's MRO again. Measured: ~1 us a
    per-tick call, 2.4 us -> 1.4 us for an observation, counted as the governor's."""

    __slots__ = ("depth", "spent_s")

    def __init__(self) -> None:
        self.depth = 0
        self.spent_s = 0.0


#: The one timer of this process's timed governors (`run_replay` zeroes it and reads it).
TIMER = GovernorTimer()


class TimedGovernor(Governor):
    """A governor that adds up the wall time spent inside it (the bench's governor share):
    every method a strategy calls, counted once at the outermost call (`TIMER`)."""

    def _timed(self, method: Callable[..., Any], *args: Any) -> Any:
        timer = TIMER
        if timer.depth:
            return method(*args)
        timer.depth = 1
        start = _perf_counter()
        try:
            return method(*args)
        finally:
            timer.spent_s += _perf_counter() - start
            timer.depth = 0

    def review(self, proposal: OrderProposal) -> Decision:
        return cast(Decision, self._timed(super().review, proposal))

    def on_order_event(self, event: OrderEvent) -> None:
        self._timed(super().on_order_event, event)

    def heartbeat(self) -> None:
        self._timed(super().heartbeat)

    def capacity_usd(self, exchange: str) -> Decimal:
        return cast(Decimal, self._timed(super().capacity_usd, exchange))

    def observe_market(self, snapshot: MarketSnapshot) -> None:
        self._timed(super().observe_market, snapshot)

    def usd_per_quote(self, quote: str) -> Decimal | None:
        return cast("Decimal | None", self._timed(super().usd_per_quote, quote))

    def trading_state(self) -> TradingState:
        return cast(TradingState, self._timed(super().trading_state))

    # The one call of every tick (`GovernedStrategyV2Base.tick`: 10,800 a simulated hour of the
    # three original scripts) times itself: no `_timed` frame, no argument tuple, no bound method
    # built by `super()` (the wrapper's own frame was a tenth of the governor's sampled time when
    # a tick was three such calls, counted as the governor's).

    def on_tick(
        self, snapshots: Iterable[MarketSnapshot], before_state: Callable[[], None] | None = None
    ) -> TradingState:
        timer = TIMER
        if timer.depth:
            return Governor.on_tick(self, snapshots, before_state)
        timer.depth = 1
        start = _perf_counter()
        try:
            return Governor.on_tick(self, snapshots, before_state)
        finally:
            timer.spent_s += _perf_counter() - start
            timer.depth = 0


class PassThroughGovernor(TimedGovernor):
    """The bench's baseline: the same replay with every order allowed and nothing written, so
    the difference in run time is what governing costs."""

    def review(self, proposal: OrderProposal) -> Decision:
        start = time.perf_counter()
        decision = Decision(
            proposal_id=proposal.proposal_id, status=DecisionStatus.ALLOWED, reservation_id=new_id("res")
        )
        self.counts["ALLOWED"] = self.counts.get("ALLOWED", 0) + 1
        TIMER.spent_s += time.perf_counter() - start
        return decision

    def on_order_event(self, event: OrderEvent) -> None:
        return None

    def heartbeat(self) -> None:
        return None

    def on_tick(
        self, snapshots: Iterable[MarketSnapshot], before_state: Callable[[], None] | None = None
    ) -> TradingState:
        if before_state is not None:  # no beat; the state and the observations timed, as separate calls
            before_state()
        state = self.trading_state()
        if state is not TradingState.HALTED:
            for snapshot in snapshots:
                self.observe_market(snapshot)
        return state


@dataclass
class Sample:
    t: float
    equity_usd: float
    used_usd: float
    cap_usd: float
    hold_usd: float = 0.0  # the starting balances at this sample's prices (buy and hold)
    equity_by: dict[str, float] = field(default_factory=dict)  # "<role> <connector>" -> USD
    hold_by: dict[str, float] = field(default_factory=dict)
    used_by_exchange: dict[str, float] = field(default_factory=dict)
    cap_by_exchange: dict[str, float] = field(default_factory=dict)


@dataclass
class ReplayResult:
    feed: Feed
    out_dir: Path
    db_path: Path
    wall_s: float
    governor_s: float
    decisions: dict[str, int]
    exchange_failures: int
    arbitrage_seen: int
    arbitrage_taken: int
    council_requests: int
    ai_cost_usd: float
    samples: list[Sample] = field(default_factory=list)
    limit_breaches: list[str] = field(default_factory=list)
    start_equity_usd: float = 0.0
    end_equity_usd: float = 0.0
    fills: int = 0
    audit_ok: bool = False
    audit_records: int = 0
    audit_head: str = ""
    totals_ok: bool = False
    totals_detail: str = ""
    ticks_run: int = 0
    halted_reason: str = ""  # set when the run stopped early because trading was halted
    accounts: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)  # starting balances
    role_decisions: dict[str, dict[str, int]] = field(default_factory=dict)
    role_failures: dict[str, int] = field(default_factory=dict)
    role_bots: dict[str, str] = field(default_factory=dict)  # role -> bot id in the ledger
    unmatched: list[dict[str, str]] = field(default_factory=list)  # script markets with no data
    unused: list[str] = field(default_factory=list)  # recorded markets no script trades
    hour_wall_s: list[float] = field(default_factory=list)  # wall seconds per simulated hour
    cpu_s: float = 0.0  # the process's CPU seconds over the replay (on a shared machine, less noisy than wall)
    hour_cpu_s: list[float] = field(default_factory=list)  # CPU seconds per simulated hour
    fees: dict[str, dict[str, str]] = field(default_factory=dict)  # connector -> maker/taker fraction
    #: per strategy role: proposed, approved, denied, pending, fills (the report's per-strategy lines)
    per_strategy: dict[str, dict[str, int]] = field(default_factory=dict)
    #: per strategy role: its candle feeds that never held the candles it reads (`ReplayCandles.warmth`)
    cold_candles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def unmatched_note(self) -> str:
        """One sentence naming the scripts and markets that found no data ('' if none)."""
        if not self.unmatched:
            return ""
        by_role: dict[str, list[str]] = {}
        for miss in self.unmatched:
            by_role.setdefault(miss["script"], []).append(f"{miss['trading_pair']} on {miss['connector']}")
        parts = [f"{role} ({', '.join(markets)})" for role, markets in by_role.items()]
        recorded = f" (the feed has {', '.join(self.unused)}, which no script trades)" if self.unused else ""
        return f"No data in this feed for {'; '.join(parts)}: those scripts cannot trade those markets{recorded}."


PRICE_DIGITS = 6  # significant digits of a paper price (Hummingbot's price_precision)


def price_decimals(series: MarketSeries) -> int:
    """The decimals a market's paper prices keep: 6, or more for a market priced below 1 so
    that its lowest price still has `PRICE_DIGITS` significant digits. Hummingbot's paper
    price quantum is the coarser of 10**-decimals and the significant-digit one: with 6
    decimals a coin at 0.00002 (SHIB, PEPE) was priced in steps of 0.000001, 5 % of its price,
    so every order and even the mid a script reads were off by up to 5 % (the collar refused
    every order)."""
    prices = series.bid if series.bid is not None else series.mid
    finite = prices[np.isfinite(prices) & (prices > 0)]
    if not finite.size:
        return 6
    return max(6, PRICE_DIGITS - math.ceil(math.log10(float(finite.min()))))


def load_script(name: str, scripts_dir: Path = SCRIPTS_DIR) -> tuple[type[Any], type[Any]]:
    """(strategy class, config class) picked the way Hummingbot's loader picks them: the first
    StrategyV2Base subclass and the first BaseClientModel subclass in the module."""
    from hummingbot.client.config.config_data_types import BaseClientModel
    from hummingbot.strategy.strategy_v2_base import StrategyV2Base, StrategyV2ConfigBase

    path = scripts_dir / name
    spec = importlib.util.spec_from_file_location(f"lyra_scripts.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"script {path} not found")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    members = inspect.getmembers(module)
    strategy = next(
        m for _, m in members if inspect.isclass(m) and issubclass(m, StrategyV2Base) and m is not StrategyV2Base
    )
    config = next(
        m
        for _, m in members
        if inspect.isclass(m) and issubclass(m, BaseClientModel) and m not in (BaseClientModel, StrategyV2ConfigBase)
    )
    return strategy, config


#: Called after every simulated second with (tick, time, strategies by role): tests read what
#: the strategies see; the replay itself never needs it.
TickHook = Callable[[int, float, dict[str, Any]], None]


def run_replay(
    settings: Settings,
    feed: Feed,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    sample_every_s: int = 60,
    governed: bool = True,
    seed: int = 7,
    on_tick: TickHook | None = None,
    strategies: str | list[str] | None = None,
) -> ReplayResult:
    """Run the governed scripts (all eight, or `strategies`) over `feed`; everything lands in
    `<out_dir>/lyra_paper.db`."""
    roles = pick_strategies(strategies)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "lyra_paper.db"
    for suffix in ("", "-wal", "-shm"):
        stale = db_path.with_name(db_path.name + suffix)
        if stale.exists():
            stale.unlink()
    hb_db = out_dir / "hummingbot_trades.sqlite"
    if hb_db.exists():
        hb_db.unlink()
    # No wall-clock budget can cut a store call short in a simulated run: on a loaded machine a
    # read held up 200 ms (e.g. behind the WAL checkpointer) raised STORE_BUSY out of a script's
    # tick, Hummingbot skipped that tick, and the run depended on the machine's load.
    store = settings.store.model_copy(update={"budget_ms": PAPER_STORE_BUDGET_MS})
    paper_settings = settings.model_copy(update={"db_url": f"sqlite:///{db_path}", "store": store})
    # A run is a function of (code, config, data, seed): Hummingbot draws order and executor
    # ids from `random` (seeded here); every clock it reads is the simulated one (see
    # `PaperExchange.trigger_event_async`, its order tracker, `STATE_REFRESH_SIM_S`).
    random.seed(seed)
    # the run quiets Hummingbot's loggers (below); put them back afterwards, so a caller in the
    # same process (a test, a notebook) keeps the logging it had
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    try:
        return asyncio.run(
            _replay(paper_settings, feed, out_dir, db_path, hb_db, progress, sample_every_s, governed, on_tick, roles)
        )
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


QUIETED_LOGGERS = ("hummingbot", "hummingbot.strategy_v2.executors")


def paper_fees(settings: Settings, connector: str) -> tuple[Decimal, Decimal]:
    """(maker, taker) fee fractions of a paper connector's exchange, from the config."""
    spec = settings.exchanges.get(settings.exchange_of(connector))
    if spec is None:
        return DEFAULT_FEE, DEFAULT_FEE
    return Decimal(repr(spec.maker_fee_pct)) / 100, Decimal(repr(spec.taker_fee_pct)) / 100


DEFAULT_FEE = Decimal("0.001")


async def _replay(
    settings: Settings,
    feed: Feed,
    out_dir: Path,
    db_path: Path,
    hb_db: Path,
    progress: Callable[[int, int], None] | None,
    sample_every_s: int,
    governed: bool = True,
    on_tick: TickHook | None = None,
    roles: list[str] | None = None,
) -> ReplayResult:
    roles = roles or list(SCRIPTS)
    from hummingbot.connector.exchange.paper_trade.paper_trade_exchange import QuantizationParams
    from hummingbot.core.clock import Clock
    from hummingbot.core.clock_mode import ClockMode

    from lyra_strategies.paper.exchange import PaperExchange

    sim = [feed.start]
    # Hummingbot's paper engine logs every unfillable order (e.g. not enough balance) as a
    # warning; the report counts what matters, so keep the console to errors.
    logging.getLogger("hummingbot").setLevel(logging.ERROR)
    # Executors log each refused order as an error ("Open order failed ... Retrying"); the
    # report counts every denial by code, so keep them off the console too.
    logging.getLogger("hummingbot.strategy_v2.executors").setLevel(logging.CRITICAL)

    def clock_fn() -> float:
        return sim[0]

    ledger = Ledger.open(settings, clock_fn)
    ledger.set_phase(3, "paper-run", "offline Phase-3 paper run on its own store")

    balances = starting_accounts(feed, Decimal(settings.ladder.paper_virtual_usd), roles)
    connectors = sorted({c for per in balances.values() for c in per})
    fees = {c: paper_fees(settings, c) for c in connectors}
    accounts = [
        Account(role, connector, PaperExchange(name=f"{role}_{connector}", maker_fee=fees[connector][0],
                                               taker_fee=fees[connector][1]), assets)
        for role, per_exchange in balances.items()
        for connector, assets in per_exchange.items()
    ]
    books_of: dict[str, list[Any]] = {}
    for account in accounts:
        books_of.setdefault(account.connector, []).append(account.exchange)
        for asset, amount in account.assets.items():
            account.exchange.set_balance(asset, amount)
    for series in feed.markets:
        for exchange in books_of.get(series.connector, []):
            exchange.set_quantization_param(
                QuantizationParams(series.trading_pair, PRICE_DIGITS, price_decimals(series), 6, 6))
    for same_book in books_of.values():  # one quantization and one book per connector: one price memo
        for exchange in same_book[1:]:
            exchange.share_prices(same_book[0])

    recorder = start_markets_recorder([a.exchange for a in accounts], hb_db, record_orders=False)

    feed_index = [0]
    by_market = {(m.connector, m.trading_pair): m for m in feed.markets}
    books = {key: MarketBook(series, books_of.get(series.connector, [])) for key, series in by_market.items()}

    def book_timestamp(connector: str, pair: str, now: float) -> float:
        market = books.get((connector, pair))
        # before the first quote: `now` (and no book: nothing proposes)
        return now if market is None else market.seen_at(feed_index[0], now)

    strategies: dict[str, Any] = {}
    governors: dict[str, TimedGovernor] = {}
    unmatched: list[dict[str, str]] = []
    traded: set[tuple[str, str]] = set()
    TIMER.spent_s = 0.0
    # One writer for every governor of the run (its one SQLite connection): SQLite empties a
    # connection's page cache whenever another connection has committed, so with a connection
    # each, every governor's read after another's heartbeat or review read its pages afresh.
    store = OrderStore(ledger.engine, settings.store.budget_ms)
    # One market watch for every governor of the run (same settings): what one script's governor
    # observed of a market this second is what the others would (MarketWatch, "Shared")
    watch = MarketWatch(settings)
    for role in roles:
        script, conf = SCRIPTS[role]
        strategy_cls, config_cls = load_script(script)
        config_data = yaml.safe_load((CONF_DIR / conf).read_text()) or {}
        config = config_cls(**config_data)
        strategy_cls.init_markets(config)
        strategy_cls.offline = True
        strategy_cls.book_timestamp = staticmethod(book_timestamp)
        for connector, pairs in sorted(strategy_cls.markets.items()):
            for pair in sorted(pairs):
                traded.add((connector, pair))
                found = by_market.get((connector, pair))
                if found is None or found.first_tick() is None:
                    unmatched.append({"script": role, "connector": connector, "trading_pair": pair})
        factory = TimedGovernor if governed else PassThroughGovernor
        gov = factory(
            settings, ledger, f"paper-{role}", _provider(settings), clock_fn, strategy_cls.__name__, store, watch
        )
        gov.ladder_view.clock, gov.ladder_view.refresh_s = clock_fn, STATE_REFRESH_SIM_S
        governors[role] = gov
        own = {a.connector: a.exchange for a in accounts if a.role == role}
        missing = set(strategy_cls.markets) - set(own)
        assert not missing, f"{role} trades on {missing} but has no paper account there"
        strategies[role] = strategy_cls(own, config, governor=gov)
        for exchange in own.values():
            exchange.adopt_native_listeners()

    end = feed.start + feed.seconds - 1
    clock = Clock(ClockMode.BACKTEST, 1.0, feed.start, end + 2)
    for account in accounts:
        clock.add_iterator(account.exchange)
    for strategy in strategies.values():
        clock.add_iterator(strategy)

    result = ReplayResult(
        feed=feed,
        out_dir=out_dir,
        db_path=db_path,
        wall_s=0.0,
        governor_s=0.0,
        decisions={},
        exchange_failures=0,
        arbitrage_seen=0,
        arbitrage_taken=0,
        council_requests=0,
        ai_cost_usd=0.0,
        accounts=balances,
        unmatched=unmatched,
        unused=[f"{p} on {c}" for c, p in sorted(set(by_market) - traded)],
        fees={c: {"maker": str(m), "taker": str(t)} for c, (m, t) in fees.items()},
        role_bots={role: gov.bot_id for role, gov in governors.items()},
    )
    valuer = _Valuer(accounts, by_market)
    result.start_equity_usd = valuer.equity(0)[0]
    # Hummingbot values a fee charged in another token through its RateOracle (XEMM's fee
    # estimate, an order's fees in base): offline its prices are the replay's mids, never a network
    from hummingbot.core.rate_oracle.rate_oracle import RateOracle

    oracle_prices: dict[str, Decimal] = RateOracle.get_instance()._prices
    oracle_prices.clear()
    markets = list(books.values())
    started = time.perf_counter()
    hour_started = started
    cpu_started = hour_cpu_started = time.process_time()
    for i in range(feed.seconds):
        t = feed.start + i
        feed_index[0] = i
        sim[0] = t
        # each second shows the last quote at or before it; a market before its first quote has
        # no book at all, and a quote that did not change (a stale feed, a recording repeating
        # itself) leaves the book as it is (`MarketBook`)
        for market in markets:
            mid = market.show(i)
            if mid is not None:
                oracle_prices[market.trading_pair] = mid
        clock.backtest_til(t)
        for _ in range(YIELDS_PER_TICK):
            await asyncio.sleep(0)
        result.ticks_run = i + 1
        if on_tick is not None:
            on_tick(i, t, strategies)
        if i % sample_every_s == 0 or i == feed.seconds - 1:
            _sample(result, ledger, valuer, i, t)
        if (i + 1) % 3600 == 0:
            now = time.perf_counter()
            result.hour_wall_s.append(now - hour_started)
            hour_started = now
            cpu_now = time.process_time()
            result.hour_cpu_s.append(cpu_now - hour_cpu_started)
            hour_cpu_started = cpu_now
        if progress is not None and (i % 600 == 0 or i == feed.seconds - 1):
            progress(i + 1, feed.seconds)
        # An operator's `halt` (or a council ABORT) ends the run: the bots already stopped
        # proposing on this tick, and a halted run can be no Phase-3 evidence.
        ladder = next(iter(governors.values())).ladder_state()
        if ladder.trading_state is TradingState.HALTED:
            result.halted_reason = ladder.reason or "halted"
            _sample(result, ledger, valuer, i, t)
            break

    # the candles the strategies could read while they traded: taken before the close-out tick,
    # which may close one more candle that no strategy then trades on (a 15-minute recording's
    # 15th minute: its NATR was "reached" at the very end, and the report did not say why)
    for role, strategy in strategies.items():
        feeds = [feed.warmth() for feed in strategy.market_data_provider.candles_feeds.values()
                 if isinstance(feed, ReplayCandles)]
        cold = [w for w in feeds if w["closed"] < w["needed"]]
        if cold:
            result.cold_candles[role] = cold

    # close out: executors stop and hold what they bought (no more orders), open orders are
    # cancelled so every reservation is settled, tick once more
    for strategy in strategies.values():
        strategy.hold_all_executors()
        strategy.cancel_all_orders()
    sim[0] = end + 1
    clock.backtest_til(end + 1)
    for strategy in strategies.values():  # the last tick may have started executors: end them unplaced
        strategy.hold_all_executors()
        for executors in strategy.executor_orchestrator.active_executors.values():
            for executor in executors:
                if not executor.is_closed:
                    executor.stop()
    result.wall_s = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu_started
    result.governor_s = TIMER.spent_s
    result.end_equity_usd = valuer.equity(result.ticks_run - 1)[0]
    for role, gov in governors.items():
        result.role_decisions[role] = dict(sorted(gov.counts.items()))
        for code, value in gov.counts.items():
            result.decisions[code] = result.decisions.get(code, 0) + value
        council = gov.mandates.stats()
        result.council_requests += int(council.get("requests", 0))
        result.ai_cost_usd += float(council.get("cost_usd", 0.0))
    result.role_failures = {role: int(s.exchange_failures) for role, s in strategies.items()}
    result.exchange_failures = sum(result.role_failures.values())
    if "arbitrage" in strategies:
        result.arbitrage_seen = int(strategies["arbitrage"].seen)
        result.arbitrage_taken = int(strategies["arbitrage"].taken)
    fill_rows = ledger.fill_rows(book="paper")
    result.fills = len(fill_rows)
    for role, gov in governors.items():
        approved, pending = gov.counts.get("ALLOWED", 0), gov.counts.get("PENDING", 0)
        proposed = sum(gov.counts.values())
        result.per_strategy[role] = {
            "proposed": proposed,
            "approved": approved,
            "denied": proposed - approved - pending,
            "pending": pending,
            "fills": sum(1 for row in fill_rows if row["bot_id"] == gov.bot_id),
        }
    verified = audit.verify(ledger.engine)
    result.audit_ok, result.audit_records, result.audit_head = verified.ok, verified.count, verified.head_hash
    result.totals_ok, result.totals_detail = ledger.totals_agree()
    for strategy in strategies.values():
        listener_task = getattr(strategy, "listen_to_executor_actions_task", None)
        if listener_task is not None:
            listener_task.cancel()
    for gov in governors.values():  # the beats of the last instant, written (`heartbeat.BeatGroup`)
        gov.heartbeats.close()
    store.close()
    recorder.stop()
    ledger.close()
    return result


def start_markets_recorder(connectors: list[Any], db_path: Path, record_orders: bool = True) -> Any:
    """Hummingbot's own recorder on its own SQLite file, as in a real bot: the executor
    orchestrator reads its executors and positions when a strategy starts, and stores finished
    executors and controller configs in it; with `record_orders` it also records the
    connectors' orders and fills, as Hummingbot does.

    The paper replay passes `record_orders=False`: per order event the recorder wrote an order
    row, a status row and the account's market state through the ORM (about 15 ms each: 0.25
    sim h of the eight scripts spent 13 of 48 profiled s there), and nothing reads those rows;
    every order, fill and fee of the run is in Lyra's ledger. Must run inside an event loop."""
    from hummingbot.client.config.client_config_map import ClientConfigMap, MarketDataCollectionConfigMap
    from hummingbot.client.config.config_helpers import ClientConfigAdapter
    from hummingbot.connector.markets_recorder import MarketsRecorder
    from hummingbot.model.sql_connection_manager import SQLConnectionManager, SQLConnectionType

    MarketsRecorder._shared_instance = None
    sql = SQLConnectionManager(
        ClientConfigAdapter(ClientConfigMap()), SQLConnectionType.TRADE_FILLS, db_path=str(db_path)
    )
    # The replay's copy of Hummingbot's trade records is rebuilt on every run: no fsync per
    # order (each cost ~20 ms on a busy disk, most of an eight-strategy run's wall time).
    _no_fsync(sql.engine)
    if record_orders:
        recorder = MarketsRecorder(sql, connectors, "lyra_paper.yml", "lyra_paper", MarketDataCollectionConfigMap())
    else:
        recorder = _replay_recorder_class()(sql, [], "lyra_paper.yml", "lyra_paper", MarketDataCollectionConfigMap())
    recorder.start()
    return recorder


FLUSH_IDS_PER_SELECT = 500  # under SQLite's bound-parameter limit (999 before 3.32)


def _replay_recorder_class() -> type[Any]:
    """Hummingbot's recorder whose finished executors are written in one transaction when it
    stops instead of one ORM session and commit each (the executor scripts hand every finished
    executor over: 5-20 ms apiece, a tenth of an eight-strategy replay). Nothing reads them
    during the run (the orchestrator reads the table when a strategy starts); the file holds
    the same rows at the end."""
    import json

    from hummingbot.connector.markets_recorder import MarketsRecorder
    from hummingbot.model.executors import Executors

    class ReplayRecorder(MarketsRecorder):  # type: ignore[misc]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self._executors: dict[str, str] = {}  # executor id -> its info as JSON, latest kept

        def store_or_update_executor(self, executor: Any) -> None:
            self._executors[executor.config.id] = executor.executor_info.model_dump_json()

        def flush_executors(self) -> None:
            """One SELECT per FLUSH_IDS_PER_SELECT executors for the rows already there (was
            one per executor: a day's run hands over thousands), then the inserts and updates
            in one commit."""
            if not self._executors:
                return
            ids = list(self._executors)
            with self._sql_manager.get_new_session() as session:
                rows: dict[str, Any] = {}
                for start in range(0, len(ids), FLUSH_IDS_PER_SELECT):
                    chunk = ids[start:start + FLUSH_IDS_PER_SELECT]
                    rows.update((row.id, row) for row in session.query(Executors).filter(Executors.id.in_(chunk)))
                for executor_id, info in self._executors.items():
                    fields = json.loads(info)
                    row = rows.get(executor_id)
                    if row is None:
                        session.add(Executors(**fields))
                    else:
                        for attr, value in fields.items():
                            setattr(row, attr, value)
                session.commit()
            self._executors.clear()

        def stop(self) -> None:
            self.flush_executors()
            super().stop()

    return ReplayRecorder


def _no_fsync(engine: Any) -> None:
    import sqlalchemy as sa

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA journal_mode=MEMORY")
        cursor.close()

    sa.event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener reopen with it


def _provider(settings: Settings) -> Any:
    from lyra_governor.governor import default_mandate_provider

    return default_mandate_provider(settings)


class _Valuer:
    """Values every account at tick i's mids (before a market's first quote: its first mid,
    the price its coins were bought at) and what the starting balances would be worth."""

    def __init__(self, accounts: list[Account], by_market: dict[tuple[str, str], MarketSeries]) -> None:
        self.accounts = accounts
        self.prices: dict[tuple[str, str], tuple[MarketSeries, float]] = {}
        # what an account can hold: its start assets and the base of every USDT market of its
        # exchange (a cash-only grid or DCA account holds the BTC it bought)
        self.assets: dict[int, list[str]] = {}
        for account in accounts:
            bases = [p.split("-")[0] for c, p in by_market if c == account.connector and p.endswith("-USDT")]
            self.assets[id(account)] = list(dict.fromkeys([*account.assets, *bases]))
            for asset in self.assets[id(account)]:
                series = by_market.get((account.connector, f"{asset}-USDT"))
                first = series.first_mid() if series is not None else None
                if series is not None and first is not None:
                    self.prices[(account.connector, asset)] = (series, first)

    def price(self, connector: str, asset: str, i: int) -> float:
        if asset in QUOTE_ASSETS:
            return 1.0
        found = self.prices.get((connector, asset))
        if found is None:
            return 0.0
        mid = float(found[0].mid[i])
        return mid if math.isfinite(mid) else found[1]

    def equity(self, i: int) -> tuple[float, float, dict[str, float], dict[str, float]]:
        """(equity, hold value, equity per account, hold value per account) in USD."""
        total = hold = 0.0
        by: dict[str, float] = {}
        hold_by: dict[str, float] = {}
        for account in self.accounts:
            key = f"{account.role} {account.connector}"
            value = held = 0.0
            for asset in self.assets[id(account)]:
                price = self.price(account.connector, asset, i)
                value += float(account.exchange.get_balance(asset)) * price
                held += float(account.assets.get(asset, 0)) * price
            by[key], hold_by[key] = value, held
            total += value
            hold += held
        return total, hold, by, hold_by


def _sample(result: ReplayResult, ledger: Ledger, valuer: _Valuer, i: int, t: float) -> None:
    exposure = ledger.exposure("paper")
    for name, scope in [*exposure.exchanges.items(), ("TOTAL", exposure.total)]:
        if scope.used_usd > scope.cap_usd + Decimal("0.000001"):
            result.limit_breaches.append(f"{name}: {scope.used_usd:.2f} > cap {scope.cap_usd:.2f} at t={t:.0f}")
    equity, hold, by, hold_by = valuer.equity(i)
    result.samples.append(
        Sample(
            t,
            equity,
            float(exposure.total.used_usd),
            float(exposure.total.cap_usd),
            hold,
            by,
            hold_by,
            {name: float(scope.used_usd) for name, scope in sorted(exposure.exchanges.items())},
            {name: float(scope.cap_usd) for name, scope in sorted(exposure.exchanges.items())},
        )
    )
