"""Waiting for a `lyra-governor serve` process to listen, shared by the operator tests and the soak."""

from __future__ import annotations

import re
import subprocess
import time

SERVING = re.compile(r"serving on (http://\S+?):? ")


def serving_url(process: subprocess.Popen[str], within_s: float) -> str | None:
    """Read the server's stdout until it prints the URL it listens on (`--port 0` picks one);
    None when the process ends or `within_s` runs out first."""
    assert process.stdout is not None
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = SERVING.search(line)
        if found:
            return found.group(1).rstrip(":")
        if not line and process.poll() is not None:
            break
    return None
