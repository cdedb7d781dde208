"""The secret sweep: every command's error paths, run with recognisable fake secrets in the
vault, the environment and the settings file; every byte printed and every file left behind
(store, reports, logs) is searched for them: 0 hits."""

from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.failure.conftest import cli_env, no_traceback, run_cli

VAULT = {
    "exchange/binance/api_key": "FAKESECRET-vault-binance-key-7f3a19",
    "exchange/binance/secret": "FAKESECRET-vault-binance-sec-91c2ab",
    "openrouter/key1": "sk-or-v1-FAKESECRETvaultopenrouter0001",
    "server/token": "FAKESECRET-vault-server-token-55e1",
}
ENV = {
    "LYRA_VAULT_PASSWORD": "FAKESECRET-env-vault-password-0d4c",
    "BINANCE_API_SECRET": "FAKESECRET-env-binance-secret-2b8f",
    "LYRA_SERVER_TOKEN": "FAKESECRET-env-server-token-3a6e",
    "OPENROUTER_API_KEY": "sk-or-v1-FAKESECRETenvopenrouter0002",
}
CONFIG_DB_PASSWORD = "FAKESECRET-cfg-db-password-4c2d"
CONFIG_MISPLACED = "FAKESECRET-cfg-misplaced-5e9a"
WRONG_PASSWORD = "FAKESECRET-env-wrong-password-6f1b"
UNSET = "<unset>"
ALL = [*VAULT.values(), *ENV.values(), CONFIG_DB_PASSWORD, CONFIG_MISPLACED, WRONG_PASSWORD]

# Every command, with the arguments it needs to reach its error paths.
COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["phase"],
    ["halt", "--no-broadcast"],
    ["resume"],
    ["promote"],
    ["demote"],
    ["commission", "--phase", "1"],
    ["exchanges", "validate"],
    ["paper", "--hours", "0.02", "--out", "reports/paper"],
    ["record", "--exchange", "binance", "--pair", "BTC-USDT", "--seconds", "1"],
    ["serve", "--port", "0", "--no-checkpoints"],
    ["install-scripts", "--dir", "a-file"],
    ["audit", "verify"],
    ["audit", "tail"],
    ["vault", "list"],
    ["vault", "verify"],
    ["vault", "get", "exchange/binance/api_key"],
    ["vault", "import-env"],
    ["council", "check"],
    ["council", "models"],
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(home: Path, **extra: str) -> dict[str, str]:
    values = {
        "LYRA_VAULT_PATH": str(home / "vault" / "lyra.vault"),
        "LYRA_VAULT_SCRYPT_N": "4096",
        "LYRA_CONSENSUS__BACKEND": "openrouter",  # the council reads its keys from the vault
        **ENV,
    }
    env = cli_env(home, **(values | extra))
    return {k: v for k, v in env.items() if v != UNSET}


