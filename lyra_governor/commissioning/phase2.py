"""Phase 2 (exchange connectivity): judge the facts `lyra_governor.exchanges` collected.

Pure functions. An exchange is *validated* only when every read-only call worked (or does not
exist in ccxt), its configured pairs are listed, its clock is close, its key cannot withdraw
and can trade only if the phase allows, and its requests kept to ccxt's rate limit. An exchange
ccxt or Hummingbot cannot serve is *unsupported*, never validated, with what the user can do.
The gate: at least `commissioning.min_exchanges` validated, and market-data failover exercised.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from lyra_governor.commissioning.report import Check
from lyra_governor.config import Settings
from lyra_governor.exchanges import (
    ACTIONS,
    ErrorKind,
    ExchangeFacts,
    FailoverFacts,
    RequestStamp,
    ValidationFacts,
)

VALIDATED, FAILED, UNSUPPORTED = "validated", "failed", "unsupported"
LIVE_ORDER_PHASE = 4

DISPLAY = {"digital_surge": "Digital Surge", "whitebit": "WhiteBIT", "btc_markets": "BTC Markets", "gate_io": "Gate.io",
           "okx": "OKX", "binance": "Binance", "kraken": "Kraken"}  # fmt: skip

NO_HUMMINGBOT = {
    "whitebit": "Hummingbot removed its WhiteBIT connector in 2023",
    "digital_surge": "Hummingbot has no Digital Surge connector",
}


@dataclass(frozen=True)
class RateFigures:
    """Rate-limit compliance measured from request timestamps."""

    ok: bool
    requests: int
    min_gap_ms: float | None
    worst_excess: float
    rate_limit_ms: float


def rate_limit_compliance(
    stamps: list[RequestStamp], rate_limit_ms: float, burst: float = 2.0, tolerance_ms: float = 5.0
) -> RateFigures:
    """Leaky-bucket conformance: for every pair of requests i < j, the cost sent in between
    must fit the time elapsed: sum(cost[i:j]) <= (t_j - t_i) / rate_limit + burst.

    `burst` = 2 cost units, ccxt's own bucket (capacity 1, spend to -cost) after an idle spell.
    """
    ordered = sorted(stamps, key=lambda s: s.t)
    worst = 0.0
    for i in range(len(ordered)):
        spent = 0.0
        for j in range(i + 1, len(ordered)):
            spent += ordered[i + (j - i - 1)].cost
            elapsed_ms = (ordered[j].t - ordered[i].t) * 1000 + tolerance_ms
            allowed = elapsed_ms / rate_limit_ms + burst if rate_limit_ms > 0 else float("inf")
            worst = max(worst, spent - allowed)
    gaps = [(b.t - a.t) * 1000 for a, b in itertools.pairwise(ordered)]
    return RateFigures(worst <= 0, len(ordered), min(gaps) if gaps else None, round(worst, 3), rate_limit_ms)


@dataclass
class ExchangeJudgement:
    name: str
    status: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    critical: bool = False
    warning: bool = False
    rate: RateFigures | None = None

    def detail(self) -> str:
        head = self.status
        parts = self.problems if self.problems else self.notes
        return f"{head}: " + "; ".join(parts) if parts else head


def judge_exchange(facts: ExchangeFacts, phase: int, max_skew_ms: float) -> ExchangeJudgement:
    """Validated, failed or unsupported, with every reason in words a user can act on."""
    name = facts.name
    if not facts.supported:
        shown = DISPLAY.get(name, name)
        what = f"ccxt has no {shown} exchange" + (f" (ccxt_id {facts.ccxt_id!r})" if facts.ccxt_id else "")
        hb = NO_HUMMINGBOT.get(name, "" if facts.hummingbot else "Hummingbot has no connector for it")
        reason = f"{what}{' and ' + hb if hb else ''}: Lyra cannot validate or trade it"
        advice = "remove it from `exchanges` or trade it by hand outside Lyra"
        if any(p.endswith("-AUD") for p in facts.pairs):
            advice += "; BTC Markets offers AUD pairs Lyra can trade"
        return ExchangeJudgement(name, UNSUPPORTED, [reason, advice])

    j = ExchangeJudgement(name, VALIDATED)
    if facts.missing_credentials:
        names = ", ".join(f"exchange/{name}/{c}" for c in facts.missing_credentials)
        first = f"exchange/{name}/{facts.missing_credentials[0]}"
        j.problems.append(f"missing credentials {names}; add them with `lyra-governor vault set {first}`")
    for call in facts.calls.values():
        if call.ok or call.kind is ErrorKind.NOT_SUPPORTED:
            continue
        kind = call.kind or ErrorKind.UNKNOWN
        j.problems.append(f"{call.name} failed ({kind.value}): {call.error} — {ACTIONS[kind]}")
    if facts.status == "maintenance":
        j.problems.append("the exchange reports maintenance; validate again when it is back")
    if facts.server_skew_ms is not None and abs(facts.server_skew_ms) > max_skew_ms:
        j.problems.append(
            f"clock differs from the exchange by {facts.server_skew_ms:+.0f} ms (limit {max_skew_ms:.0f}); sync NTP"
        )
    if facts.missing_pairs:
        j.problems.append(f"pairs not listed there: {', '.join(facts.missing_pairs)}; fix exchanges.{name}.pairs")
    perms = facts.permissions
    if perms.withdraw:
        j.critical = True
        j.problems.append("the API key can WITHDRAW funds; delete it and create a key without withdrawal permission")
    if perms.trade is True and phase < LIVE_ORDER_PHASE:
        j.problems.append(
            f"the API key can trade, but phase {phase} places no live orders; use a read-only key until phase 4"
        )
    if perms.trade is False and phase >= LIVE_ORDER_PHASE:
        j.problems.append(f"the API key cannot trade, and phase {phase} trades live; enable spot trading on the key")
    if facts.requests:
        j.rate = rate_limit_compliance(facts.requests, facts.rate_limit_ms)
        if not j.rate.ok:
            j.problems.append(
                f"requests exceeded the rate limit ({facts.rate_limit_ms:.0f} ms per unit) "
                f"by {j.rate.worst_excess} units"
            )

    sandbox = (
        "sandbox"
        if facts.sandbox_used
        else ("live API, sandbox off" if facts.sandbox_available else "no sandbox in ccxt: live API, read-only")
    )
    j.notes.append(sandbox)
    if facts.server_skew_ms is not None:
        j.notes.append(f"clock skew {facts.server_skew_ms:+.0f} ms")
    j.notes.append(f"{len(facts.pairs) - len(facts.missing_pairs)}/{len(facts.pairs)} pairs listed")
    if "balance" in facts.calls and facts.calls["balance"].ok:
        j.notes.append("balance readable")
    if perms.withdraw is None:
        j.warning = True
        j.notes.append("key permissions unverified (no ccxt endpoint): make sure withdrawal is disabled")
    else:
        allowed = [n for n in ("read", "trade", "withdraw") if getattr(perms, n)]
        j.notes.append(f"key permissions: {', '.join(allowed) or 'none'}")
    if j.rate is not None:
        gap = f", min gap {j.rate.min_gap_ms:.0f} ms" if j.rate.min_gap_ms is not None else ""
        j.notes.append(f"{j.rate.requests} requests within the {facts.rate_limit_ms:.0f} ms rate limit{gap}")

    if j.problems:
        j.status = FAILED
    elif not facts.hummingbot:
        j.status = UNSUPPORTED
        why = NO_HUMMINGBOT.get(name, "Hummingbot has no connector for it")
        j.problems = [
            f"read-only probe passed ({'; '.join(j.notes)}), but {why}: Lyra can use it as a market-data source only",
            "trade on another exchange; it does not count towards the Phase-2 gate",
        ]
    return j


def _exchange_check(j: ExchangeJudgement, facts: ExchangeFacts) -> Check:
    data: dict[str, Any] = {
        "status": j.status,
        "sandbox": facts.sandbox_used,
        "hosts": facts.hosts,
        "calls": {
            k: {"ok": c.ok, "kind": c.kind.value if c.kind else None, "ms": round(c.latency_ms, 1)}
            for k, c in facts.calls.items()
        },
    }
    if j.rate is not None:
        data["rate_limit"] = {
            "requests": j.rate.requests,
            "min_gap_ms": j.rate.min_gap_ms,
            "limit_ms": j.rate.rate_limit_ms,
            "ok": j.rate.ok,
        }
    return Check(
        f"exchange {facts.name}",
        j.status == VALIDATED,
        j.detail(),
        warning=j.warning and j.status == VALIDATED,
        critical=j.critical,
        gating=j.critical,
        data=data,
    )


def failover_check(failover: FailoverFacts | None) -> Check:
    if failover is None:
        return Check("market-data failover", False, "not exercised: no exchange served market data at all")
    how = "drill (primary pointed at a closed local port)" if failover.drill else "real failure"
    trail = " -> ".join(f"{n}: {k}" for n, k in failover.attempts)
    kind = failover.primary_kind.value if failover.primary_kind else "?"
    trail_or = trail or "no other exchange lists the pair"
    if failover.served_by:
        return Check(
            "market-data failover",
            True,
            f"{failover.symbol}: {failover.primary} failed ({kind}), "
            f"served by {failover.served_by} at {failover.last} [{how}; {trail}]",
        )
    return Check(
        "market-data failover",
        False,
        f"{failover.symbol}: no second source served it after {failover.primary} failed [{how}; {trail_or}];"
        " configure a second exchange that lists the pair",
    )


def phase2_checks(validation: ValidationFacts, settings: Settings) -> tuple[list[Check], list[ExchangeJudgement]]:
    """The Phase-2 checklist: one row per exchange, the gate, and the failover exercise."""
    judgements = [
        judge_exchange(f, validation.phase, settings.commissioning.max_clock_skew_ms) for f in validation.exchanges
    ]
    checks = [_exchange_check(j, f) for j, f in zip(judgements, validation.exchanges, strict=True)]
    validated = [j.name for j in judgements if j.status == VALIDATED]
    need = settings.commissioning.min_exchanges
    checks.append(
        Check(
            "exchanges validated",
            len(validated) >= need,
            f"{len(validated)} of {len(judgements)} validated (need {need}): {', '.join(validated) or 'none'}",
            data={"validated": validated, "required": need},
        )
    )
    checks.append(failover_check(validation.failover))
    return checks, judgements
