"""The server's activity window keeps its counts and mandates as rows enter and leave the
window (issue 17 point 5): a summary equals the walk over every row in the window that the
server used to do once a second, which held the GIL 50-100 ms with two bots trading."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from lyra_governor.status import ActivityWindow


def _walk(rows: list[dict[str, Any]], window: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The old from-scratch summary over the rows in the window (the reference)."""
    counts: dict[str, int] = {}
    mandates: dict[str, dict[str, Any]] = {}
    for r in rows:
        p = r["p"]
        key = str(p.get("code") or p.get("status") or "unknown")
        counts[key] = counts.get(key, 0) + 1
        mandate_id = p.get("mandate_id")
        if p.get("status") == "ALLOWED" and mandate_id:
            m = mandates.setdefault(
                str(mandate_id),
                {"mandate_id": mandate_id, "consensus_id": p.get("consensus_id"), "connector": p.get("connector"),
                 "pair": p.get("pair"), "orders": 0, "notional_usd": 0.0, "first_used": r["ts"]},
            )  # fmt: skip
            m["orders"] += 1
            m["last_used"] = r["ts"]
            with contextlib.suppress(ValueError, TypeError):
                m["notional_usd"] = round(m["notional_usd"] + float(p.get("notional_usd") or 0), 6)
    activity = {"window_s": window, "decisions": len(rows), "by_outcome": counts}
    shown = sorted(mandates.values(), key=lambda m: m["last_used"], reverse=True)[:50]
    return activity, {
        "source": f"decisions in the last {window:g} s (mandates live in each bot's memory)",
        "count": len(mandates),
        "mandates": shown,
    }


def _row(rng: random.Random, seq: int, ts: float) -> dict[str, Any]:
    allowed = rng.random() < 0.7
    p: dict[str, Any] = {"status": "ALLOWED" if allowed else "DENIED", "code": None if allowed else rng.choice("AB")}
    if allowed and rng.random() < 0.9:
        p.update(mandate_id=f"m{rng.randrange(400)}", consensus_id="c", connector="okx", pair="BTC-USDT",
                 notional_usd=rng.choice([1.5, "2.25", None, "x"]))  # fmt: skip
    return {"seq": seq, "ts": ts, "actor": "bot", "event": "decision", "p": p}


def test_the_kept_summary_equals_the_walk_over_the_window() -> None:
    rng = random.Random(17)
    window = 30.0
    kept = ActivityWindow(window)
    every: list[dict[str, Any]] = []
    seq, now = 0, 1000.0
    for _ in range(200):
        fresh = []
        for _ in range(rng.randrange(0, 40)):
            seq += 1
            now += rng.random() * 0.5
            fresh.append(_row(rng, seq, now))
        every.extend(fresh)
        kept.feed(fresh, now)
        in_window = [r for r in every if r["ts"] >= now - window]
        assert kept.summary(window) == _walk(in_window, window)
    assert kept.summary(window)[1]["count"] > 50  # the shown mandates were cut to the newest 50


def test_a_new_store_starts_the_window_over() -> None:
    kept = ActivityWindow(60.0)
    rng = random.Random(3)
    kept.feed([_row(rng, s, 100.0 + s) for s in range(1, 11)], 111.0)
    again = [_row(rng, s, 120.0 + s) for s in range(1, 4)]
    kept.feed(again, 124.0)
    assert kept.summary(60.0) == _walk(again, 60.0)
