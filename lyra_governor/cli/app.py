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
    ops,
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


for module in (ops, audit_cmd, vault_cmd, council_cmd, commission_cmd, paper_cmd, serve_cmd, scripts_cmd):
    module.register(app)


def main() -> None:
    """Console-script entry point: user mistakes become one clear message and an exit code."""
    try:
        app(standalone_mode=True)
    except LyraError as exc:
        from lyra_governor.redact import redact

        err_console.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
