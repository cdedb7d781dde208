"""Operators' reads against trading bots: two bots trade on one SQLite store while 16 clients
read a real `lyra-governor serve` (/metrics and /forensic/status, a bounded number of requests
each). Figures: the routes' p50/p99, the bots' review p99 with readers against the same bots
without readers earlier in the same run (the ratio is what to compare across machines), and
the largest WAL file seen (sampled every 50 ms through both phases).

Goal (issue 17): /metrics p99 <= 100 ms, review p99 with readers within 1.5x of without, WAL
<= 64 MB.

Usage: python bench/store_readers.py [--quick] [--seconds S] [--requests N] [--control]
The last line printed is one JSON object of the figures.

The readers' bounded requests take a few seconds of a phase, so the ratio over the whole phase
dilutes them: `review_p99_ratio_during_reads` compares only the reviews that started while the
readers read with the first phase's reviews in the same seconds after launch.

--control runs the second phase with no server and no readers: the review ratio it prints is
what this machine gives with nothing added (measured at 4669cde, --quick: 1.06, 1.10, 1.58; the
second phase does ~30 % fewer reviews on a store already written), the floor to read the goal's
1.5x against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

READERS = 16


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def bot(db_url: str, bot_id: str, seconds: float, out: str) -> None:
    """One trading bot: review, then fill or cancel what was allowed; heartbeat every second."""
    from lyra_governor.config import load_settings
    from lyra_governor.governor import Governor
    from lyra_governor.models import MarketSnapshot, OrderEvent, OrderEventKind, OrderProposal, Side
    from tests.standing_mandate import StandingMandate
    from tests.watched import UNTHROTTLED, watch

    settings = load_settings(None, use_env=False, db_url=db_url, **UNTHROTTLED)
    gov = Governor.from_settings(settings, bot_id, mandates=StandingMandate())  # type: ignore[arg-type]
    markets = [("binance_paper_trade", "BTC-USDT"), ("okx_paper_trade", "BTC-USDT")]
    mid = Decimal(60005)
    for connector, pair in markets:
        watch(gov, connector, pair, Decimal(60005))
    took: list[float] = []
    at: list[float] = []  # each review's start (epoch seconds): which reviews ran while readers read
    codes: dict[str, int] = {}
    end = time.monotonic() + seconds
    beat = time.monotonic()
    i = 0
    while time.monotonic() < end:
        i += 1
        proposal = OrderProposal(
            bot_id=bot_id,
            connector="binance_paper_trade" if i % 2 else "okx_paper_trade",
            trading_pair="BTC-USDT",
            side=Side.BUY,
            amount=Decimal("0.0001") + Decimal(i % 9973) * Decimal("0.00000001"),  # never a duplicate
            price=Decimal(60000),
            mid_price=Decimal(60005),
            mid_price_ts=time.time(),
        )
        at.append(time.time())
        t0 = time.perf_counter()
        decision = gov.review(proposal)
        took.append(time.perf_counter() - t0)
        key = "ALLOWED" if decision.allowed else str(decision.code)
        codes[key] = codes.get(key, 0) + 1
        if decision.allowed and decision.reservation_id:
            kind = OrderEventKind.FILLED if i % 4 == 0 else OrderEventKind.CANCELLED
            fill = {"filled_amount": proposal.amount, "fill_price": proposal.price} if i % 4 == 0 else {}
            gov.on_order_event(OrderEvent(kind=kind, reservation_id=decision.reservation_id, **fill))
            if kind is OrderEventKind.FILLED:  # sell it back so capital turns over
                close = proposal.model_copy(update={"side": Side.SELL, "reduce_only": True, "proposal_id": f"c{i}"})
                sold = gov.review(close)
                if sold.allowed and sold.reservation_id:
                    gov.on_order_event(
                        OrderEvent(
                            kind=OrderEventKind.FILLED,
                            reservation_id=sold.reservation_id,
                            filled_amount=proposal.amount,
                            fill_price=proposal.price,
                        )
                    )
        if time.monotonic() - beat >= 0.25:  # a strategy's tick: the market seen, the heartbeat
            for connector, pair in markets:
                seen = MarketSnapshot(connector=connector, trading_pair=pair, timestamp=time.time(), mid_price=mid)
                gov.observe_market(seen)
            gov.heartbeat()
            beat = time.monotonic()
    bound = getattr(gov.store, "_wal", None)  # the WAL's bound in this bot's process (store_budget.WalBound)
    wal = {name: int(getattr(bound, name, 0)) for name in ("rounds", "truncated", "waited", "refused", "overruns")}
    gov.close()
    Path(out).write_text(json.dumps({"took": took, "at": at, "codes": codes, "wal": wal}))


def _prepare(db_url: str) -> None:
    from lyra_governor.config import load_settings
    from lyra_governor.ledger import Ledger

    ledger = Ledger.open(load_settings(None, use_env=False, db_url=db_url))
    ledger.set_phase(3, "bench", "store readers benchmark")
    ledger.close()


def _bots(db_url: str, seconds: float, tmp: Path, tag: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, __file__, "--bot", db_url, f"bot-{tag}-{i}", str(seconds), str(tmp / f"{tag}-{i}.json")],
            cwd=ROOT,
        )
        for i in range(2)
    ]


class Phase:
    """One phase's bot processes and when they were launched (epoch seconds)."""

    def __init__(self, procs: list[subprocess.Popen[str]], launched: float) -> None:
        self.procs, self.launched = procs, launched


