"""Replay a feed through Hummingbot's paper engine with Lyra's three scripts, governed.

Why MockPaperExchange + a back-test Clock: it is Hummingbot's own `PaperTradeExchange` (the
matching engine behind `<exchange>_paper_trade`) with an order book we set ourselves, so fills
come from Hummingbot's code, not ours, and the run needs no network. Each simulated second the
replay rebuilds every book from the feed (unless the feed is stale: then the book is left as
it was, and its age grows), then the Clock ticks the exchanges, then the strategies, then the
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import yaml

from lyra_governor import audit
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.ledger import Ledger
from lyra_governor.models import (
    Decision,
    DecisionStatus,
    MarketSnapshot,
    OrderEvent,
    OrderProposal,
    TradingState,
    new_id,
)
from lyra_strategies.paper.feed import Feed, MarketSeries

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "scripts"
BOOK_LEVELS = 40
#: One yield runs each executor's control step once per simulated second, which is what the
#: replay's scripts need (they create executors synchronously in their tick). A controller's
#: actions go through a queue to the orchestrator and need three to land in the same second.
YIELDS_PER_TICK = 1

#: Virtual balances, about $1,000 in all (BTC at 60,000, ETH at 3,000: $125 a script). Each
#: script trades from its own account on each exchange, as bots with their own (sub-)accounts
#: do: one script's fills never spend the cash another set aside. The governor's caps still
#: count every account on an exchange together.
ACCOUNTS: dict[str, dict[str, dict[str, float]]] = {
    "market_making": {"binance_paper_trade": {"USDT": 64.0, "BTC": 0.001}},
    "arbitrage": {
        "binance_paper_trade": {"USDT": 32.0, "BTC": 0.0005},
        "okx_paper_trade": {"USDT": 32.0, "BTC": 0.0005},
    },
    "rebalancer": {"okx_paper_trade": {"USDT": 52.0, "BTC": 0.0006, "ETH": 0.013}},
    "dynamic_market_making": {"binance_paper_trade": {"USDT": 64.0, "BTC": 0.001}},
    "bollinger": {"binance_paper_trade": {"USDT": 64.0, "BTC": 0.001}},
    "grid": {"binance_paper_trade": {"USDT": 126.0}},
    "xemm": {
        "binance_paper_trade": {"USDT": 32.0, "BTC": 0.0005},
        "okx_paper_trade": {"USDT": 32.0, "BTC": 0.0005},
    },
    "dca": {"binance_paper_trade": {"USDT": 126.0}},
}


@dataclass
class Account:
    """One script's paper account on one exchange."""

    role: str
    connector: str
    exchange: Any
    assets: dict[str, float]


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


class TimedGovernor(Governor):
    """A governor that adds up the wall time spent inside it (the bench's governor share):
    every method a strategy calls, counted once at the outermost call."""

    spent_s = 0.0
    _depth = 0

    def _timed(self, method: Callable[..., Any], *args: Any) -> Any:
        if TimedGovernor._depth:
            return method(*args)
        TimedGovernor._depth = 1
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            TimedGovernor.spent_s += time.perf_counter() - start
            TimedGovernor._depth = 0

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


class PassThroughGovernor(TimedGovernor):
    """The bench's baseline: the same replay with every order allowed and nothing written, so
    the difference in run time is what governing costs."""

    def review(self, proposal: OrderProposal) -> Decision:
        start = time.perf_counter()
        decision = Decision(
            proposal_id=proposal.proposal_id, status=DecisionStatus.ALLOWED, reservation_id=new_id("res")
        )
        self.counts["ALLOWED"] = self.counts.get("ALLOWED", 0) + 1
        TimedGovernor.spent_s += time.perf_counter() - start
        return decision

    def on_order_event(self, event: OrderEvent) -> None:
        return None

    def heartbeat(self) -> None:
        return None


@dataclass
class Sample:
    t: float
    equity_usd: float
    used_usd: float
    cap_usd: float


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
    #: per strategy role: proposed, approved, denied, pending, fills (the report's per-strategy lines)
    per_strategy: dict[str, dict[str, int]] = field(default_factory=dict)


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


