"""The Hummingbot tier needs Hummingbot installed (the README test command installs it).

A missing Hummingbot is a failure with the fix in the message, never a silent skip."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _require_hummingbot() -> None:
    if importlib.util.find_spec("hummingbot") is None:
        pytest.fail("Hummingbot is not installed in this environment; run `make test`, which installs it into .venv")
