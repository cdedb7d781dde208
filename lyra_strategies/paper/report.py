"""The Phase-3 report: summary.json, summary.md, report.html (plots embedded), PNG plots.

What the figures mean (also written into summary.md, which must read on its own):

- **Success rate**, as the README defines it: of the orders the governor APPROVED, the share the
  paper exchange executed or rested without error. Denials are the governor doing its job (a
  collar trip in a flash move is a success of the system), so they are counted by code but do
  not lower the rate.
- **PnL.** Equity is every paper account valued at the tick's mids; fills are net of the
  configured paper fees. *Hold* is the starting balances valued at the same mids. *Market move*
  = hold at the end - the start (what the inventory did by itself); *trading PnL* = equity -
  hold (what the scripts added or lost against holding their start inventory, fees included).
  *Realised* is the average-cost profit of every sell (the start inventory costed at the first
  price, buy fees in the cost, sell fees deducted); the rest of trading PnL is unrealised.
- **Per script:** fill rate = approved orders with at least one fill / approved orders;
  turnover = filled notional; drawdown, Sharpe and Sortino on the script's equity sampled each
  minute (annualised from one-minute returns, no risk-free rate); win rate = sells that
  realised a profit / sells.
- **Phase-3 criteria** (docs/commissioning.md): success rate above
  `ladder.paper_success_rate_min`; every limit respected (no cap exceeded at any sample, the
  ledger's reserved totals equal its open reservations); arbitrage detection functional (the
  arbitrage script saw an opportunity and took one with both legs); AI consensus on all trade
  decisions (every approved order that adds exposure carried a council mandate; reduce-only
  closes pass without one by design). The gate passes when all four pass, the audit chain
  verifies and at least one order was filled.

summary.json is a pure function of (code, config, data, seed): wall times and the audit head
(whose records carry random ids) go to run.json.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from lyra_governor import audit
from lyra_governor.config import Settings
from lyra_governor.store import audit_log, create_store_engine, fills
from lyra_strategies.paper.feed import MarketSeries
from lyra_strategies.paper.replay import QUOTE_ASSETS, ReplayResult

MINUTES_PER_YEAR = 365 * 24 * 60
GOVERNOR_EVENTS = ("halt", "resume", "demote", "alert", "breaker", "trading_state", "gradual")


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if math.isfinite(x) else 0.0


def _interval(seconds: float | None) -> float | None:
    return None if seconds is None else _r(seconds, 3)


# --- what the store says ---------------------------------------------------------------------


def _store_facts(result: ReplayResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(fills, decisions, governor events) from the run's own store."""
    engine = create_store_engine(f"sqlite:///{result.db_path}")
    try:
        with engine.connect() as conn:
            fill_rows = [dict(r._mapping) for r in conn.execute(sa.select(fills).order_by(fills.c.id)).all()]
            records = conn.execute(
                sa.select(audit_log.c.ts_us, audit_log.c.actor, audit_log.c.event, audit_log.c.payload).order_by(
                    audit_log.c.seq
                )
            ).all()
    finally:
        engine.dispose()
    decisions, events = [], []
    for ts_us, actor, event, payload in records:
        body = json.loads(payload)
        if event == "decision":
            decisions.append({"ts": ts_us / 1e6, "actor": actor, **body})
        elif any(word in event for word in GOVERNOR_EVENTS):
            events.append({"ts": ts_us / 1e6, "event": event, "reason": str(body.get("reason", ""))[:120]})
        elif event == "council_verdict" and body.get("verdict") not in ("PROCEED", "PROCEED_WITH_CAUTION"):
            events.append({"ts": ts_us / 1e6, "event": f"council {body.get('verdict')}",
                           "reason": f"{body.get('trading_pair', '')} on {body.get('connector', '')}"})
    return fill_rows, decisions, events


def breaker_trips(db_path: Path) -> dict[str, dict[str, Any]]:
    """The circuit breakers that tripped in the run's store (audit event ``breaker``, read with
    `audit.records`), per code: how many times, the action taken, the scopes they concerned."""
    engine = create_store_engine(f"sqlite:///{db_path}")
    try:
        records = audit.records(engine, events=("breaker",))
    finally:
        engine.dispose()
    trips: dict[str, dict[str, Any]] = {}
    for record in records:
        code = str(record.payload.get("code", "unknown"))
        trip = trips.setdefault(code, {"count": 0, "actions": [], "scopes": []})
        trip["count"] += 1
        for key, value in (("actions", record.payload.get("action")), ("scopes", record.payload.get("scope"))):
            if value and str(value) not in trip[key]:
                trip[key].append(str(value))
    return dict(sorted(trips.items()))


def breaker_sentence(trips: dict[str, dict[str, Any]]) -> str:
    """One line of summary.md: each breaker's code, how often, what it did and where."""
    if not trips:
        return "Circuit breakers tripped: none."
    parts = [
        f"{code} {t['count']}x ({', '.join(t['actions']) or 'no action'}; {', '.join(t['scopes']) or 'no scope'})"
        for code, t in trips.items()
    ]
    return f"Circuit breakers tripped: {sum(t['count'] for t in trips.values())} ({'; '.join(parts)})."