def _launch(db_url: str, seconds: float, tmp: Path, tag: str) -> Phase:
    launched = time.time()
    return Phase(_bots(db_url, seconds, tmp, tag), launched)


def _collect(
    procs: list[subprocess.Popen[str]], tmp: Path, tag: str, wal: dict[str, int], since: float = 0.0
) -> tuple[list[float], dict[str, int], list[float]]:
    """The bots' review times and outcomes, and each review's start in seconds after `since`
    (the phase's launch); their WAL bound's counters are added to `wal`."""
    took: list[float] = []
    offsets: list[float] = []
    codes: dict[str, int] = {}
    for i, proc in enumerate(procs):
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"bot {tag}-{i} failed")
        data = json.loads((tmp / f"{tag}-{i}.json").read_text())
        took += data["took"]
        offsets += [a - since for a in data["at"]]
        for k, v in data["codes"].items():
            codes[k] = codes.get(k, 0) + v
        for k, v in data.get("wal", {}).items():
            wal[k] = wal.get(k, 0) + v
    return took, codes, offsets


def within(took: list[float], offsets: list[float], window: tuple[float, float]) -> list[float]:
    """The review times of the reviews that started inside `window` (seconds after launch)."""
    return [t for t, o in zip(took, offsets, strict=True) if window[0] <= o <= window[1]]


