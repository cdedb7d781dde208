"""One count of instructions by valgrind's callgrind, for the benches that A/B exact counts
(review_instructions.py, tick_instructions.py): the bench script run again as its own worker
under callgrind, in a checkout of Lyra, collecting inside `itertools.starmap` only (the worker
calls what it counts through starmap, so start-up and untimed set-up are left out).

Why a count, not a timing: on this shared 2-core machine timings move by 20-30 % between runs,
callgrind's totals repeat within ~0.5 % whatever the load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def count_instructions(script: str, tree: Path, worker_args: list[str]) -> int:
    """Instructions collected while `script --worker *worker_args` runs in `tree` (its first
    sys.path entry) under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        callgrind = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=starmap_next",
                     f"--callgrind-out-file={Path(tmp) / 'callgrind.out'}"]  # fmt: skip
        done = subprocess.run(
            [*callgrind, sys.executable, script, "--worker", *worker_args],
            env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : ([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))