def _scenarios(home: Path) -> list[tuple[str, list[list[str]], dict[str, str]]]:
    port = _closed_port()
    (home / "misplaced.yml").write_text(f"risk:\n  max_order_notional_usd: {CONFIG_MISPLACED}\n")
    (home / "pg-down.yml").write_text(
        f"db_url: postgresql+psycopg://lyra:{CONFIG_DB_PASSWORD}@127.0.0.1:{port}/lyra\n"
        f"consensus:\n  openrouter_base_url: http://127.0.0.1:{port}/api/v1\n"
        f"commissioning:\n  exchange_api_url: http://127.0.0.1:{port}\n  timeout_s: 1\n"
    )
    (home / "damaged.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192)
    (home / "a-file").write_text("not a folder")
    secret = VAULT["exchange/binance/secret"]
    return [
        # (the vault commands read LYRA_VAULT_PATH, not the settings file)
        ("a secret in a wrong setting of the settings file", [c for c in COMMANDS if c[0] != "vault"],
         {"LYRA_CONFIG": str(home / "misplaced.yml")}),
        # (paper runs on its own store and record on the real exchange: neither reads db_url)
        ("PostgreSQL down, its password in db_url, services unreachable",
         [c for c in COMMANDS if c[0] not in ("vault", "paper", "record")],
         {"LYRA_CONFIG": str(home / "pg-down.yml"), "LYRA_DB_URL": UNSET}),
        ("a vault secret in a number setting", COMMANDS[:4], {"LYRA_RISK__PRICE_COLLAR_PCT": secret}),
        ("a secret as a section's JSON", COMMANDS[:2], {"LYRA_EXCHANGES": ENV["BINANCE_API_SECRET"]}),
        ("a secret in an unsupported db_url", COMMANDS[:2], {"LYRA_DB_URL": f"mysql://u:{secret}@127.0.0.1/x"}),
        ("a secret as db_url", COMMANDS[:2], {"LYRA_DB_URL": ENV["LYRA_SERVER_TOKEN"]}),
        ("a damaged store", COMMANDS[:7] + COMMANDS[13:15], {"LYRA_DB_URL": f"sqlite:///{home / 'damaged.db'}"}),
        ("the wrong vault password", [c for c in COMMANDS if c[0] in ("vault", "council")],
         {"LYRA_VAULT_PASSWORD": WRONG_PASSWORD}),
        ("secrets typed as arguments", [
            ["demote", "--exchange", secret],
            ["vault", "get", VAULT["exchange/binance/api_key"]],
            ["vault", "set", VAULT["server/token"]],
            ["status", "--interval", ENV["BINANCE_API_SECRET"]],
            ["audit", "tail", "-n", VAULT["openrouter/key1"]],
            ["record", "--exchange", ENV["LYRA_SERVER_TOKEN"], "--pair", "BTC-USDT"],
            ["council", "check", "--phase", secret],
        ], {}),
    ]  # fmt: skip


def _hits(text: str) -> list[str]:
    return [s for s in ALL if s in text]


@pytest.mark.timeout(600)
def test_no_error_path_of_any_command_shows_a_secret(lyra_home: Path) -> None:
    env = _base_env(lyra_home)
    assert run_cli(lyra_home, "vault", "init", env=env).returncode == 0
    for name, value in VAULT.items():
        stored = run_cli(lyra_home, "vault", "set", name, stdin=value + "\n", env=env)
        assert stored.returncode == 0, stored.stderr

    runs: list[tuple[str, list[str], dict[str, str]]] = [
        (label, command, _base_env(lyra_home, **extra)) for label, commands, extra in _scenarios(lyra_home)
        for command in commands
    ]  # fmt: skip

    took: dict[str, float] = {}

    def one(run: tuple[str, list[str], dict[str, str]]) -> tuple[str, list[str], subprocess.CompletedProcess[str]]:
        label, command, run_env = run
        started = time.monotonic()
        # a server that does start is stopped (SIGINT) after a few seconds: its output is swept too
        prefix = ["timeout", "-s", "INT", "8"] if command[0] == "serve" else []
        result = run_cli(lyra_home, *command, env=run_env, timeout=120, stdin="", prefix=prefix)
        took[" ".join(command) + " / " + label] = time.monotonic() - started
        return label, command, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, runs))

    leaks: list[str] = []
    failures = 0
    for label, command, result in results:
        if result.returncode != 0:
            failures += 1
            no_traceback(result)
        for stream in (result.stdout, result.stderr):
            leaks += [f"{label}: {' '.join(command)} printed {hit[:14]}..." for hit in _hits(stream)]
    inputs = {lyra_home / "misplaced.yml", lyra_home / "pg-down.yml"}
    files = [p for p in lyra_home.rglob("*") if p.is_file() and p not in inputs]
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"{path.relative_to(lyra_home)} holds {hit[:14]}..." for hit in _hits(text)]
    print(f"secret sweep: {len(results)} runs ({failures} ended in an error), {len(files)} files searched, "
          f"{len(leaks)} hits; slowest: {max(took.items(), key=lambda kv: kv[1])}")  # fmt: skip
    assert leaks == []
    succeeded = [f"{label}: {' '.join(command)}" for label, command, result in results if result.returncode == 0]
    assert succeeded == [], succeeded  # the sweep exercised error paths, not successes
