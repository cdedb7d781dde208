"""The root `lyra-governor` app: global options, error handling, command registration."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer._click import Command, Context  # typer vendors click; TyperGroup holds these
from typer.core import TyperGroup

from lyra_governor import __version__
from lyra_governor.cli.common import CliState, err_console
from lyra_governor.errors import LyraError

#: Every command of the root app and the module (in lyra_governor/cli/) that registers it, in
#: the order `--help` lists them. A module is imported only when one of its commands is looked
#: up, so `lyra-governor halt` loads ops.py and what the halt needs, not the council, ccxt or
#: the paper engine: the emergency stop's own start-up is most of its time to the last cancel
#: (issue 19 point 5). tests/unit/cli/test_lazy_commands.py checks this table against what each
#: module registers, and what `halt --help` leaves out of sys.modules.
COMMANDS: dict[str, str] = {
    "status": "ops", "phase": "ops", "halt": "ops", "resume": "ops", "promote": "ops", "demote": "ops",
    "orphans": "orphans_cmd", "audit": "audit_cmd", "vault": "vault_cmd", "council": "council_cmd",
    "commission": "commission_cmd", "exchanges": "commission_cmd", "paper": "paper_cmd", "record": "paper_cmd",
    "serve": "serve_cmd", "install-scripts": "scripts_cmd", "hummingbot": "hummingbot_cmd",
}  # fmt: skip


def commands_of(module_name: str) -> dict[str, Command]:
    """The click commands `lyra_governor.cli.<module_name>` registers, by name."""
    module = importlib.import_module(f"lyra_governor.cli.{module_name}")
    holder = typer.Typer()
    module.register(holder)
    return dict(typer.main.get_group(holder).commands)


class _LazyCommands(MutableMapping[str, Command]):
    """The root group's commands: names known up front (help, suggestions for a typo), each
    module imported on the first lookup of one of its commands."""

    def __init__(self) -> None:
        self._loaded: dict[str, Command] = {}
        self._extra: list[str] = []

    def __getitem__(self, name: str) -> Command:
        if name not in self._loaded and name in COMMANDS:
            self._loaded.update(commands_of(COMMANDS[name]))
        return self._loaded[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._loaded[name] = command
        if name not in COMMANDS and name not in self._extra:
            self._extra.append(name)

    def __delitem__(self, name: str) -> None:
        raise TypeError("the root app's commands cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter([*COMMANDS, *self._extra])

    def __len__(self) -> int:
        return len(COMMANDS) + len(self._extra)


class LazyGroup(TyperGroup):
    """The root `lyra-governor` group, with its commands in `_LazyCommands`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        commands, self.commands = self.commands, _LazyCommands()
        self.commands.update(commands)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    name="lyra-governor",
    help="Govern Hummingbot strategies: commissioning ladder, AI council, hard limits, audit trail.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lyra-governor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="LYRA_CONFIG", help="Settings file (default: conf/lyra_governor.yml if present)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = CliState(config)


def user_error(exc: BaseException) -> LyraError | None:
    """The one-sentence error for an exception a user can cause (a damaged or foreign store,
    a folder that cannot be written), or None for a bug (which keeps its traceback)."""
    from lyra_governor import store_health
    from lyra_governor.cli import common

    if isinstance(exc, LyraError):
        return exc
    if store_health.is_store_error(exc):
        return store_health.classify(common.LOADED[0] or "<db_url>", exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        why = exc.strerror or type(exc).__name__
        return LyraError(f"{where}{why}; check that the path exists and that you may write to it")
    return None


ROOT_VALUE_OPTIONS = ("--config", "-c")


def hoist_root_options(argv: list[str]) -> list[str]:
    """`lyra-governor phase --config X` as `lyra-governor --config X phase`: the settings file
    may follow the command (the README promises it for every command). No subcommand has a
    `--config`/`-c` of its own; anything after `--` is left alone."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":  # the root's own options
        i += 2 if argv[i] in ROOT_VALUE_OPTIONS else 1
    if i >= len(argv):
        return argv
    head, tail = list(argv[:i]), argv[i:]
    rest: list[str] = []
    j = 0
    while j < len(tail):
        word = tail[j]
        if word == "--":
            rest += tail[j:]
            break
        if word in ROOT_VALUE_OPTIONS and j + 1 < len(tail):
            head += [word, tail[j + 1]]
            j += 2
            continue
        if word.startswith("--config="):
            head.append(word)
        else:
            rest.append(word)
        j += 1
    return head + rest


def main() -> None:
    """Console-script entry point: user mistakes become one clear message and an exit code.

    Everything printed (rich output, errors, tracebacks of bugs) goes through the redactor,
    which knows the secrets of the environment, of db_url and of the vault once it is opened.
    """
    import os

    from lyra_governor.redact import install_redaction, redact, redact_standard_streams, secrets_from_env

    install_redaction(secrets_from_env(os.environ))
    redact_standard_streams()
    try:
        app(args=hoist_root_options(sys.argv[1:]), standalone_mode=True)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(redact(str(error)))}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
