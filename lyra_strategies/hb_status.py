"""What a governed script shows in Hummingbot's `status` and writes to Hummingbot's log.

`status_lines` reads the governor (its cached ladder state, its own connection's capital rows,
its council provider, its breaker board when it has one) and never writes. `LadderWatch` turns
the ladder state seen each tick into one log line per change (phase, rung, trading state), so a
halt, a gradual stop or a promotion is visible in Hummingbot's log pane and log file.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lyra_governor.governor import Governor
from lyra_governor.ledger import LadderState
from lyra_governor.models import TradingState
from lyra_governor.phases import PHASE_NAMES

STATE_LABEL = {
    TradingState.ACTIVE: "ACTIVE",
    TradingState.REDUCING: "GRADUAL STOP (only orders that reduce exposure pass)",
    TradingState.HALTED: "HALTED (nothing is sent until `lyra-governor resume`)",
}
LOGGER_NAME = "hummingbot.strategy.lyra_governor"  # Hummingbot's strategy log handlers (pane, file, MQTT)


@dataclass(frozen=True)
class Denial:
    ts: float
    code: str
    message: str


def safe_store_url(url: str) -> str:
    """The store URL without its password (for logs and `status`)."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return url.split(":", 1)[0] + ":***"


def council_label(governor: Governor) -> str:
    consensus = governor.settings.consensus
    provider = type(governor.mandates).__name__
    if provider == "NoCouncil":
        return "none (every order waits for a mandate)"
    return f"{consensus.backend}{' per order' if consensus.per_order else ''}"


def rung_text(governor: Governor, state: LadderState, exchanges: Iterable[str]) -> str:
    if state.phase != 4:
        return ""
    rungs_usd = governor.settings.ladder.rungs_usd
    parts = []
    for exchange in exchanges:
        idx = max(0, min(state.rungs.get(exchange, 0), len(rungs_usd) - 1))
        parts.append(f"{exchange} rung {idx + 1}/{len(rungs_usd)} (${rungs_usd[idx]:,})")
    return ", ".join(parts)


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def started_line(governor: Governor) -> str:
    s = governor.settings
    state = governor.ladder_state()
    mqtt = f"{s.mqtt.host}:{s.mqtt.port} ({s.mqtt.namespace})" if s.mqtt.enabled else "off"
    return (
        f"Lyra governor started: bot {governor.bot_id}, store {safe_store_url(s.db_url)}, "
        f"phase {state.phase} ({PHASE_NAMES.get(state.phase, '?')}), trading {state.trading_state.value}, "
        f"council {council_label(governor)}, MQTT halt {mqtt}"
    )


def status_lines(
    governor: Governor, connectors: Iterable[str], decisions: dict[str, int], denials: deque[Denial]
) -> list[str]:
    """The governor's block of Hummingbot's `status` output."""
    s = governor.settings
    now = time.time()
    state = governor.ladder_state()
    exchanges = sorted({s.exchange_of(c) for c in connectors})
    lines = [
        f"  Lyra governor  bot {governor.bot_id}  store {safe_store_url(s.db_url)}  council {council_label(governor)}",
        f"    Phase {state.phase} ({PHASE_NAMES.get(state.phase, '?')})"
        + (f", {rung_text(governor, state, exchanges)}" if state.phase == 4 else ""),
        f"    Trading: {STATE_LABEL.get(state.trading_state, state.trading_state.value)}"
        + (f"; reason: {state.reason}" if state.reason and state.trading_state is not TradingState.ACTIVE else ""),
    ]
    book = state.book
    if book is None:
        lines.append(f"    Caps: none in phase {state.phase} (no book trades before phase 3)")
    else:
        try:
            exposure = governor.exposure(book)
        except Exception as exc:
            lines.append(f"    Caps ({book} book): cannot be read now ({type(exc).__name__})")
        else:
            lines.append(f"    Caps ({book} book)     used / cap          remaining")
            for exchange in exchanges:
                ex = exposure.exchanges.get(exchange)
                if ex is None:
                    lines.append(f"      {exchange:<14} not configured: every order there is denied")
                    continue
                lines.append(
                    f"      {exchange:<14} {_usd(ex.used_usd)} / {_usd(ex.cap_usd):<10} {_usd(ex.remaining_usd)}"
                )
            total = exposure.total
            lines.append(f"      {'all exchanges':<14} {_usd(total.used_usd)} / {_usd(total.cap_usd):<10} "
                         f"{_usd(total.remaining_usd)}")  # fmt: skip
    lines.append("    " + mandate_text(governor, now))
    counted = {k: v for k, v in decisions.items() if k not in ("ALLOWED", "PENDING")}
    if counted:
        by_code = ", ".join(f"{code} x{n}" for code, n in sorted(counted.items(), key=lambda kv: -kv[1]))
        lines.append(f"    Denials by code: {by_code}")
        for d in list(denials)[-3:]:
            lines.append(f"      {time.strftime('%H:%M:%S', time.localtime(d.ts))} {d.code}: {d.message[:140]}")
    else:
        allowed, waiting = decisions.get("ALLOWED", 0), decisions.get("PENDING", 0)
        lines.append(f"    Denials: none ({allowed} allowed, {waiting} waiting)")
    lines.append("    " + breaker_text(governor, now))
    return lines


