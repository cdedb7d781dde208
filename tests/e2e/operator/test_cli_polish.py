"""CLI polish: `--config` after the command; the unreachable-broker warning printed once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_phase_reads_the_config_given_after_the_command(tmp_path: Path) -> None:
    conf = tmp_path / "mine.yml"
    thresholds = "{1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9, 5: 0.95}"
    conf.write_text(f"db_url: sqlite:///{tmp_path / 'mine.db'}\nladder:\n  thresholds: {thresholds}\n")
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    done = subprocess.run(
        [str(exe), "phase", "--config", str(conf), "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["phase"] == 1 and out["threshold"] == 0.6  # the file's threshold, not the default
    assert (tmp_path / "mine.db").exists()


def test_halt_warns_once_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env |= {"LYRA_DB_URL": f"sqlite:///{tmp_path / 'lyra.db'}", "LYRA_MQTT__ENABLED": "true", "LYRA_MQTT__PORT": "1"}
    done = subprocess.run(
        [str(exe), "halt", "--reason", "drill"], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert said.count("unreachable or refused") == 1, said
    assert "HALTED (drill)" in said and "Traceback" not in said
