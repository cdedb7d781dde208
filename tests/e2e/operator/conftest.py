"""Helpers for the operator e2e tests: the CLI as a user types it and a live `serve` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving import serving_url

EXE = str(Path(sys.executable).with_name("lyra-governor"))
BOT = str(Path(__file__).with_name("bot_process.py"))


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without LYRA_* leaking in, pointed at `home`'s store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_DB_URL"] = f"sqlite:///{home / 'lyra.db'}"
    env["LYRA_DATA_DIR"] = str(home / "data")
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=home, env=cli_env(home, **extra), timeout=timeout, check=False
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus exposition text -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]


def start_server(home: Path, *args: str, **extra: str) -> Served:
    """`lyra-governor serve --port 0 ...` and the URL it prints once it listens."""
    process = subprocess.Popen(
        [EXE, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home,
        env=cli_env(home, **extra),
    )
    url = serving_url(process, within_s=30)
    if url:
        return Served(url, process)
    process.kill()
    _, err = process.communicate(timeout=10)
    raise AssertionError(f"lyra-governor serve did not start: {err}")


def stop_server(served: Served) -> None:
    served.process.terminate()  # SIGTERM to our own child, by its handle
    try:
        served.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.communicate(timeout=10)


@pytest.fixture
def served(lyra_home: Path) -> Iterator[Served]:
    server = start_server(lyra_home, "--no-checkpoints")
    try:
        yield server
    finally:
        stop_server(server)
