"""Speed of the offline Phase-3 paper run: simulated hours per wall-clock second, and the
governor's share of the run time.

Baseline, measured in the same run: the same replay (same feed, same scripts, same
Hummingbot paper engine) with a pass-through governor that allows everything and writes
nothing. The ratio governed/ungoverned wall time is the cost of governing.

Cost over time: the wall and CPU seconds of every simulated hour are measured; `hour1_vs_last`
(`_cpu`) is the last full hour's cost over the first's (flat = 1.0). With `--data FILE` the feed
is a recording (the `paper --data` CSV format) instead of the generator.

Goals (issues 16 and 20): a simulated day of the three original scripts (market_making,
arbitrage, rebalancer) in <= 60 s, of all eight in <= 120 s, governor share <= 5 %. On a
shared machine wall time depends on the other processes: the CPU seconds of the replay are
printed next to it (`cpu_s`, `projected_24h_cpu_s`).

With `--make-recording H` the feed is `bench/recording.py`'s real-shaped capture of H hours
(tick-level rows at fractional times, bursts, quiet minutes, lost connections, a late market;
~2.8 M rows a day), written to a temporary directory. With a recording, the importer's wall and
CPU seconds and the process's peak RSS after it are printed too (`import_s`, `import_rss_mb`).

Usage: python bench/paper_replay.py [--quick] [--hours H] [--strategies all|ROLE,ROLE]
       [--data CSV | --make-recording H]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lyra_governor.config import load_settings
from lyra_strategies.paper.generator import generate
from lyra_strategies.paper.importer import load_csv
from lyra_strategies.paper.replay import pick_strategies, run_replay

QUICK_HOURS = 0.1
ORIGINAL = ("market_making", "arbitrage", "rebalancer")
ORIGINAL_GOAL_S = 60.0  # a simulated day of the three original scripts (issue 16)
ALL_GOAL_S = 120.0  # ... of all eight (issue 20)
GOVERNOR_SHARE_GOAL = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short replay (under 60 s)")
    parser.add_argument("--hours", type=float, default=0.0, help="simulated hours (default 24, quick 0.1)")
    parser.add_argument("--strategies", default="all", help="all (the eight) or comma-separated roles")
    parser.add_argument("--data", type=Path, default=None, help="a recording (CSV) instead of generated books")
    parser.add_argument("--make-recording", type=float, default=0.0, metavar="H",
                        help="replay bench/recording.py's real-shaped capture of H hours (a temp CSV)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the ungoverned run (long replays)")
    args = parser.parse_args()
    roles = pick_strategies(args.strategies)
    imported: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.make_recording:
            args.data = Path(tmp) / "recording.csv"  # written by another process: the RSS below is the import's
            subprocess.run([sys.executable, str(Path(__file__).with_name("recording.py")), str(args.data),
                            "--hours", str(args.make_recording)], check=True)
        if args.data is not None:
            wall, cpu = time.perf_counter(), time.process_time()
            feed = load_csv(args.data, args.hours or (QUICK_HOURS if args.quick else None))
            imported = {"import_s": round(time.perf_counter() - wall, 3),
                        "import_cpu_s": round(time.process_time() - cpu, 3),
                        "import_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "recording_mb": round(args.data.stat().st_size / 1e6, 1)}
            print(f"import: {imported['import_s']} s wall, {imported['import_cpu_s']} s CPU, peak RSS "
                  f"{imported['import_rss_mb']} MB ({imported['recording_mb']} MB file)")
        else:
            feed = generate(args.hours or (QUICK_HOURS if args.quick else 24.0), seed=7)
        hours = feed.seconds / 3600
        settings = load_settings(None, use_env=False, db_url=f"sqlite:///{Path(tmp) / 'main.db'}", data_dir=tmp)
        baseline = None if args.no_baseline else run_replay(
            settings, feed, Path(tmp) / "ungoverned", governed=False, strategies=roles
        )
        governed = run_replay(settings, feed, Path(tmp) / "governed", strategies=roles)
    per_hour, cpu_hour = governed.hour_wall_s, governed.hour_cpu_s
    ratio = round(per_hour[-1] / per_hour[0], 3) if len(per_hour) >= 2 and per_hour[0] else None
    cpu_ratio = round(cpu_hour[-1] / cpu_hour[0], 3) if len(cpu_hour) >= 2 and cpu_hour[0] else None
    goal_s = ORIGINAL_GOAL_S if set(roles) <= set(ORIGINAL) else ALL_GOAL_S
    figures = {
        "simulated_hours": hours,
        "ticks": feed.seconds,
        "wall_s": round(governed.wall_s, 3),
        "sim_hours_per_wall_s": round(hours / governed.wall_s, 5),
        "governor_s": round(governed.governor_s, 3),
        "governor_share": round(governed.governor_s / governed.wall_s, 4),
        "baseline_wall_s": round(baseline.wall_s, 3) if baseline else None,
        "ratio_wall": round(governed.wall_s / baseline.wall_s, 3) if baseline else None,
        "hour_wall_s": [round(h, 3) for h in per_hour],
        "hour1_vs_last": ratio,
        "cpu_s": round(governed.cpu_s, 3),
        "hour_cpu_s": [round(h, 3) for h in cpu_hour],
        "hour1_vs_last_cpu": cpu_ratio,
        "source": feed.source,
        "projected_24h_wall_s": round(governed.wall_s * 24 / hours, 1),
        "projected_24h_cpu_s": round(governed.cpu_s * 24 / hours, 1),
        "decisions": sum(governed.decisions.values()),
        "strategies": len(roles),
        "roles": roles,
        "per_strategy": governed.per_strategy,
        "day_goal_s": goal_s,
        "within_day_goal": governed.wall_s * 24 / hours <= goal_s,
        "within_day_goal_cpu": governed.cpu_s * 24 / hours <= goal_s,
        "within_governor_share_goal": governed.governor_s / governed.wall_s <= GOVERNOR_SHARE_GOAL,
        **imported,
    }
    print(f"governed replay: {hours:g} simulated h ({feed.seconds} one-second ticks, {len(roles)} scripts) in "
          f"{figures['wall_s']} s = {figures['sim_hours_per_wall_s']} sim h per wall s; governor "
          f"{figures['governor_s']} s = {figures['governor_share']:.1%} of the run")
    print(f"ungoverned baseline: {figures['baseline_wall_s']} s; governed/ungoverned = {figures['ratio_wall']}x; "
          f"projected 24 h: {figures['projected_24h_wall_s']} s wall, {figures['projected_24h_cpu_s']} s CPU "
          f"(goal {goal_s} s for {len(roles)} scripts)")
    if ratio is not None and cpu_ratio is not None:
        print(f"cost per simulated hour: first {per_hour[0]:.2f} s, last {per_hour[-1]:.2f} s, last/first = {ratio} "
              f"(CPU: {cpu_hour[0]:.2f} s, {cpu_hour[-1]:.2f} s, {cpu_ratio})")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
