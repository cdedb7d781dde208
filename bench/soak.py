"""The soak (issue 17 point 7): `lyra-governor serve` and three governed paper bots (real
processes) on one PostgreSQL store for 30 simulated minutes, the store restarted twice and the
MQTT broker once, 16 clients reading /metrics and /forensic/status (a bounded number of
requests each, spread over the run). See tests/soak.py for what is real and what simulated.

Figures: both routes' p50/p99 under the 16 clients, /metrics answers through the run, reviews
and ALLOWED while the store was away (must be 0), the reconciliation (open reservations,
invariants, audit verify, the operator's halt heard over MQTT by every bot).

Usage: python bench/soak.py [--quick] [--minutes M] [--speed X] [--requests N] [--store sqlite]
(30 simulated minutes at 10x: about 3.5 min of wall time). The last line is one JSON object.

Measured at 35c936f on the shared 2-core machine (load average 15-20 during the runs), 30
simulated minutes at 10x, 16 clients x 200 requests (after one warm-up request per route),
store away 2 x 3 s, broker 2 s:
- PostgreSQL (stopped with pg_ctl -m fast, started again): /metrics p50 10.9 ms p99 151.6 ms
  (147.0 ms away from the outages), /forensic/status p50 12.1 ms p99 363.0 ms (165.0 ms);
  3,200/3,200 answered (/forensic/status 503 while the store was away, /metrics 200 throughout
  with lyra_up 0 in 35 polls, longest gap 0.7 s); 0 ALLOWED of 236 reviews while it was
  stopped (all STORE_UNAVAILABLE), 1,226 ALLOWED in all, 445 after the second restart; 0 open
  reservations, 0 invariant problems, audit verify ok, the halt heard over MQTT by 3/3 bots.
  Before 35c936f one run of three ended with one reservation OPEN (written, its answer lost).
- SQLite (write lock held by another process; load 18): /metrics p50 17.5 ms p99 868.7 ms,
  /forensic/status p50 19.8 ms p99 965.2 ms (an earlier run at load 10: p99 214 / 245 ms); 0 ALLOWED of 9
  reviews while it was held (STORE_BUSY), 1,252 ALLOWED, 0 open reservations, 0 invariant
  problems, audit verify ok, largest WAL 2.13 MB.
The p99 follows the machine's load: the bots, the server, PostgreSQL and the 16 clients share
two cores with other sessions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.soak import run_soak, summary_lines

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 simulated minutes at 12x, 20 requests per client")
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per wall second")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument(
        "--store",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="a private PostgreSQL cluster, restarted (default), or a SQLite file whose write lock is held",
    )
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.speed, args.requests = 3.0, 12.0, 20
    figures = run_soak(args.minutes, args.speed, args.clients, args.requests, store=args.store)
    for line in summary_lines(figures):
        print(line)
    ok = (
        figures["server_alive"]
        and figures["allowed_while_store_away"] == 0
        and not figures["invariant_problems"]
        and figures["reservations_open"] == 0
        and figures["audit_verify_ok"]
        and figures["metrics_poll_failures"] == 0
    )
    print(json.dumps(figures, sort_keys=True, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
