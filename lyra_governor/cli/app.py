"""The root `lyra-governor` app: global options, error handling, command registration."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from lyra_governor import __version__
from lyra_governor.cli import (
    audit_cmd,
    commission_cmd,
    council_cmd,
    hummingbot_cmd,
    ops,
    orphans_cmd,
    paper_cmd,
    scripts_cmd,
    serve_cmd,
    vault_cmd,
)
from lyra_governor.cli.common import CliState, err_console
from lyra_governor.errors import LyraError

app = typer.Typer(
    name="lyra-governor",
    help="Govern Hummingbot strategies: commissioning ladder, AI council, hard limits, audit trail.",
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


for module in (
    ops, orphans_cmd, audit_cmd, vault_cmd, council_cmd, commission_cmd, paper_cmd, serve_cmd, scripts_cmd,
    hummingbot_cmd,
):  # fmt: skip
    module.register(app)


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
