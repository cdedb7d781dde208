"""`lyra-governor council check` on a fresh machine: local voters, no keys, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_council_check_with_local_voters(lyra_home: Path) -> None:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER"))}
    done = subprocess.run(
        [str(exe), "council", "check", "--json"],
        capture_output=True,
        text=True,
        cwd=lyra_home,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["verdict"] == "PROCEED"
    assert report["response_rate"] == 1.0 and len(report["models"]) == 8
    assert {m["role"] for m in report["models"]} >= {"risk_assessor", "fault_detector", "consensus_validator"}
    table = subprocess.run(
        [str(exe), "council", "check"], capture_output=True, text=True, cwd=lyra_home, env=env, timeout=120, check=False
    )
    assert table.returncode == 0 and "PROCEED" in table.stdout
    assert (lyra_home / "data" / "lyra.db").exists()  # the check is audited in the store
