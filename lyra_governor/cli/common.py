"""Helpers shared by the CLI modules: settings from the root options, consoles, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:  # pydantic and the settings models load with the settings, not for `--help`
    from lyra_governor.config import Settings

console = Console()
err_console = Console(stderr=True)


class CliState:
    """What the root callback parsed; settings are loaded lazily so `--help` never fails."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from lyra_governor.config import load_settings

            self._settings = load_settings(self.config_path)
            LOADED[0] = self._settings.db_url
            _redact_url_password(self._settings.db_url)
        return self._settings


# The store the command is using, so an error raised deep inside it can name that store.
LOADED: list[str] = [""]


def _redact_url_password(url: str) -> None:
    from lyra_governor.redact import install_redaction

    try:
        import sqlalchemy as sa

        password = sa.engine.make_url(url).password
    except Exception:  # an unparsable URL is reported by the store, not here
        return
    if password:
        install_redaction([str(password)])


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState(None)
    return root.obj


def settings(ctx: typer.Context) -> Settings:
    return state(ctx).settings


def print_json(data: Any) -> None:
    """One JSON object on one line on stdout: what scripts parse."""
    typer.echo(json.dumps(data, default=str, sort_keys=True))


def writable_folder(path: Path, option: str) -> Path:
    """Create `path` if needed and prove a file can be written in it, before a long run starts;
    otherwise one sentence naming the folder, the reason and the option to change."""
    from lyra_governor.errors import LyraError

    probe = path / ".lyra-write-test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LyraError(
            f"cannot write to the folder {path} ({exc.strerror or type(exc).__name__}); choose another {option} "
            "or make it writable"
        ) from None
    return path


def echo_name(value: str) -> str:
    """`value` quoted if it looks like a name (an exchange, a key), else a neutral stand-in:
    what a user typed in the wrong place may be a secret, and errors never print those."""
    import re

    return repr(value) if re.fullmatch(r"[a-z][a-z0-9_]{0,31}", value) else "(the name given)"