class WalWatch(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.largest = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.largest = max(self.largest, os.path.getsize(self.path))
            time.sleep(0.05)


def _serve(home: Path, db_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update({"LYRA_DB_URL": db_url, "LYRA_DATA_DIR": str(home / "data"), "PYTHONPATH": str(ROOT)})
    exe = str(Path(sys.executable).with_name("lyra-governor"))
    proc = subprocess.Popen(
        [exe, "serve", "--port", "0", "--no-checkpoints"], stdout=subprocess.PIPE, text=True, cwd=home, env=env
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving on (http://\S+?):? ", proc.stdout.readline())
        if found:
            return proc, found.group(1).rstrip(":")
    proc.kill()
    raise SystemExit("lyra-governor serve did not start")


def _reader(url: str, n: int, out: dict[str, list[float]], errors: list[str]) -> None:
    for i in range(n):
        route = "/metrics" if i % 2 == 0 else "/forensic/status"
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url + route, timeout=60) as response:
                response.read()
        except Exception as exc:
            errors.append(f"{route}: {exc}")
            continue
        out[route].append(time.perf_counter() - t0)


def _read_phase(
    tmp: Path,
    db_url: str,
    seconds: float,
    requests: int,
    times: dict[str, list[float]],
    errors: list[str],
    bound: dict[str, int],
) -> tuple[list[float], dict[str, int], float, list[float], tuple[float, float]]:
    """The bots trading while 16 readers read a real server: their review times and outcomes,
    the readers' wall time, each review's start after the bots' launch, and the readers' window
    (seconds after the launch)."""
    server, url = _serve(tmp, db_url)
    try:
        phase = _launch(db_url, seconds, tmp, "read")
        time.sleep(1.0)  # the bots are trading
        warm = time.monotonic() + 2.0  # a server already in use: its first (cold) answers are made
        while time.monotonic() < warm:
            for route in ("/metrics", "/forensic/status"):
                with urllib.request.urlopen(url + route, timeout=120) as response:
                    response.read()
        readers = [
            threading.Thread(target=_reader, args=(url, requests, times, errors), daemon=True) for _ in range(READERS)
        ]
        started, began = time.perf_counter(), time.time()
        for r in readers:
            r.start()
        for r in readers:
            r.join(timeout=600)
        read_wall = time.perf_counter() - started
        window = (began - phase.launched, began - phase.launched + read_wall)
        read, read_codes, offsets = _collect(phase.procs, tmp, "read", bound, phase.launched)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return read, read_codes, read_wall, offsets, window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (under 60 s)")
    parser.add_argument("--seconds", type=float, default=0, help="seconds of trading per phase")
    parser.add_argument("--requests", type=int, default=0, help="requests per reader")
    parser.add_argument("--control", action="store_true", help="second phase without server and readers (A/A)")
    parser.add_argument("--bot", nargs=4, metavar=("DB_URL", "BOT_ID", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot:
        bot(args.bot[0], args.bot[1], float(args.bot[2]), args.bot[3])
        return 0
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    requests = args.requests or (100 if args.quick else 400)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "lyra.db"
        db_url = f"sqlite:///{db}"
        _prepare(db_url)
        wal = WalWatch(Path(str(db) + "-wal"))
        wal.start()

        bound: dict[str, int] = {}
        first = _launch(db_url, seconds, tmp, "alone")
        alone, alone_codes, alone_offsets = _collect(first.procs, tmp, "alone", bound, first.launched)

        times: dict[str, list[float]] = {"/metrics": [], "/forensic/status": []}
        errors: list[str] = []
        read_wall = 0.0
        window: tuple[float, float] | None = None
        if args.control:
            second = _launch(db_url, seconds, tmp, "read")
            read, read_codes, read_offsets = _collect(second.procs, tmp, "read", bound, second.launched)
        else:
            read, read_codes, read_wall, read_offsets, window = _read_phase(
                tmp, db_url, seconds, requests, times, errors, bound
            )
        wal.stop.set()
        wal.join()
    served = len(times["/metrics"]) + len(times["/forensic/status"])
    figures = {
        "seconds_per_phase": seconds,
        "control": args.control,  # the second phase had no server and no readers
        "readers": READERS,
        "requests": READERS * requests,
        "served": served,
        "errors": len(errors),
        "read_wall_s": round(read_wall, 2),
        "metrics_p50_ms": round(statistics.median(times["/metrics"]) * 1e3, 1) if times["/metrics"] else None,
        "metrics_p99_ms": round(percentile(times["/metrics"], 0.99) * 1e3, 1),
        "status_p50_ms": round(statistics.median(times["/forensic/status"]) * 1e3, 1)
        if times["/forensic/status"]
        else None,
        "status_p99_ms": round(percentile(times["/forensic/status"], 0.99) * 1e3, 1),
        "review_p99_alone_ms": round(percentile(alone, 0.99) * 1e3, 2),
        "review_p99_readers_ms": round(percentile(read, 0.99) * 1e3, 2),
        "review_max_readers_ms": round(max(read) * 1e3, 2) if read else None,
        "reviews_alone": len(alone),
        "reviews_readers": len(read),
        "denied_alone": sum(v for k, v in alone_codes.items() if k != "ALLOWED"),
        "denied_readers": sum(v for k, v in read_codes.items() if k != "ALLOWED"),
        "wal_max_mb": round(wal.largest / 2**20, 2),
        # the bots' WAL bound (both phases): thread rounds, restarts, writes that waited past the
        # hard bound, reviews refused for it, facts written past it
        **{f"wal_{k}": v for k, v in bound.items()},
    }
    figures["review_p99_ratio"] = round(figures["review_p99_readers_ms"] / figures["review_p99_alone_ms"], 2)
    if window is not None:
        # The readers finish their bounded requests in a few seconds of the phase: over the whole
        # phase their effect is diluted. These compare only the reviews that started while the
        # readers read with the first phase's reviews in the same seconds after launch.
        during, same_alone = within(read, read_offsets, window), within(alone, alone_offsets, window)
        figures["reviews_during_reads"] = len(during)
        figures["review_p99_during_reads_ms"] = round(percentile(during, 0.99) * 1e3, 2)
        figures["review_p99_alone_same_window_ms"] = round(percentile(same_alone, 0.99) * 1e3, 2)
        figures["review_p99_ratio_during_reads"] = round(
            figures["review_p99_during_reads_ms"] / figures["review_p99_alone_same_window_ms"], 2
        )
    if args.control:
        print("control: the second phase ran without server and readers (the ratio below is the machine's own)")
    else:
        print(
            f"{READERS} readers x {requests} requests while 2 bots trade: /metrics p50 {figures['metrics_p50_ms']} ms "
            f"p99 {figures['metrics_p99_ms']} ms, /forensic/status p99 {figures['status_p99_ms']} ms "
            f"({served} served, {len(errors)} errors, in {figures['read_wall_s']} s)"
        )
    print(
        f"bots' review p99: {figures['review_p99_alone_ms']} ms alone, {figures['review_p99_readers_ms']} ms with "
        f"readers (ratio {figures['review_p99_ratio']}x); largest WAL {figures['wal_max_mb']} MB (bots' bound: "
        + ", ".join(f"{k} {v}" for k, v in bound.items())
        + ")"
    )
    if window is not None:
        print(
            f"while the readers read ({figures['reviews_during_reads']} reviews, {window[0]:.1f}-{window[1]:.1f} s "
            f"after launch): review p99 {figures['review_p99_during_reads_ms']} ms, against "
            f"{figures['review_p99_alone_same_window_ms']} ms in the same seconds alone "
            f"(ratio {figures['review_p99_ratio_during_reads']}x)"
        )
    if errors:
        print("first errors:", errors[:3])
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
