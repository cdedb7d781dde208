"""Shared fixtures. Tests mirror the package; each tier lives in its own folder and is marked
automatically by that folder, so `pytest -m unit` runs the fast tier alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lyra_governor.config import Settings, load_settings

TIERS = ("unit", "hummingbot", "services", "e2e", "live_sim")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def lyra_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean working directory with no LYRA_* variables leaking in from the caller."""
    import os

    for key in list(os.environ):
        if key.startswith("LYRA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def settings(lyra_home: Path) -> Settings:
    """Embedded defaults on a fresh SQLite file under the test's own folder."""
    return load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}", data_dir=str(lyra_home))