# --- PnL arithmetic (pure) ---------------------------------------------------------------------


def realised(fill_rows: list[dict[str, Any]], start_base: dict[tuple[str, str], tuple[Decimal, Decimal]]
             ) -> tuple[Decimal, int, int]:
    """(realised USD, sells, winning sells) by average cost. `start_base` maps (exchange, pair)
    to (starting base amount, its cost price)."""
    book: dict[tuple[str, str], list[Decimal]] = {k: [amt, price] for k, (amt, price) in start_base.items()}
    total, sells, wins = Decimal(0), 0, 0
    for row in fill_rows:
        key = (row["exchange"], row["trading_pair"])
        pos = book.setdefault(key, [Decimal(0), Decimal(0)])
        amount, price = Decimal(row["amount"]), Decimal(row["price"])
        fee = Decimal(row["fee_musd"]) / 1_000_000
        if row["side"] == "BUY":
            held = pos[0] + amount
            pos[1] = (pos[0] * pos[1] + amount * price + fee) / held if held > 0 else price
            pos[0] = held
        else:
            closed = min(amount, pos[0]) if pos[0] > 0 else amount
            gain = closed * (price - pos[1]) - fee
            pos[0] -= amount
            total += gain
            sells += 1
            wins += gain > 0
    return total, sells, wins


def curve_stats(equity: list[float]) -> dict[str, float]:
    """Max drawdown (USD, % of the peak), Sharpe and Sortino of one-minute returns, annualised."""
    values = np.asarray(equity, dtype=np.float64)
    if values.size < 3 or not np.all(values > 0):
        return {"max_drawdown_usd": 0.0, "max_drawdown_pct": 0.0, "sharpe": 0.0, "sortino": 0.0}
    peaks = np.maximum.accumulate(values)
    drawdown = peaks - values
    worst = int(np.argmax(drawdown))
    returns = np.diff(values) / values[:-1]
    scale = math.sqrt(MINUTES_PER_YEAR)
    std = float(returns.std())
    downside = returns[returns < 0]
    down = float(np.sqrt(np.mean(downside**2))) if downside.size else 0.0
    mean = float(returns.mean())
    return {
        "max_drawdown_usd": _r(float(drawdown[worst])),
        "max_drawdown_pct": _r(float(drawdown[worst] / peaks[worst] * 100), 3),
        "sharpe": _r(mean / std * scale, 3) if std > 1e-15 else 0.0,
        "sortino": _r(mean / down * scale, 3) if down > 1e-15 else 0.0,
    }


def refresh_interval_s(series: MarketSeries, ticks: int) -> float | None:
    """The median seconds between the refreshes of a market's book over the run's first
    `ticks` (None: fewer than two): the times of the quotes the replay showed, at most one a
    simulated second (the last row at or before it). Minute bars give 60; a tick-level capture
    about 1 (a second without a row keeps the quote before: 1.1 on the suite's capture of
    two rows a second)."""
    seen = series.updated_at[:ticks]
    times = np.unique(seen[np.isfinite(seen)])
    return float(np.median(np.diff(times))) if times.size >= 2 else None


def sparse_quotes_note(markets: list[dict[str, Any]], stale_s: float) -> str:
    """One sentence on the markets whose quotes come further apart than the governor's stale
    limit ('' if none): most of their seconds are refused as stale, which is the governor doing
    its job on bars, not a failure of the scripts."""
    sparse = [m for m in markets if (m.get("refresh_interval_s") or 0.0) > stale_s]
    if not sparse:
        return ""
    named = ", ".join(f"{m['trading_pair']} on {m['connector']} (a new quote every {m['refresh_interval_s']:g} s)"
                      for m in sparse)
    return (f"Quotes further apart than the governor's stale limit of {stale_s:g} s: {named}. Between two "
            "quotes their books are refused as stale (STALE_PRICE) once older than that limit, so these "
            "markets trade little or not at all. Replay a tick-level recording (`lyra-governor record`), "
            "or, for a run on bars only, raise `risk.stale_price_s` (at most 120) for that run: "
            "`LYRA_RISK__STALE_PRICE_S=60 lyra-governor paper --data ...` (a live bot with that setting "
            "would accept books that old too).")


def stale_periods(result: ReplayResult, stale_s: float) -> list[dict[str, Any]]:
    """Stretches where a market's book was older than `stale_s` (the governor refuses to trade
    on it): market, start, seconds."""
    out = []
    for m in result.feed.markets:
        n = result.ticks_run
        t = result.feed.start + np.arange(n, dtype=np.float64)
        age = t - m.updated_at[:n]
        stale = np.nan_to_num(age, nan=0.0) > stale_s
        edges = np.flatnonzero(np.diff(np.concatenate([[0], stale.astype(np.int8), [0]])))
        for lo, hi in zip(edges[::2], edges[1::2], strict=True):
            out.append({"connector": m.connector, "trading_pair": m.trading_pair, "at": float(t[lo]),
                        "seconds": int(hi - lo)})
    return out


#: Periods (gaps, stale stretches) listed one by one: summary.json, summary.md.
LISTED_JSON, LISTED_MD = 50, 10


