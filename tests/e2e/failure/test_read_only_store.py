"""The operator's reads write nothing: `status`, `phase`, `audit verify`/`tail` and `serve` open
the store read-only. Before, opening the store rewrote every cap (a write transaction), so a
status on a read-only store file failed with 'attempt to write a readonly database', and a
status waited for (then failed on) the write lock another process held."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.store import capital
from tests.e2e.failure.conftest import no_traceback, run_cli
from tests.store_faults import sqlite_write_lock_held


def _store(home: Path) -> Path:
    db = home / "lyra.db"
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=f"sqlite:///{db}"))
    ledger.set_phase(3, "test", "paper trading under test")
    ledger.close()  # the last connection closed: the WAL is copied into the file and removed
    return db


def _caps(db: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            return {r.scope: int(r.cap_musd) for r in conn.execute(sa.select(capital)).all()}
    finally:
        engine.dispose()


@pytest.fixture
def read_only_file(lyra_home: Path) -> Iterator[Path]:
    """The store file itself cannot be written, root or not (root ignores file modes: the
    immutable attribute binds it too); its folder stays writable for SQLite's -shm file."""
    db = _store(lyra_home)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.fail("chattr is needed to make a file read-only for root (Debian package e2fsprogs)")
        subprocess.run(["chattr", "+i", str(db)], check=True)
        undo = ["chattr", "-i", str(db)]
    else:
        db.chmod(0o444)
        undo = ["chmod", "644", str(db)]
    try:
        with pytest.raises(OSError):
            db.open("r+b").close()  # the file really is read-only
        yield db
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.timeout(180)
def test_status_phase_and_audit_work_on_a_read_only_store_file(lyra_home: Path, read_only_file: Path) -> None:
    status = run_cli(lyra_home, "status", "--json")
    no_traceback(status)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == 3
    for args in (("phase", "--json"), ("audit", "verify"), ("audit", "tail")):
        result = run_cli(lyra_home, *args)
        no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)
    halt = run_cli(lyra_home, "halt", "--reason", "read-only test", "--no-broadcast")
    no_traceback(halt)
    assert halt.returncode != 0  # a writer is refused, in one sentence


@pytest.mark.timeout(180)
def test_the_server_answers_on_a_read_only_store_file(lyra_home: Path, read_only_file: Path) -> None:
    from lyra_governor.server import make_server

    server = make_server(load_settings(None, use_env=False, db_url=f"sqlite:///{read_only_file}"), port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        for route in ("/forensic/status", "/metrics", "/healthz"):
            with urllib.request.urlopen(server.url + route, timeout=60) as response:
                assert response.status == 200, route
                body = response.read()
        with urllib.request.urlopen(server.url + "/forensic/status", timeout=60) as response:
            assert json.loads(response.read())["phase"] == 3
        assert body
    finally:
        server.shutdown()
        server.server_close()
        server.ledger.close()
        thread.join(timeout=10)


@pytest.mark.timeout(180)
def test_status_neither_rewrites_the_caps_nor_waits_for_the_write_lock(lyra_home: Path) -> None:
    db = _store(lyra_home)
    before = _caps(db)
    # another configuration (other caps): a read must not impose it on the store
    other = lyra_home / "other.yml"
    other.write_text("ladder:\n  paper_virtual_usd: 500\n")
    with sqlite_write_lock_held(str(db), 60):
        status = run_cli(lyra_home, "--config", str(other), "status", "--json", timeout=60)
    no_traceback(status)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == 3
    assert _caps(db) == before
