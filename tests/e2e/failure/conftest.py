"""The CLI as a user types it (a real subprocess on real files), for the failure tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

EXE = str(Path(sys.executable).with_name("lyra-governor"))


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without LYRA_* leaking in, pointed at `home`'s store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_DB_URL"] = f"sqlite:///{home / 'lyra.db'}"
    env["LYRA_DATA_DIR"] = str(home / "data")
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(
    home: Path,
    *args: str,
    timeout: float = 90,
    prefix: Sequence[str] = (),
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, EXE, *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=env if env is not None else cli_env(home, **extra),
        timeout=timeout,
        check=False,
        input=stdin,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
