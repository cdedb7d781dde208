"""The CLI as a user types it: a real subprocess, real exit codes, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lyra_governor import __version__


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lyra-governor")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"lyra-governor {__version__}"
    helped = run_cli("--help")
    assert helped.returncode == 0
    assert "lyra-governor" in helped.stdout
