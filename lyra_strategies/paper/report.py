"""The Phase-3 report: summary.json, a summary table, PNG plots, and the gate's verdict.

Success rate, as the README defines it: of the orders the governor APPROVED, the share the
paper exchange accepted without error. Denials are the governor doing its job (a collar trip
in a flash move is a success of the system, not a failure of the run), so they are reported by
code but do not lower the rate. The gate passes when the success rate is above 95 % (the
configured `ladder.paper_success_rate_min`), no cap was exceeded at any sample, the ledger's
reserved totals match its open reservations, the audit chain verifies, and at least one order
was approved and filled.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from lyra_strategies.paper.replay import ReplayResult


def summarize(result: ReplayResult, success_min: float, cap_usd: float) -> dict[str, Any]:
    decisions = dict(sorted(result.decisions.items()))
    approved = decisions.get("ALLOWED", 0)
    pending = decisions.get("PENDING", 0)
    denied = sum(v for k, v in decisions.items() if k not in ("ALLOWED", "PENDING"))
    success = (approved - result.exchange_failures) / approved if approved else 0.0
    max_exposure = max((s.used_usd for s in result.samples), default=0.0)
    limits_ok = not result.limit_breaches and result.totals_ok
    reasons = []
    if approved == 0:
        reasons.append("no order was approved")
    if success <= success_min:
        reasons.append(f"success rate {success:.1%} is not above {success_min:.0%}")
    if result.limit_breaches:
        reasons.append(f"{len(result.limit_breaches)} cap breach(es): {result.limit_breaches[0]}")
    if not result.totals_ok:
        reasons.append(f"ledger totals disagree: {result.totals_detail}")
    if not result.audit_ok:
        reasons.append("the audit chain does not verify")
    if result.fills == 0:
        reasons.append("no order was filled")
    untested = untested_strategies(result.per_strategy)
    if untested:
        reasons.append(f"strategies not tested (each must propose, be approved and fill): {', '.join(untested)}")
    if result.halted_reason:
        reasons.insert(0, f"trading was halted after {result.ticks_run} s simulated: {result.halted_reason}")
    simulated_hours = result.ticks_run / 3600
    return {
        "simulated_hours": round(simulated_hours, 4),
        "wall_s": round(result.wall_s, 3),
        "sim_hours_per_wall_s": round(simulated_hours / result.wall_s, 5) if result.wall_s else 0.0,
        "governor_share": round(result.governor_s / result.wall_s, 4) if result.wall_s else 0.0,
        "orders_proposed": approved + denied + pending,
        "orders_approved": approved,
        "orders_denied": denied,
        "orders_pending_mandate": pending,
        "denied_by_code": {k: v for k, v in decisions.items() if k not in ("ALLOWED", "PENDING")},
        "exchange_failures": result.exchange_failures,
        "fills": result.fills,
        "success_rate": round(success, 6),
        "pnl_usd": round(result.end_equity_usd - result.start_equity_usd, 4),
        "start_equity_usd": round(result.start_equity_usd, 4),
        "end_equity_usd": round(result.end_equity_usd, 4),
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
        "audit_head": result.audit_head,
        "feed_events": result.feed.events,
        "halted": result.halted_reason or None,
        "gate_passed": not reasons,
        "gate_reasons": reasons,
        "store": str(result.db_path),
        "strategies": result.per_strategy,
        "strategies_untested": untested,
        "all_strategies_tested": bool(result.per_strategy) and not untested,
    }


def untested_strategies(per_strategy: dict[str, dict[str, int]]) -> list[str]:
    """The Phase-3 criterion "all trading strategies tested": the roles that did not propose,
    get an order approved and see a fill at least once."""
    return [
        role
        for role, c in per_strategy.items()
        if not (c.get("proposed", 0) and c.get("approved", 0) and c.get("fills", 0))
    ]


def write_report(summary: dict[str, Any], result: ReplayResult, out_dir: Path) -> list[Path]:
    """summary.json, summary.md and two PNG plots; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "summary.json", out_dir / "summary.md"]
    written[0].write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    lines = ["# Lyra Phase-3 paper run", "", "| figure | value |", "|---|---|"]
    for key in (
        "simulated_hours",
        "orders_proposed",
        "orders_approved",
        "orders_denied",
        "orders_pending_mandate",
        "fills",
        "success_rate",
        "pnl_usd",
        "max_exposure_usd",
        "cap_usd",
        "limits_respected",
        "arbitrage_seen",
        "arbitrage_taken",
        "ai_calls",
        "ai_cost_usd",
        "audit_ok",
        "gate_passed",
    ):
        lines.append(f"| {key} | {summary[key]} |")
    lines += ["", "Per strategy (all trading strategies tested: each proposed, approved and filled):", "",
              "| strategy | proposed | approved | denied | pending | fills | tested |", "|---|---|---|---|---|---|---|"]
    for role, c in summary.get("strategies", {}).items():
        tested = "no" if role in summary.get("strategies_untested", []) else "yes"
        lines.append(f"| {role} | {c['proposed']} | {c['approved']} | {c['denied']} | {c['pending']} | "
                     f"{c['fills']} | {tested} |")
    lines += ["", "Denied by code:", ""]
    lines += [f"- {code}: {count}" for code, count in summary["denied_by_code"].items()] or ["- none"]
    if summary["gate_reasons"]:
        lines += ["", "Gate not passed:", *[f"- {r}" for r in summary["gate_reasons"]]]
    written[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    written += _plots(result, out_dir)
    return written


def _plots(result: ReplayResult, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [(s.t - result.feed.start) / 3600 for s in result.samples]
    start = dt.datetime.fromtimestamp(result.feed.start, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = []
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(hours, [s.equity_usd for s in result.samples], color="#1f77b4")
    ax.set(title=f"Paper equity (USD), from {start}", xlabel="simulated hours", ylabel="USD")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out_dir / "equity.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(hours, [s.used_usd for s in result.samples], label="deployed + reserved", color="#d62728")
    ax.plot(hours, [s.cap_usd for s in result.samples], label="cap", color="#2ca02c", linestyle="--")
    ax.set(title="Exposure vs cap (USD)", xlabel="simulated hours", ylabel="USD")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out_dir / "exposure.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files
