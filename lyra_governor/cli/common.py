"""Helpers shared by the CLI modules: settings from the root options, consoles, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from lyra_governor.config import Settings, load_settings

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
            self._settings = load_settings(self.config_path)
        return self._settings


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