def mandate_text(governor: Governor, now: float) -> str:
    """Open mandates of the council provider (a `MandateBook` lists them; others give a count)."""
    provider: Any = governor.mandates
    listing = getattr(provider, "open_mandates", None)
    if callable(listing):
        mandates = list(listing(now))
        if not mandates:
            return "Open mandates: none (the council is asked when an order needs one)"
        parts = [
            f"{m.connector} {m.trading_pair} {'/'.join(sorted(side.value for side in m.sides))} "
            f"<= ${m.max_order_notional_usd:,.0f}/order, {math.ceil(max(0.0, m.expires_at - now) / 60)} min left"
            for m in mandates[:4]
        ]
        return f"Open mandates: {len(mandates)}: " + "; ".join(parts)
    stats = getattr(provider, "stats", None)
    if callable(stats):
        return f"Open mandates: {stats().get('open_mandates', 0)}"
    return "Open mandates: none (no council)"


def breaker_text(governor: Governor, now: float) -> str:
    """The governor's circuit breakers, when this build has them (`Governor.breakers`)."""
    board: Any = getattr(governor, "breakers", None)
    if board is None:
        return "Breakers: not in this build"
    blocked = {ex: entry for ex, entry in dict(getattr(board, "blocked", {}) or {}).items() if entry[0] > now}
    trips = dict(getattr(board, "trips", {}) or {})
    if not blocked and not trips:
        return "Breakers: none tripped"
    parts = [f"{ex} blocked {int(until - now)} s ({getattr(trip, 'code', trip)})"
             for ex, (until, trip) in blocked.items()]  # fmt: skip
    parts += [f"{getattr(code, 'value', code)} x{n}" for code, n in sorted(trips.items(), key=lambda kv: str(kv[0]))]
    return "Breakers tripped: " + ", ".join(parts)


class LadderWatch:
    """One log line per change of phase, rung or trading state."""

    def __init__(self) -> None:
        self.last: tuple[int, str, str, tuple[tuple[str, int], ...]] | None = None

    def changes(self, state: LadderState) -> list[tuple[bool, str]]:
        """(is_warning, line) for what changed since the last call (nothing on the first)."""
        now = (state.phase, state.trading_state.value, state.reason, tuple(sorted(state.rungs.items())))
        before, self.last = self.last, now
        if before is None or before == now:
            return []
        out: list[tuple[bool, str]] = []
        if before[0] != now[0]:
            out.append((False, f"Lyra phase {before[0]} -> {now[0]} ({PHASE_NAMES.get(now[0], '?')})"))
        if before[1] != now[1]:
            why = f": {state.reason}" if state.reason else ""
            out.append((now[1] != TradingState.ACTIVE.value, f"Lyra trading {before[1]} -> {now[1]}{why}"))
        if before[3] != now[3]:
            was = dict(before[3])
            moved = [f"{ex} {was.get(ex, 0) + 1} -> {r + 1}" for ex, r in now[3] if was.get(ex) != r]
            if moved:
                out.append((False, "Lyra rungs: " + ", ".join(moved)))
        return out