def longest(periods: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The n longest periods, in their own order. A day's capture has hundreds of short quiet
    stretches; the first n of them would hide the lost connections of minutes behind them."""
    if len(periods) <= n:
        return periods
    keep = sorted(sorted(range(len(periods)), key=lambda i: -float(periods[i]["seconds"]))[:n])
    return [periods[i] for i in keep]


def per_market(periods: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per market (`PAIR on CONNECTOR`): how many periods, their seconds in all, the longest."""
    out: dict[str, dict[str, float]] = {}
    for p in periods:
        row = out.setdefault(f"{p['trading_pair']} on {p['connector']}", {"count": 0, "seconds": 0.0, "longest_s": 0.0})
        row["count"] += 1
        row["seconds"] = round(row["seconds"] + float(p["seconds"]), 3)
        row["longest_s"] = max(row["longest_s"], float(p["seconds"]))
    return dict(sorted(out.items()))


# --- the summary -------------------------------------------------------------------------------


def summarize(result: ReplayResult, settings: Settings) -> dict[str, Any]:
    success_min = settings.ladder.paper_success_rate_min
    cap_usd = float(settings.ladder.paper_virtual_usd)
    fill_rows, decision_rows, gov_events = _store_facts(result)
    decisions = dict(sorted(result.decisions.items()))
    approved = decisions.get("ALLOWED", 0)
    pending = decisions.get("PENDING", 0)
    denied = sum(v for k, v in decisions.items() if k not in ("ALLOWED", "PENDING"))
    success = (approved - result.exchange_failures) / approved if approved else 0.0
    max_exposure = max((s.used_usd for s in result.samples), default=0.0)
    limits_ok = not result.limit_breaches and result.totals_ok
    first, last = result.samples[0], result.samples[-1]

    # --- per script and per exchange
    first_price = {(a_conn, asset): p for (a_conn, asset), (_, p) in _valuer_prices(result).items()}
    per_script: dict[str, dict[str, Any]] = {}
    per_exchange: dict[str, dict[str, Any]] = {}
    total_realised = Decimal(0)
    for role, accounts in result.accounts.items():
        bot = result.role_bots.get(role, f"paper-{role}")
        rows = [r for r in fill_rows if r["bot_id"] == bot]
        counts = result.role_decisions.get(role, {})
        r_approved = counts.get("ALLOWED", 0)
        keys = [f"{role} {c}" for c in accounts]
        start_base = {
            (settings.exchange_of(c), f"{asset}-USDT"): (amt, Decimal(repr(first_price.get((c, asset), 0.0))))
            for c, assets in accounts.items()
            for asset, amt in assets.items()
            if asset not in QUOTE_ASSETS
        }
        gain, sells, wins = realised(rows, start_base)
        total_realised += gain
        equity_curve = [sum(s.equity_by.get(k, 0.0) for k in keys) for s in result.samples]
        start_usd = sum(first.equity_by.get(k, 0.0) for k in keys)
        end_usd = sum(last.equity_by.get(k, 0.0) for k in keys)
        hold_end = sum(last.hold_by.get(k, 0.0) for k in keys)
        fees_usd = sum(r["fee_musd"] for r in rows) / 1e6
        failures = result.role_failures.get(role, 0)
        per_script[role] = {
            "orders_proposed": sum(counts.values()),
            "orders_approved": r_approved,
            "orders_denied": sum(v for k, v in counts.items() if k not in ("ALLOWED", "PENDING")),
            "orders_pending_mandate": counts.get("PENDING", 0),
            "denied_by_code": {k: v for k, v in counts.items() if k not in ("ALLOWED", "PENDING")},
            "exchange_failures": failures,
            "success_rate": _r((r_approved - failures) / r_approved, 6) if r_approved else 0.0,
            "fills": len(rows),
            "orders_filled": len({r["reservation_id"] for r in rows}),
            "fill_rate": _r(len({r["reservation_id"] for r in rows}) / r_approved, 4) if r_approved else 0.0,
            "turnover_usd": _r(sum(r["notional_musd"] for r in rows) / 1e6),
            "fees_usd": _r(fees_usd),
            "start_usd": _r(start_usd),
            "end_usd": _r(end_usd),
            "market_move_usd": _r(hold_end - start_usd),
            "trading_pnl_usd": _r(end_usd - hold_end),
            "realised_usd": _r(float(gain)),
            "unrealised_usd": _r(end_usd - hold_end - float(gain)),
            "sells": sells,
            "win_rate": _r(wins / sells, 4) if sells else 0.0,
            **curve_stats(equity_curve),
        }
        for connector in accounts:
            exchange = settings.exchange_of(connector)
            key = f"{role} {connector}"
            row = per_exchange.setdefault(exchange, {"start_usd": 0.0, "end_usd": 0.0, "hold_end_usd": 0.0,
                                                     "fees_usd": 0.0, "turnover_usd": 0.0, "fills": 0})
            row["start_usd"] += first.equity_by.get(key, 0.0)
            row["end_usd"] += last.equity_by.get(key, 0.0)
            row["hold_end_usd"] += last.hold_by.get(key, 0.0)
    for exchange, row in per_exchange.items():
        mine = [r for r in fill_rows if r["exchange"] == exchange]
        row["fills"] = len(mine)
        row["fees_usd"] = sum(r["fee_musd"] for r in mine) / 1e6
        row["turnover_usd"] = sum(r["notional_musd"] for r in mine) / 1e6
        row["market_move_usd"] = row["hold_end_usd"] - row["start_usd"]
        row["trading_pnl_usd"] = row["end_usd"] - row["hold_end_usd"]
        row["max_used_usd"] = max((s.used_by_exchange.get(exchange, 0.0) for s in result.samples), default=0.0)
        row["cap_usd"] = max((s.cap_by_exchange.get(exchange, 0.0) for s in result.samples), default=0.0)
        for k in list(row):
            if isinstance(row[k], float):
                row[k] = _r(row[k])

    # --- consensus on every decision that adds exposure
    opening = [d for d in decision_rows if d.get("status") == "ALLOWED" and not d.get("reduce_only")]
    with_mandate = sum(1 for d in opening if d.get("mandate_id") or d.get("consensus_id"))
    arb_ok = result.arbitrage_seen > 0 and result.arbitrage_taken > 0
    tested = [r for r in result.per_strategy if r not in untested_strategies(result.per_strategy)]
    criteria = [
        {"criterion": "success rate > 95 %", "figure": f"{success:.2%} of {approved} approved orders",
         "passed": approved > 0 and success > success_min},
        {"criterion": "every limit respected",
         "figure": f"{len(result.limit_breaches)} cap breach(es); max exposure {max_exposure:.2f} of "
                   f"{cap_usd:,.0f} USD; reserved totals {'reconcile' if result.totals_ok else 'disagree'}",
         "passed": limits_ok},
        {"criterion": "arbitrage detection functional",
         "figure": f"{result.arbitrage_seen} opportunity-seconds seen, {result.arbitrage_taken} taken",
         "passed": arb_ok},
        {"criterion": "AI consensus on all trade decisions",
         "figure": f"{with_mandate} of {len(opening)} approved opening orders under a council mandate "
                   f"({result.council_requests} council consultations)",
         "passed": len(opening) > 0 and with_mandate == len(opening)},
        {"criterion": "all trading strategies tested",
         "figure": f"{len(tested)} of {len(result.per_strategy)} proposed, were approved and filled",
         "passed": bool(result.per_strategy) and len(tested) == len(result.per_strategy)},
    ]
    reasons = []
    if result.halted_reason:
        reasons.append(f"trading was halted after {result.ticks_run} s simulated: {result.halted_reason}")
    if result.unmatched:
        reasons.append(result.unmatched_note)
    reasons += [f"{c['criterion']}: not met ({c['figure']})" for c in criteria[:4] if not c["passed"]]
    if not result.totals_ok:
        reasons.append(f"ledger totals disagree: {result.totals_detail}")
    if result.limit_breaches:
        reasons.append(f"first cap breach: {result.limit_breaches[0]}")
    if not result.audit_ok:
        reasons.append("the audit chain does not verify")
    if result.fills == 0:
        reasons.append("no order was filled")
    untested = untested_strategies(result.per_strategy)
    if untested:
        why = [f"{role} ({why_untested(role, result, decision_rows)})" for role in untested]
        reasons.append(f"strategies not tested (each must propose, be approved and fill): {'; '.join(why)}")

    stale = stale_periods(result, settings.risk.stale_price_s)
    feed = result.feed
    span_end = feed.start + max(result.ticks_run - 1, 0)
    markets: list[dict[str, Any]] = [
        {"connector": m.connector, "trading_pair": m.trading_pair,
         "first_quote_utc": _first_quote(feed.start, m.first_tick()),
         "distinct_quotes": int(np.unique(m.mid[np.isfinite(m.mid)]).size),
         "first_mid": _r(m.first_mid() or 0.0, 6),
         "refresh_interval_s": _interval(refresh_interval_s(m, result.ticks_run))}
        for m in feed.markets
    ]
    data = {
        "source": feed.source or "generator",
        "start_utc": _utc(feed.start),
        "end_utc": _utc(span_end),
        "simulated_s": result.ticks_run,
        "markets": markets,
        "gaps": longest(feed.gaps, LISTED_JSON),
        "gaps_total": len(feed.gaps),
        "stale_periods": longest(stale, LISTED_JSON),
        "stale_periods_total": len(stale),
        "unmatched": result.unmatched,
        "unmatched_note": result.unmatched_note,
        "unused_markets": result.unused,
        "fees": result.fees,
    }
    if feed.rows_dropped is not None:  # a recording: its rows read, and those that could be no book
        data["rows_dropped"] = feed.rows_dropped
        data["gaps_by_market"], data["stale_by_market"] = per_market(feed.gaps), per_market(stale)
    sparse = data["sparse_quotes_note"] = sparse_quotes_note(markets, settings.risk.stale_price_s)
    if reasons and sparse:  # the likely why of a gate not passed on bars
        reasons.append(sparse)
    pnl = {
        "start_equity_usd": _r(result.start_equity_usd),
        "end_equity_usd": _r(result.end_equity_usd),
        "total_usd": _r(result.end_equity_usd - result.start_equity_usd),
        "market_move_usd": _r(last.hold_usd - first.hold_usd),
        "trading_pnl_usd": _r(result.end_equity_usd - last.hold_usd),
        "realised_usd": _r(float(total_realised)),
        "unrealised_usd": _r(result.end_equity_usd - last.hold_usd - float(total_realised)),
        "fees_usd": _r(sum(r["fee_musd"] for r in fill_rows) / 1e6),
        "hold_end_usd": _r(last.hold_usd),
        "vs_hold_pct": _r((result.end_equity_usd - last.hold_usd) / last.hold_usd * 100, 4) if last.hold_usd else 0.0,
    }
    return {
        "simulated_hours": round(result.ticks_run / 3600, 4),
        "orders_proposed": approved + denied + pending,
        "orders_approved": approved,
        "orders_denied": denied,
        "orders_pending_mandate": pending,
        "denied_by_code": {k: v for k, v in decisions.items() if k not in ("ALLOWED", "PENDING")},
        "exchange_failures": result.exchange_failures,
        "fills": result.fills,
        "success_rate": round(success, 6),
        "pnl_usd": pnl["total_usd"],
        "pnl": pnl,
        "start_equity_usd": pnl["start_equity_usd"],
        "end_equity_usd": pnl["end_equity_usd"],
        "max_exposure_usd": round(max_exposure, 4),
        "cap_usd": cap_usd,
        "limits_respected": limits_ok,
        "limit_breaches": result.limit_breaches[:20],
        "arbitrage_seen": result.arbitrage_seen,
        "arbitrage_taken": result.arbitrage_taken,
        "ai_calls": result.council_requests,
        "ai_cost_usd": round(result.ai_cost_usd, 6),
        "audit_ok": result.audit_ok,
        "audit_records": result.audit_records,
        "per_script": per_script,
        "per_exchange": dict(sorted(per_exchange.items())),
        "criteria": criteria,
        "data": data,
        "feed_events": feed.events,
        "governor_events": gov_events[:200],
        "breaker_trips": breaker_trips(result.db_path),
        "denials_by_time": [[d["ts"], d.get("code")] for d in decision_rows if d.get("status") == "DENIED"][:2000],
        "strategies": result.per_strategy,
        "strategies_untested": untested_strategies(result.per_strategy),
        "all_strategies_tested": bool(result.per_strategy) and not untested_strategies(result.per_strategy),
        "halted": result.halted_reason or None,
        "gate_passed": not reasons,
        "gate_reasons": reasons,
        "store": str(result.db_path),
    }


def untested_strategies(per_strategy: dict[str, dict[str, int]]) -> list[str]:
    """The Phase-3 criterion "all trading strategies tested": the roles that did not propose,
    get an order approved and see a fill at least once."""
    return [
        role
        for role, c in per_strategy.items()
        if not (c.get("proposed", 0) and c.get("approved", 0) and c.get("fills", 0))
    ]


def why_untested(role: str, result: ReplayResult, decision_rows: list[dict[str, Any]]) -> str:
    """Why a strategy was not tested, in the figures that show it: no proposal; no approval
    (the governor's codes); or approvals that never filled, with how far from mid the approved
    opening orders were priced (a quote always re-placed further away than the market moves
    before it is refreshed never fills, a legitimate outcome of the script's parameters); and
    whether the candles its indicator reads were ever all there (a recording shorter than
    its warm-up: a dynamic market maker quotes its widest spread until its NATR is known)."""
    cold = "".join(f"; its {w['interval']} candles of {w['trading_pair']} on {w['connector']} never reached the "
                   f"{w['needed']} it reads ({w['closed']} closed in {result.ticks_run} s of data), so its "
                   "indicator was never known" for w in result.cold_candles.get(role, []))
    return _why_untested(role, result, decision_rows) + cold


def _why_untested(role: str, result: ReplayResult, decision_rows: list[dict[str, Any]]) -> str:
    counts = result.per_strategy.get(role, {})
    proposed, approved = counts.get("proposed", 0), counts.get("approved", 0)
    if not proposed:
        return "proposed no order"
    bot = result.role_bots.get(role, f"paper-{role}")
    mine = [d for d in decision_rows if d.get("actor") == bot]
    if not approved:
        codes: dict[str, int] = {}
        for d in mine:
            code = "deferred for a council mandate" if d.get("status") == "PENDING" else str(d.get("code"))
            codes[code] = codes.get(code, 0) + 1
        shown = ", ".join(f"{code} {n}" for code, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"none of its {proposed} proposals approved: {shown}"
    away = []
    for d in mine:
        if d.get("status") == "ALLOWED" and not d.get("reduce_only") and d.get("price") and d.get("mid"):
            mid = float(d["mid"])
            away.append(abs(float(d["price"]) - mid) / mid * 1e4 if mid > 0 else 0.0)
    if not away:
        return f"{approved} orders approved, none filled"
    return (f"{approved} orders approved, none filled: its opening orders were priced a median "
            f"{float(np.median(away)):.1f} bps from mid (nearest {min(away):.1f} bps), and the market "
            "never reached them before they were replaced")


def _first_quote(start: float, tick: int | None) -> str | None:
    return None if tick is None else _utc(start + tick)


def _valuer_prices(result: ReplayResult) -> dict[tuple[str, str], tuple[Any, float]]:
    out: dict[tuple[str, str], tuple[Any, float]] = {}
    for m in result.feed.markets:
        first = m.first_mid()
        if first is not None and m.trading_pair.endswith("-USDT"):
            out[(m.connector, m.trading_pair.split("-")[0])] = (m, first)
    return out


def run_facts(result: ReplayResult) -> dict[str, Any]:
    """What differs between two runs of the same command: wall times and the audit head."""
    hours = result.ticks_run / 3600
    per_hour, cpu = result.hour_wall_s, result.hour_cpu_s
    return {
        "wall_s": round(result.wall_s, 3),
        "sim_hours_per_wall_s": round(hours / result.wall_s, 5) if result.wall_s else 0.0,
        "governor_s": round(result.governor_s, 3),
        "governor_share": round(result.governor_s / result.wall_s, 4) if result.wall_s else 0.0,
        "hour_wall_s": [round(h, 3) for h in per_hour],
        "last_vs_first_hour": round(per_hour[-1] / per_hour[0], 3) if len(per_hour) >= 2 and per_hour[0] else None,
        # CPU seconds of the process: on a shared machine the wall time says more about the others
        "cpu_s": round(result.cpu_s, 3),
        "hour_cpu_s": [round(h, 3) for h in cpu],
        "last_vs_first_hour_cpu": round(cpu[-1] / cpu[0], 3) if len(cpu) >= 2 and cpu[0] else None,
        "audit_head": result.audit_head,
    }


# --- the files -----------------------------------------------------------------------------------


def write_report(summary: dict[str, Any], result: ReplayResult, out_dir: Path) -> list[Path]:
    """summary.json, run.json, summary.md, equity.png, exposure.png and report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "summary.json", out_dir / "run.json"]
    written[0].write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    written[1].write_text(json.dumps(run_facts(result), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    plots = _plots(summary, result, out_dir)
    md = markdown(summary)
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    written.append(out_dir / "summary.md")
    written += plots
    written.append(_html(md, plots, out_dir))
    return written


def _money(x: float) -> str:
    return f"{x:+,.2f}" if x else "0.00"


def markdown(s: dict[str, Any]) -> str:
    d, p = s["data"], s["pnl"]
    verdict = "PASSED" if s["gate_passed"] else "NOT PASSED"
    lines = [
        "# Lyra Phase-3 paper run",
        "",
        f"**Phase-3 gate {verdict}.** {s['simulated_hours']:g} simulated hours of {d['source']} "
        f"({d['start_utc']} to {d['end_utc']}), {len(s['per_script'])} governed scripts on "
        f"{s['cap_usd']:,.0f} USD of virtual capital sized at the data's first prices, Hummingbot's paper "
        "engine with each exchange's fees.",
        "",
    ]
    if s["gate_reasons"]:
        lines += ["Why not:", "", *[f"- {r}" for r in s["gate_reasons"]], ""]
    lines += [
        "## Phase-3 criteria", "",
        "| criterion | figure | result |", "|---|---|---|",
        *[f"| {c['criterion']} | {c['figure']} | {'pass' if c['passed'] else 'FAIL'} |" for c in s["criteria"]],
        "",
        f"Audit chain: {'verifies' if s['audit_ok'] else 'BROKEN'} ({s['audit_records']} records). "
        f"Evidence: {s.get('evidence', 'not recorded')}.",
        "",
    ]
    if s.get("promote_needs") is not None:
        needs = s["promote_needs"]
        lines += ["What `lyra-governor promote` still needs: " + ("; ".join(needs) if needs else "nothing") + ".", ""]
    lines += [
        "## PnL (USD, net of fees)", "",
        "| | USD |", "|---|---|",
        f"| start equity | {p['start_equity_usd']:,.2f} |",
        f"| end equity | {p['end_equity_usd']:,.2f} |",
        f"| total change | {_money(p['total_usd'])} |",
        f"| of which market move of the start inventory (hold) | {_money(p['market_move_usd'])} |",
        f"| of which trading PnL (equity - hold) | {_money(p['trading_pnl_usd'])} "
        f"({p['vs_hold_pct']:+.3f} % vs hold) |",
        f"| trading PnL realised / unrealised | {_money(p['realised_usd'])} / {_money(p['unrealised_usd'])} |",
        f"| fees paid | {p['fees_usd']:,.2f} |",
        "",
        "Market move = the start balances valued at the end minus at the start; trading PnL = equity minus "
        "those same balances held (what the scripts did, fees included); realised = average-cost profit of sells.",
        "",
        "## Per script", "",
        "| script | orders | approved | denied | fills | fill rate | success | turnover | fees | trading PnL "
        "| market move | realised | max DD | Sharpe | Sortino | win rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for role, r in s["per_script"].items():
        lines.append(
            f"| {role} | {r['orders_proposed']} | {r['orders_approved']} | {r['orders_denied']} | {r['fills']} "
            f"| {r['fill_rate']:.1%} | {r['success_rate']:.1%} | {r['turnover_usd']:,.2f} | {r['fees_usd']:,.2f} "
            f"| {_money(r['trading_pnl_usd'])} | {_money(r['market_move_usd'])} | {_money(r['realised_usd'])} "
            f"| {r['max_drawdown_usd']:,.2f} ({r['max_drawdown_pct']:.2f} %) | {r['sharpe']:.2f} | {r['sortino']:.2f} "
            f"| {r['win_rate']:.0%} of {r['sells']} |"
        )
    lines += ["", "Denials by code per script:", ""]
    for role, r in s["per_script"].items():
        codes = ", ".join(f"{k} {v}" for k, v in r["denied_by_code"].items()) or "none"
        lines.append(f"- {role}: {codes}; {r['orders_pending_mandate']} deferred for a council mandate")
    lines += [
        "", "Fill rate = approved orders with a fill / approved; success = approved orders the exchange took "
        "without error; turnover = filled notional; drawdown, Sharpe and Sortino on the script's equity each "
        "minute (annualised); win rate = sells at a profit over average cost.",
        "", "## Per exchange", "",
        "| exchange | start | end | market move | trading PnL | fees | turnover | fills | max exposure | cap |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ex, r in s["per_exchange"].items():
        lines.append(
            f"| {ex} | {r['start_usd']:,.2f} | {r['end_usd']:,.2f} | {_money(r['market_move_usd'])} "
            f"| {_money(r['trading_pnl_usd'])} | {r['fees_usd']:,.2f} | {r['turnover_usd']:,.2f} | {r['fills']} "
            f"| {r['max_used_usd']:,.2f} | {r['cap_usd']:,.2f} |"
        )
    lines += ["", "## The data", "", f"Source: {d['source']}; {d['start_utc']} to {d['end_utc']} "
              f"({d['simulated_s']:,} simulated seconds). Paper fees (maker/taker): "
              + ", ".join(f"{c} {float(f['maker']):.4%}/{float(f['taker']):.4%}" for c, f in d["fees"].items()) + ".",
              "", "| market | first quote | distinct quotes | refreshed every | first mid |", "|---|---|---|---|---|"]
    for m in d["markets"]:
        every = "-" if m["refresh_interval_s"] is None else f"{m['refresh_interval_s']:g} s"
        lines.append(f"| {m['trading_pair']} on {m['connector']} | {m['first_quote_utc'] or 'never'} "
                     f"| {m['distinct_quotes']:,} | {every} | {m['first_mid']:,} |")
    lines += [""]
    if d["sparse_quotes_note"]:
        lines += [d["sparse_quotes_note"], ""]
    if d["unmatched_note"]:
        lines += [d["unmatched_note"], ""]
    if d["unused_markets"]:
        lines += [f"Recorded but traded by no script: {', '.join(d['unused_markets'])}.", ""]
    dropped = {k: v for k, v in d.get("rows_dropped", {}).items() if k != "rows_read"}
    if "rows_dropped" in d:
        lines += [f"Rows read: {d['rows_dropped']['rows_read']:,}; left out: "
                  + (", ".join(f"{n:,} with {reason}" for reason, n in dropped.items()) or "none") + ".", ""]
    lines += [f"Gaps in the recording (> 10 s without a quote): {d['gaps_total']}"
              + _periods(d["gaps"], d["gaps_total"], d.get("gaps_by_market")), "",
              "Stale periods (book older than the governor's stale limit, no trading on it): "
              f"{d['stale_periods_total']}" + _periods(d["stale_periods"], d["stale_periods_total"],
                                                       d.get("stale_by_market")), ""]
    if s["feed_events"]:
        lines += ["Injected feed events: " + "; ".join(
            f"{e['kind']} on {e['trading_pair']} {e['connector']} at {_utc(float(e['at']))}" for e in s["feed_events"])
            + ".", ""]
    lines += ["## Governor", "", f"{s['orders_proposed']} orders proposed: {s['orders_approved']} approved, "
              f"{s['orders_denied']} denied, {s['orders_pending_mandate']} deferred for a council mandate; "
              f"{s['ai_calls']} council consultations (cost {s['ai_cost_usd']:.4f} USD). Denied by code: "
              + (", ".join(f"{k} {v}" for k, v in s["denied_by_code"].items()) or "none") + ".", ""]
    lines += [breaker_sentence(s.get("breaker_trips", {})), ""]
    if s["governor_events"]:
        lines += ["Governor events: " + "; ".join(f"{e['event']} at {_utc(e['ts'])}" for e in s["governor_events"][:20])
                  + ".", ""]
    lines += ["Plots: equity.png (equity, hold and trading PnL per script) and exposure.png (per exchange against "
              "its cap); feed events are dashed lines, denials ticks, governor events red lines. "
              "Everything in one file: report.html.", ""]
    return "\n".join(lines)


def _periods(periods: list[dict[str, Any]], total: int, markets: dict[str, dict[str, float]] | None) -> str:
    """The periods one by one, or, more than `LISTED_MD` of them, per market and the longest."""
    if not periods:
        return ""
    listed = longest(periods, LISTED_MD)
    shown = "; ".join(f"{g['trading_pair']} on {g['connector']} at {_utc(g['at'])} for {g['seconds']:g} s"
                      + (" (its recording ends there)" if g.get("to_end") else "") for g in listed)
    if total <= LISTED_MD:
        return f": {shown}"
    split = "; ".join(f"{name} {row['count']:,.0f} ({_length(row['seconds'])} in all, longest "
                      f"{_length(row['longest_s'])})" for name, row in (markets or {}).items())
    return (f" ({split})" if split else "") + f"; the {len(listed)} longest: {shown}"


def _length(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:,.1f} h"


def _marks(ax: Any, summary: dict[str, Any], t0: float) -> None:
    for e in summary["feed_events"]:
        x = (float(e["at"]) - t0) / 3600
        ax.axvline(x, color="#9467bd", linestyle="--", linewidth=1)
        ax.annotate(str(e["kind"]).replace("_", " "), (x, 1), xycoords=("data", "axes fraction"),
                    fontsize=7, color="#9467bd", rotation=90, va="top", ha="right")
    for e in summary["governor_events"]:
        ax.axvline((e["ts"] - t0) / 3600, color="#d62728", linewidth=1.2)
    denials = summary["denials_by_time"]
    if denials:
        xs = [(ts - t0) / 3600 for ts, _ in denials]
        ax.plot(xs, [0.02] * len(xs), "|", color="#ff7f0e", markersize=8, transform=ax.get_xaxis_transform(),
                label=f"denials ({len(denials)})")


def _plots(summary: dict[str, Any], result: ReplayResult, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.feed.start
    hours = [(s.t - t0) / 3600 for s in result.samples]
    start = _utc(t0)
    files = []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(hours, [s.equity_usd for s in result.samples], color="#1f77b4", label="equity")
    top.plot(hours, [s.hold_usd for s in result.samples], color="#7f7f7f", linestyle=":", label="hold start inventory")
    top.set(title=f"Paper equity (USD), from {start}", ylabel="USD")
    _marks(top, summary, t0)
    top.legend(fontsize=8, loc="best")
    top.grid(alpha=0.3)
    for role, accounts in result.accounts.items():
        keys = [f"{role} {c}" for c in accounts]
        bottom.plot(hours, [sum(s.equity_by.get(k, 0.0) - s.hold_by.get(k, 0.0) for k in keys)
                            for s in result.samples], label=role)
    bottom.plot(hours, [s.equity_usd - s.hold_usd for s in result.samples], color="black", linewidth=1.5,
                label="all scripts")
    bottom.axhline(0, color="#7f7f7f", linewidth=0.8)
    bottom.set(title="Trading PnL = equity - hold (USD, net of fees)", xlabel="simulated hours", ylabel="USD")
    _marks(bottom, summary, t0)
    bottom.legend(fontsize=8, loc="best")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out_dir / "equity.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    traded = {c.removesuffix("_paper_trade") for per in result.accounts.values() for c in per}
    exchanges = sorted({e for s in result.samples for e, used in s.used_by_exchange.items() if used or e in traded})
    for n, exchange in enumerate(exchanges):
        color = f"C{n}"
        ax.plot(hours, [s.used_by_exchange.get(exchange, 0.0) for s in result.samples], color=color,
                label=f"{exchange} deployed + reserved")
        ax.plot(hours, [s.cap_by_exchange.get(exchange, 0.0) for s in result.samples], color=color,
                linestyle="--", linewidth=0.8, label=f"{exchange} cap")
    ax.plot(hours, [s.used_usd for s in result.samples], color="black", label="total")
    ax.plot(hours, [s.cap_usd for s in result.samples], color="black", linestyle="--", label="total cap")
    ax.set(title="Exposure per exchange vs cap (USD)", xlabel="simulated hours", ylabel="USD")
    _marks(ax, summary, t0)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out_dir / "exposure.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    return files


def _html(md: str, plots: list[Path], out_dir: Path) -> Path:
    """One self-contained page: the summary's tables as HTML and the plots as base64 images."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r.strip("|").split(" | ") for r in table if not set(r) <= {"|", "-"}]
            head, rest = rows[0], rows[1:]
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("- "):
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    for plot in plots:
        data = base64.b64encode(plot.read_bytes()).decode("ascii")
        body.append(f'<h2>{plot.stem}</h2><img alt="{plot.stem}" src="data:image/png;base64,{data}">')
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Lyra Phase-3 paper run</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
            "th{background:#f3f3f3}.fail{color:#b00;font-weight:bold}.pass{color:#070}img{max-width:100%}"
            "</style></head><body>" + "\n".join(body) + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _inline(text: str) -> str:
    out = html.escape(text)
    while "**" in out:
        out = out.replace("**", "<b>", 1).replace("**", "</b>", 1)
    while out.count("`") >= 2:
        out = out.replace("`", "<code>", 1).replace("`", "</code>", 1)
    return out


def _cell(text: str) -> str:
    cls = {"pass": "pass", "FAIL": "fail"}.get(text.strip())
    return f'<span class="{cls}">{html.escape(text)}</span>' if cls else html.escape(text)
