"""`lyra-governor halt` loads only what the halt needs (issue 19 point 5: most of the time from
the command to the last cancel was the CLI's own start-up). Structural, not timed: a fresh
interpreter runs the command and reports which modules it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyra_governor.cli import app as cli_app

# Run the CLI's own entry point in a fresh interpreter, then list the modules it imported.
PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
sys.argv = ["lyra-governor", *argv]
from lyra_governor.cli.app import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Never needed to stop trading: the bot's own stack, data and plotting libraries, the exchange
# and council clients, and the other commands' modules.
NEVER = (
    "hummingbot", "pandas", "numpy", "matplotlib", "ccxt", "httpx", "aiohttp", "cryptography",
    "sqlalchemy.orm", "lyra_governor.consensus", "lyra_governor.governor", "lyra_governor.checkpoints",
    "lyra_strategies", "lyra_governor.cli.paper_cmd", "lyra_governor.cli.council_cmd",
    "lyra_governor.cli.commission_cmd", "lyra_governor.cli.vault_cmd", "lyra_governor.cli.serve_cmd",
    "lyra_governor.cli.hummingbot_cmd", "lyra_governor.cli.audit_cmd", "lyra_governor.cli.orphans_cmd",
    "lyra_governor.cli.scripts_cmd",
)  # fmt: skip
# Not needed to print the halt's help either: no settings, no store, no MQTT.
NOT_FOR_HELP = (*NEVER, "sqlalchemy", "pydantic_settings", "yaml", "paho", "asyncio", "lyra_governor.config",
                "lyra_governor.ledger", "lyra_governor.models")  # fmt: skip


def _loaded(args: list[str], home: Path) -> tuple[int, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")} | {
        "LYRA_DB_URL": f"sqlite:///{home / 'lyra.db'}",
        "LYRA_DATA_DIR": str(home / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True, text=True, cwd=home, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert "MODULES " in done.stdout, done.stderr
    report = json.loads(done.stdout.rsplit("MODULES ", 1)[1])
    return int(report["code"]), set(report["modules"])


def _among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_halt_help_loads_neither_settings_nor_store(tmp_path: Path) -> None:
    code, modules = _loaded(["halt", "--help"], tmp_path)
    assert code == 0
    assert "lyra_governor.cli.ops" in modules
    assert _among(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize("command", [["halt", "--reason", "lazy import check", "--json"], ["resume", "--json"]])
def test_halt_and_resume_load_only_the_store_and_settings(tmp_path: Path, command: list[str]) -> None:
    code, modules = _loaded(command, tmp_path)
    assert code == 0
    assert {"lyra_governor.ledger", "sqlalchemy"} <= modules  # it did reach the store
    assert _among(modules, NEVER) == []


def test_status_loads_no_network_client_nor_the_bots_stack(tmp_path: Path) -> None:
    """`status` reads the council's cached catalogue and the checkpoint schedule (which load the
    council's modules), never the network clients, Hummingbot or the data libraries."""
    code, modules = _loaded(["status", "--json"], tmp_path)
    assert code == 0
    never = tuple(n for n in NEVER if n not in ("cryptography", "lyra_governor.consensus", "lyra_governor.checkpoints"))
    assert _among(modules, never) == []


def test_the_command_table_matches_what_each_module_registers() -> None:
    """A command added to a module but not to COMMANDS would be missing from the CLI."""
    folder = Path(cli_app.__file__).parent
    registering = {p.stem for p in folder.glob("*.py") if "\ndef register(" in p.read_text(encoding="utf-8")}
    assert registering == set(cli_app.COMMANDS.values())
    for module in registering:
        assert set(cli_app.commands_of(module)) == {n for n, m in cli_app.COMMANDS.items() if m == module}, module


def test_the_root_app_lists_and_runs_every_command() -> None:
    from typer.testing import CliRunner

    shown = CliRunner().invoke(cli_app.app, ["--help"])
    assert shown.exit_code == 0
    assert all(name in shown.output for name in cli_app.COMMANDS)
    typo = CliRunner().invoke(cli_app.app, ["hlat"])
    assert typo.exit_code == 2 and "halt" in typo.output
