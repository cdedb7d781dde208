"""Name what is wrong with a store in one sentence, with the way out.

Why it is built this way:
- A store can be unreachable (the database is down: retry later), damaged (a page overwritten,
  a foreign file at the path: restore it) or not Lyra's at all (another application's SQLite
  file: point db_url elsewhere). Each wants a different action, so each gets its own sentence;
  all three exit 3 (`StoreUnavailable`), never with a traceback.
- Lyra never writes into a database it did not create: `check_lyra_store` runs before the
  schema is created and refuses a SQLite file that holds other tables and none of Lyra's, and
  any Lyra table that lacks a column Lyra needs (another application's table of the same name,
  or a store from another version).
- Messages show the URL with its password hidden and the database's own reason (its first
  line), never a value read from a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra_governor.errors import LyraError, StoreDamaged, StoreUnavailable

SUPPORTED_STORES = "sqlite:///<path> (one host) or postgresql+psycopg://<user>@<host>/<database> (several hosts)"

_DAMAGED = ("database disk image is malformed", "file is not a database", "file is encrypted", "malformed database")
_FOREIGN = ("no such column", "has no column named", "no such table")


def safe_url(url: str) -> str:
    """`url` with its password hidden (or a placeholder when it cannot be parsed)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<db_url>"


def sqlite_path(url: str) -> str | None:
    """The file behind a SQLite URL, or None for another database (or an in-memory one)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    if not path or path == ":memory:":
        return None
    return path


def reason_of(exc: BaseException) -> str:
    """The database's own reason, first line only (SQLAlchemy appends the statement)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def damaged(url: str, reason: str) -> StoreDamaged:
    path = sqlite_path(url)
    if path:
        return StoreDamaged(
            f"the store {path} is damaged ({reason}); stop the bots, move {path} and its -wal/-shm files aside, "
            f'restore it from your latest backup (e.g. one made with `sqlite3 {path} ".backup {path}.bak"`), '
            "then run `lyra-governor audit verify`"
        )
    return StoreDamaged(
        f"the store {safe_url(url)} is damaged ({reason}); restore the database from your latest backup "
        "(pg_dump/pg_restore), then run `lyra-governor audit verify`"
    )


def not_lyra(url: str, detail: str) -> StoreDamaged:
    where = sqlite_path(url) or safe_url(url)
    return StoreDamaged(
        f"{where} is not a Lyra store ({detail}); Lyra does not write into another application's database: "
        "point db_url / LYRA_DB_URL at a Lyra store or at a new file"
    )


def unavailable(url: str, reason: str) -> StoreUnavailable:
    return StoreUnavailable(
        f"the store at {safe_url(url)} is unavailable ({reason}); check that the database is running and that "
        "db_url / LYRA_DB_URL points at it"
    )


def classify(url: str, exc: BaseException) -> LyraError:
    """The user-facing error for a database exception raised while using the store at `url`."""
    if isinstance(exc, LyraError):
        return exc
    reason = reason_of(exc)
    low = reason.lower()
    orig = getattr(exc, "orig", None)
    if any(marker in low for marker in _DAMAGED):
        return damaged(url, reason)
    if any(marker in low for marker in _FOREIGN) or type(orig).__name__ in ("UndefinedColumn", "UndefinedTable"):
        return not_lyra(url, reason)
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
        return unavailable(url, f"{exc.strerror}: {exc.filename}")
    return unavailable(url, reason)


def is_store_error(exc: BaseException) -> bool:
    """Whether `exc` comes from the database layer (SQLAlchemy or a DBAPI driver)."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return True
    import sqlite3

    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")


def is_damage(exc: BaseException) -> bool:
    """Whether `exc` says the store is damaged or not Lyra's (as opposed to unreachable)."""
    return is_store_error(exc) and isinstance(classify("", exc), StoreDamaged)


def _sqlite_tables(path: str) -> dict[str, set[str]] | None:
    """{table: columns} of the SQLite file at `path`, read on a read-only connection (so a
    foreign file is not even switched to WAL), or None when there is no file yet."""
    import sqlite3
    import urllib.parse

    if not Path(path).exists():
        return None
    conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=1.0)
    try:
        names = [str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: {str(r[1]) for r in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}
    finally:
        conn.close()


def _inspected_tables(engine: Engine, ours: set[str]) -> dict[str, set[str]]:
    inspector: Any = sa.inspect(engine)
    names = set(inspector.get_table_names())
    return {name: {str(c["name"]) for c in inspector.get_columns(name)} if name in ours else set() for name in names}


def check_lyra_store(engine: Engine, url: str, metadata: sa.MetaData) -> bool:
    """Refuse a database that is not a Lyra store before anything is written into it; True when
    every Lyra table holds every column (nothing to create or add: a reader may open it as is)."""
    ours = set(metadata.tables)
    try:
        path = sqlite_path(url) if engine.dialect.name == "sqlite" else None
        tables = _sqlite_tables(path) if path else _inspected_tables(engine, ours)
    except LyraError:
        raise
    except Exception as exc:
        if is_store_error(exc) or isinstance(exc, OSError):
            raise classify(url, exc) from None
        raise
    if not tables:
        return False  # a new store
    present = set(tables) & ours
    if engine.dialect.name == "sqlite":  # a PostgreSQL database may well hold other applications' tables
        foreign = sorted(n for n in set(tables) - ours if not n.startswith("sqlite_"))
        if foreign and not present:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise not_lyra(url, f"it holds other tables ({shown}) and none of Lyra's")
    for name in sorted(present):
        # columns added since (nullable or with a server default) are added by create_schema
        required = [c for c in metadata.tables[name].columns if not c.nullable and c.server_default is None]
        missing = [c.name for c in required if c.name not in tables[name]]
        if missing:
            raise not_lyra(url, f"its table {name} lacks the column(s) {', '.join(missing)}")
    if present != ours:
        return False
    return all(c.name in tables[name] for name in ours for c in metadata.tables[name].columns)
