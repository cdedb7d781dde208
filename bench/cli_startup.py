"""Start-up of the emergency path: `lyra-governor halt --help` and a real `halt` on a SQLite
store (MQTT off), wall and CPU seconds per launch, plus the import time of
`lyra_governor.cli.app` (`python -X importtime`), for each source tree given, interleaved in
the same run so a loaded machine slows them alike (compare the ratio across machines).

Goal (issue 19 point 5): from the halt command to the last open order cancelled on the
exchange under 2 s; the CLI's start-up was most of it (tests/live_sim/test_halt_live.py prints
the whole figure, and the part after the committed halt).

Usage: python bench/cli_startup.py [--quick] [--runs N] [TREE ...]   (default: this checkout)
A TREE is a checkout of Lyra, put first on PYTHONPATH. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("lyra-governor"))


def _env(tree: str, home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    return base | {
        "PYTHONPATH": tree,
        "LYRA_DB_URL": f"sqlite:///{home / 'lyra.db'}",
        "LYRA_DATA_DIR": str(home / "data"),
    }


def _launch(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one launch."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _import_s(env: dict[str, str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import lyra_governor.cli.app"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    found = re.search(r"\|\s*(\d+) \| lyra_governor\.cli\.app$", done.stderr, re.M)
    assert found, done.stderr[-500:]
    return int(found.group(1)) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 runs (what `make bench` passes)")
    parser.add_argument("trees", nargs="*", default=[str(ROOT)])
    args = parser.parse_args()
    if args.quick:
        args.runs = min(args.runs, 3)
    samples: dict[str, dict[str, list[float]]] = {t: {} for t in args.trees}
    with tempfile.TemporaryDirectory(prefix="lyra-cli-startup-") as tmp:
        homes = {t: Path(tmp) / str(i) for i, t in enumerate(args.trees)}
        for home in homes.values():
            home.mkdir()
        for _ in range(args.runs):
            for tree in args.trees:  # interleaved: the machine's load falls on each tree alike
                env, home, s = _env(tree, homes[tree]), homes[tree], samples[tree]
                s.setdefault("import_s", []).append(_import_s(env, home))
                for name, cmd in (
                    ("help", [EXE, "halt", "--help"]),
                    ("halt", [EXE, "halt", "--reason", "bench", "--json"]),
                    ("resume", [EXE, "resume", "--json"]),
                ):
                    wall, cpu = _launch(cmd, env, home)
                    s.setdefault(f"{name}_wall_s", []).append(wall)
                    s.setdefault(f"{name}_cpu_s", []).append(cpu)
    figures = {
        tree: {key: round(statistics.median(values), 3) for key, values in s.items()} for tree, s in samples.items()
    }
    for tree, f in figures.items():
        print(tree, "medians:", ", ".join(f"{k} {v:.3f}" for k, v in f.items()))
    if len(args.trees) == 2:
        first, second = (figures[t] for t in args.trees)
        ratios = {k: round(second[k] / first[k], 2) for k in first}
        print("ratio (second / first):", ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(json.dumps({"runs": args.runs, "medians": figures, "loadavg_1m": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