def _book(exchange: Any, series: MarketSeries, i: int) -> None:
    mid = float(series.mid[i])
    step = max(mid * float(series.spread_bps[i]) / 1e4, mid * 1e-6)
    exchange.set_balanced_order_book(
        series.trading_pair, mid, mid - BOOK_LEVELS * step, mid + BOOK_LEVELS * step, step, float(series.depth_step[i])
    )


def _books(exchanges: list[Any], series: MarketSeries, i: int) -> None:
    """One book for every account on a connector: built once on the first exchange, the same
    book object handed to the others (with eight scripts, seven accounts share binance). The
    matching engine only reads its books; each account's orders and balances stay its own."""
    if not exchanges:
        return
    _book(exchanges[0], series, i)
    book = exchanges[0].order_book_tracker._order_books[series.trading_pair]
    for exchange in exchanges[1:]:
        exchange.order_book_tracker._order_books[series.trading_pair] = book


def run_replay(
    settings: Settings,
    feed: Feed,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    sample_every_s: int = 60,
    governed: bool = True,
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
    paper_settings = settings.model_copy(update={"db_url": f"sqlite:///{db_path}"})
    return asyncio.run(
        _replay(paper_settings, feed, out_dir, db_path, hb_db, progress, sample_every_s, governed, roles)
    )


async def _replay(
    settings: Settings,
    feed: Feed,
    out_dir: Path,
    db_path: Path,
    hb_db: Path,
    progress: Callable[[int, int], None] | None,
    sample_every_s: int,
    governed: bool = True,
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

    accounts = [
        Account(role, connector, PaperExchange(), assets)
        for role, per_exchange in ACCOUNTS.items()
        if role in roles
        for connector, assets in per_exchange.items()
    ]
    books_of: dict[str, list[Any]] = {}
    for account in accounts:
        books_of.setdefault(account.connector, []).append(account.exchange)
        for asset, amount in account.assets.items():
            account.exchange.set_balance(asset, amount)
    for series in feed.markets:
        for exchange in books_of.get(series.connector, []):
            _book(exchange, series, 0)
            exchange.set_quantization_param(QuantizationParams(series.trading_pair, 6, 6, 6, 6))

    recorder = start_markets_recorder([a.exchange for a in accounts], hb_db)

    feed_index = [0]
    by_market = {(m.connector, m.trading_pair): m for m in feed.markets}

    def book_timestamp(connector: str, pair: str, now: float) -> float:
        series = by_market.get((connector, pair))
        return float(series.updated_at[feed_index[0]]) if series is not None else now

    strategies: dict[str, Any] = {}
    governors: list[TimedGovernor] = []
    TimedGovernor.spent_s = 0.0
    for role in roles:
        script, conf = SCRIPTS[role]
        strategy_cls, config_cls = load_script(script)
        config_data = yaml.safe_load((CONF_DIR / conf).read_text()) or {}
        config = config_cls(**config_data)
        strategy_cls.init_markets(config)
        strategy_cls.offline = True
        strategy_cls.book_timestamp = staticmethod(book_timestamp)
        factory = TimedGovernor if governed else PassThroughGovernor
        gov = factory(settings, ledger, f"paper-{role}", _provider(settings), clock_fn, strategy_cls.__name__)
        governors.append(gov)
        own = {a.connector: a.exchange for a in accounts if a.role == role}
        missing = set(strategy_cls.markets) - set(own)
        assert not missing, f"{role} trades on {missing} but has no paper account there"
        strategies[role] = strategy_cls(own, config, governor=gov)

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
    )
    result.start_equity_usd = _equity(accounts, by_market, 0)
    last_mid = {key: float(series.mid[0]) for key, series in by_market.items()}
    started = time.perf_counter()
    for i in range(feed.seconds):
        t = feed.start + i
        feed_index[0] = i
        sim[0] = t
        for key, series in by_market.items():
            if series.updated_at[i] < t:  # stale feed: the exchange's book does not change
                continue
            mid = float(series.mid[i])
            if abs(mid - last_mid[key]) >= mid * 2e-5 or i % 30 == 0:
                _books(books_of.get(series.connector, []), series, i)
                last_mid[key] = mid
        clock.backtest_til(t)
        for _ in range(YIELDS_PER_TICK):
            await asyncio.sleep(0)
        result.ticks_run = i + 1
        if i % sample_every_s == 0 or i == feed.seconds - 1:
            _sample(result, ledger, accounts, by_market, i, t)
        if progress is not None and (i % 600 == 0 or i == feed.seconds - 1):
            progress(i + 1, feed.seconds)
        # An operator's `halt` (or a council ABORT) ends the run: the bots already stopped
        # proposing on this tick, and a halted run can be no Phase-3 evidence. The state is
        # cached for 0.25 s of wall clock, so this costs nothing per tick.
        ladder = governors[0].ladder_state()
        if ladder.trading_state is TradingState.HALTED:
            result.halted_reason = ladder.reason or "halted"
            _sample(result, ledger, accounts, by_market, i, t)
            break

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
    result.governor_s = TimedGovernor.spent_s
    result.end_equity_usd = _equity(accounts, by_market, feed.seconds - 1)
    for gov in governors:
        for code, value in gov.counts.items():
            result.decisions[code] = result.decisions.get(code, 0) + value
        council = gov.mandates.stats()
        result.council_requests += int(council.get("requests", 0))
        result.ai_cost_usd += float(council.get("cost_usd", 0.0))
    result.exchange_failures = sum(s.exchange_failures for s in strategies.values())
    if "arbitrage" in strategies:
        result.arbitrage_seen = int(strategies["arbitrage"].seen)
        result.arbitrage_taken = int(strategies["arbitrage"].taken)
    fill_rows = ledger.fill_rows(book="paper")
    result.fills = len(fill_rows)
    for role, gov in zip(strategies, governors, strict=True):
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
    for gov in governors:
        gov.store.close()
    recorder.stop()
    ledger.close()
    return result


def start_markets_recorder(connectors: list[Any], db_path: Path) -> Any:
    """Hummingbot's own trade recorder on its own SQLite file, as in a real bot: the executor
    orchestrator reads it when a strategy starts. Must run inside an event loop."""
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
    recorder = MarketsRecorder(sql, connectors, "lyra_paper.yml", "lyra_paper", MarketDataCollectionConfigMap())
    recorder.start()
    return recorder


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


def _equity(accounts: list[Account], by_market: dict[tuple[str, str], MarketSeries], i: int) -> float:
    total = 0.0
    for account in accounts:
        # what it started with and every base it can have bought (an account of cash only, as
        # the grid's and the DCA's, holds BTC once it buys)
        bases = {pair.split("-")[0] for connector, pair in by_market if connector == account.connector}
        for asset in dict.fromkeys([*account.assets, *sorted(bases)]):
            balance = float(account.exchange.get_balance(asset))
            if asset in ("USDT", "USD", "USDC"):
                total += balance
                continue
            series = by_market.get((account.connector, f"{asset}-USDT"))
            if series is not None:
                total += balance * float(series.mid[i])
    return total


def _sample(
    result: ReplayResult,
    ledger: Ledger,
    accounts: list[Account],
    by_market: dict[tuple[str, str], MarketSeries],
    i: int,
    t: float,
) -> None:
    exposure = ledger.exposure("paper")
    for name, scope in [*exposure.exchanges.items(), ("TOTAL", exposure.total)]:
        if scope.used_usd > scope.cap_usd + Decimal("0.000001"):
            result.limit_breaches.append(f"{name}: {scope.used_usd:.2f} > cap {scope.cap_usd:.2f} at t={t:.0f}")
    result.samples.append(
        Sample(t, _equity(accounts, by_market, i), float(exposure.total.used_usd), float(exposure.total.cap_usd))
    )
