"""Damaged stores and bad settings, as an operator meets them: one sentence naming the damage
and the way out, exit 3 (store) or 2 (settings), never a traceback, never a halt reported that
the store does not hold."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from tests.e2e.failure.conftest import no_traceback, run_cli

PAGE = 4096


def _store_with_records(home: Path, records: int = 1200) -> Path:
    path = home / "lyra.db"
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=f"sqlite:///{path}"))
    try:
        for i in range(records):
            ledger.audit_append("note", {"i": i, "pad": "x" * 200}, "test")
    finally:
        ledger.close()
    with sqlite3.connect(path) as conn:  # everything in the main file, as after a clean shutdown
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _overwrite_page(path: Path, page: int) -> None:
    """Overwrite one whole page (1-based) with garbage, as a bad disk or a stray write would."""
    with path.open("r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xde\xad\xbe\xef" * (PAGE // 4))


def _root_page(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


def _one_sentence(result: object, *words: str) -> str:
    err: str = result.stderr  # type: ignore[attr-defined]
    no_traceback(result)  # type: ignore[arg-type]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err
    return lines[0]


@pytest.mark.timeout(180)
def test_a_page_overwritten_mid_file_is_named_with_the_way_out(lyra_home: Path) -> None:
    path = _store_with_records(lyra_home)
    with sqlite3.connect(path) as conn:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    _overwrite_page(path, pages // 2)  # inside the audit table, which fills the file
    for command in (["audit", "verify"], ["status"], ["status", "--json"]):
        result = run_cli(lyra_home, *command)
        assert result.returncode == 3, (command, result.stdout, result.stderr)
        _one_sentence(result, "is damaged", str(path), "restore it from your latest backup", "audit verify")


@pytest.mark.timeout(180)
def test_halt_on_a_damaged_ladder_is_refused_and_never_reported(lyra_home: Path) -> None:
    path = _store_with_records(lyra_home, records=50)
    _overwrite_page(path, _root_page(path, "lyra_ladder"))
    result = run_cli(lyra_home, "halt", "--reason", "test")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "HALTED" not in result.stdout
    _one_sentence(result, "is damaged", "restore")


@pytest.mark.timeout(180)
def test_halt_is_reported_only_once_it_reads_back(lyra_home: Path) -> None:
    """A store that swallows the halt (here a trigger someone left in it undoes the write in the
    same transaction): the command must say so, not print HALTED."""
    path = _store_with_records(lyra_home, records=5)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER undo_halt AFTER UPDATE ON lyra_ladder WHEN NEW.trading_state = 'HALTED' "
            "BEGIN UPDATE lyra_ladder SET trading_state = 'ACTIVE' WHERE id = 1; END"
        )
    result = run_cli(lyra_home, "halt", "--reason", "test")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "HALTED" not in result.stdout
    _one_sentence(result, "the halt was not recorded", "reads ACTIVE", "halt")


@pytest.mark.timeout(180)
def test_a_foreign_file_and_another_applications_database_are_not_lyra_stores(lyra_home: Path) -> None:
    foreign = lyra_home / "lyra.db"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3 * PAGE))
    for command in (["status"], ["audit", "verify"], ["halt"]):
        result = run_cli(lyra_home, *command)
        assert result.returncode == 3, (command, result.stderr)
        _one_sentence(result, "is damaged", "file is not a database", "restore")

    other = lyra_home / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    same_names = lyra_home / "same.db"
    with sqlite3.connect(same_names) as conn:
        conn.execute("CREATE TABLE lyra_ladder (id INTEGER PRIMARY KEY, colour TEXT)")
    for db, detail in ((other, "holds other tables (users)"), (same_names, "lyra_ladder lacks the column(s) phase")):
        before = db.read_bytes()
        for command in (["status"], ["audit", "verify"], ["halt"]):
            result = run_cli(lyra_home, *command, LYRA_DB_URL=f"sqlite:///{db}")
            assert result.returncode == 3, (command, result.stderr)
            _one_sentence(result, "is not a Lyra store", detail, "LYRA_DB_URL")
        assert db.read_bytes() == before  # nothing was written into the other application's file


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LYRA_RISK": "{not json"}, ("LYRA_RISK is not a valid JSON object", "LYRA_RISK__<KEY>=value")),
        ({"LYRA_EXCHANGES": "garbage"}, ("LYRA_EXCHANGES is not a valid JSON object",)),
        (
            {"LYRA_DB_URL": "mysql://root:pw-in-url-123@127.0.0.1/lyra"},
            ("cannot use 'mysql' as its store", "sqlite:///", "postgresql+psycopg://"),
        ),
        ({"LYRA_DB_URL": "nonsense"}, ("cannot use", "sqlite:///")),
    ],
)
def test_bad_settings_are_one_sentence(lyra_home: Path, env: dict[str, str], words: tuple[str, ...]) -> None:
    result = run_cli(lyra_home, "status", **env)
    assert result.returncode == 2, result.stderr
    line = _one_sentence(result, *words)
    assert "pw-in-url-123" not in line


@pytest.mark.timeout(180)
def test_paper_out_on_a_folder_that_cannot_be_written(lyra_home: Path) -> None:
    (lyra_home / "a-file").write_text("not a folder")
    result = run_cli(lyra_home, "paper", "--hours", "0.02", "--out", "a-file/report")
    assert result.returncode == 1
    _one_sentence(result, "cannot write to the folder a-file/report", "Not a directory", "--out")

    read_only = lyra_home / "read-only"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    setpriv = shutil.which("setpriv")
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere: drop the capability that lets it
        assert setpriv is not None, "running as root needs setpriv (util-linux) to test a read-only folder"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    result = run_cli(lyra_home, "paper", "--hours", "0.02", "--out", "read-only/report", prefix=prefix)
    assert result.returncode == 1
    _one_sentence(result, "cannot write to the folder read-only/report", "Permission denied", "--out")
