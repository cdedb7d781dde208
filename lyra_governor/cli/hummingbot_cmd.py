"""`lyra-governor hummingbot`: Hummingbot's own client with Lyra's scripts (see lyra_governor.hbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape

from lyra_governor.cli.common import err_console, settings
from lyra_governor.errors import ConfigError
from lyra_governor.hbclient import (
    DEFAULT_CONF,
    DEFAULT_ROOT,
    PASSWORD_ENV,
    ROOT_ENV,
    ensure_password_verification,
    prepare_root,
    quickstart_command,
)


def register(app: typer.Typer) -> None:
    app.command("hummingbot")(hummingbot_cmd)


def hummingbot_cmd(
    ctx: typer.Context,
    root: Path = typer.Option(
        DEFAULT_ROOT, "--root", envvar=ROOT_ENV, help="Hummingbot's root: conf/, scripts/, logs/ (created if missing)."
    ),
    headless: bool = typer.Option(
        False, "--headless", help="No terminal UI: start the script config at once (needs CONFIG_PASSWORD)."
    ),
    v2_conf: str | None = typer.Option(
        None,
        "--v2",
        envvar="SCRIPT_CONFIG",
        help=f"Script config in ROOT/conf/scripts/ to start (headless default {DEFAULT_CONF}).",
    ),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Prepare the root and exit."),
) -> None:
    """Start Hummingbot's client (terminal UI, or --headless) with Lyra's scripts and configs.

    In the UI: `start --v2 conf_lyra_market_making.yml`, `status`, `stop`, `exit`.
    """
    cfg = settings(ctx)
    done = prepare_root(root, cfg)
    say = err_console.print
    say(f"Hummingbot root {escape(str(done.root))}")
    for line in done.created:
        say(f"  created {escape(line)}")
    if done.scripts:
        say(f"  linked scripts/{', '.join(done.scripts)}")
    if done.configs:
        say(f"  copied conf/scripts/{', '.join(done.configs)}")
    for line in done.notes:
        say(f"  [yellow]note:[/] {escape(line)}")
    for line in done.kept:
        say(f"  [yellow]kept[/] {escape(line)} (your copy; delete it to link Lyra's again)")
    password = os.environ.get(PASSWORD_ENV, "")
    if password:
        say(f"  {ensure_password_verification(done.root, password)}")
    elif headless:
        raise ConfigError(f"--headless needs {PASSWORD_ENV} (the password that encrypts Hummingbot's connector keys)")
    if headless and not v2_conf:
        v2_conf = DEFAULT_CONF
    if v2_conf and not (done.root / "conf" / "scripts" / v2_conf).is_file():
        available = ", ".join(sorted(p.name for p in (done.root / "conf" / "scripts").glob("*.yml"))) or "none"
        raise ConfigError(f"no script config {v2_conf} in {done.root / 'conf' / 'scripts'} (there: {available})")
    if prepare_only:
        say(f"ready. In Hummingbot: start --v2 {v2_conf or DEFAULT_CONF}")
        return
    argv, env = quickstart_command(done.root, headless, v2_conf, cfg)
    if not headless:
        say(f"In Hummingbot: start --v2 {v2_conf or DEFAULT_CONF}   (status, stop, exit)")
    os.chdir(done.root)  # Hummingbot finds scripts/ relative to its working folder
    os.execve(argv[0], argv, env)  # noqa: S606 - becomes Hummingbot: its terminal, signals and exit code
