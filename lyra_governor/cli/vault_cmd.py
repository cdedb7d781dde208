"""`lyra-governor vault ...`: the encrypted store for exchange and OpenRouter credentials.

Values are read from a hidden prompt or stdin, never from the command line (shell history and
the process list would keep them). The master password comes from a hidden prompt or
LYRA_VAULT_PASSWORD (headless bots).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from lyra_governor.cli.common import console, print_json, settings
from lyra_governor.errors import VaultError

vault_app = typer.Typer(help="Encrypted secrets: exchange keys and OpenRouter keys.", no_args_is_help=True)
VaultOption = typer.Option(None, "--vault", envvar="LYRA_VAULT_PATH", help="Vault file (default: vault_path).")


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app, name="vault")


def _path(ctx: typer.Context, vault: Path | None) -> Path:
    return vault or Path(settings(ctx).vault_path)


def _password(confirm: bool = False, prompt: str = "Vault master password") -> str:
    env = os.environ.get("LYRA_VAULT_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise VaultError("no master password: set LYRA_VAULT_PASSWORD or run the command in a terminal")
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


def _open(ctx: typer.Context, vault: Path | None) -> object:
    from lyra_governor.vault import Vault

    return Vault.open(_path(ctx, vault), _password())


@vault_app.command("init")
def init_cmd(ctx: typer.Context, vault: Path | None = VaultOption) -> None:
    """Create an empty vault (0600 file in a 0700 folder)."""
    from lyra_governor.vault import Vault

    path = _path(ctx, vault)
    Vault.create(path, _password(confirm=True))
    console.print(f"vault created at {path}")


@vault_app.command("set")
def set_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="e.g. exchange/binance/api_key"),
    vault: Path | None = VaultOption,
) -> None:
    """Store a secret; the value comes from a hidden prompt, or stdin when piped."""
    from lyra_governor.vault import Vault

    opened = _open(ctx, vault)
    assert isinstance(opened, Vault)
    if sys.stdin.isatty():
        value: str = typer.prompt(f"Value for {name}", hide_input=True)
    else:
        value = sys.stdin.read().strip()
    opened.set(name, value)
    console.print(f"stored {name}")


@vault_app.command("get")
def get_cmd(
    ctx: typer.Context,
    name: str,
    reveal: bool = typer.Option(False, "--reveal", help="Print the value."),
    vault: Path | None = VaultOption,
) -> None:
    """Show a secret, masked unless --reveal."""
    from lyra_governor.vault import Vault

    opened = _open(ctx, vault)
    assert isinstance(opened, Vault)
    value = opened.get(name)
    if reveal:
        from lyra_governor.redact import raw_stdout

        typer.echo(value, file=raw_stdout())  # the one output that is the secret itself, on request
        return
    typer.echo(f"{value[:2]}{'*' * max(4, len(value) - 4)}{value[-2:] if len(value) > 8 else ''}")


@vault_app.command("list")
def list_cmd(
    ctx: typer.Context,
    vault: Path | None = VaultOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Names of the stored secrets (never their values)."""
    from lyra_governor.vault import Vault

    opened = _open(ctx, vault)
    assert isinstance(opened, Vault)
    if as_json:
        print_json({"names": opened.names()})
    else:
        for name in opened.names():
            console.print(name)


@vault_app.command("verify")
def verify_cmd(ctx: typer.Context, vault: Path | None = VaultOption) -> None:
    """Check modes, structure, every entry and the whole-vault MAC."""
    from lyra_governor.vault import Vault

    path = _path(ctx, vault)
    password = _password()
    opened = Vault.open(path, password)
    opened.verify()
    backup = Vault.check_backup(path, password)  # the file the messages say to restore from
    console.print(f"vault intact: {len(opened.names())} secrets; {backup}")


@vault_app.command("rotate")
def rotate_cmd(ctx: typer.Context, vault: Path | None = VaultOption) -> None:
    """Re-encrypt every secret under a new master password (new salt, current scrypt cost)."""
    from lyra_governor.vault import Vault

    opened = _open(ctx, vault)
    assert isinstance(opened, Vault)
    new = os.environ.get("LYRA_VAULT_NEW_PASSWORD") or _password(confirm=True, prompt="New master password")
    opened.rotate(new)
    console.print("master password rotated; update LYRA_VAULT_PASSWORD where bots use it")


@vault_app.command("import-env")
def import_env_cmd(ctx: typer.Context, vault: Path | None = VaultOption) -> None:
    """Import secrets from environment variables: LYRA_OPENROUTER_KEY1..8 (or OPENROUTER_API_KEY),
    <EXCHANGE>_API_KEY / <EXCHANGE>_API_SECRET / <EXCHANGE>_PASSPHRASE for configured exchanges,
    and LYRA_SECRET_<NAME> with `__` for `/` (LYRA_SECRET_EXCHANGE__KRAKEN__API_KEY)."""
    from lyra_governor.vault import Vault

    opened = _open(ctx, vault)
    assert isinstance(opened, Vault)
    found: dict[str, str] = {}
    for i in range(1, 9):
        if os.environ.get(f"LYRA_OPENROUTER_KEY{i}"):
            found[f"openrouter/key{i}"] = os.environ[f"LYRA_OPENROUTER_KEY{i}"]
    if "openrouter/key1" not in found and os.environ.get("OPENROUTER_API_KEY"):
        found["openrouter/key1"] = os.environ["OPENROUTER_API_KEY"]
    for exchange in settings(ctx).exchanges:
        prefix = exchange.upper()
        for var, field in (
            ("API_KEY", "api_key"),
            ("API_SECRET", "secret"),
            ("SECRET", "secret"),
            ("PASSPHRASE", "passphrase"),
        ):
            value = os.environ.get(f"{prefix}_{var}")
            if value:
                found.setdefault(f"exchange/{exchange}/{field}", value)
    for var, value in os.environ.items():
        if var.startswith("LYRA_SECRET_") and value:
            found[var[len("LYRA_SECRET_") :].lower().replace("__", "/")] = value
    for name, value in sorted(found.items()):
        opened.set(name, value)
        console.print(f"imported {name}")
    console.print(f"{len(found)} secret(s) imported; remove them from the environment now")
