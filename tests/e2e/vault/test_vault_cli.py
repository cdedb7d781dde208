"""`lyra-governor vault ...` as a user types it, and secrets that never show up anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("lyra-governor"))
PASSWORD = "vault master password 1"
SECRETS = {"exchange/binance/api_key": "LEAKCHECK-binance-key-93817", "openrouter/key1": "sk-or-v1-leakcheck-7a7a7a7a"}


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER"))}
    env.update(
        {
            "LYRA_VAULT_PATH": str(home / "vault" / "lyra.vault"),
            "LYRA_VAULT_PASSWORD": PASSWORD,
            "LYRA_VAULT_SCRYPT_N": "4096",
        },
        **extra,
    )
    return env


def run(home: Path, *args: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=home,
        env=env_for(home, **extra),
        timeout=300,
        check=False,
    )


@pytest.mark.timeout(300)
def test_vault_cli_and_no_secret_leaks_anywhere(lyra_home: Path) -> None:
    assert run(lyra_home, "vault", "init").returncode == 0
    for name, value in SECRETS.items():
        stored = run(lyra_home, "vault", "set", name, stdin=value + "\n")
        assert stored.returncode == 0, stored.stderr
    listed = run(lyra_home, "vault", "list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in SECRETS)
    masked = run(lyra_home, "vault", "get", "openrouter/key1")
    assert SECRETS["openrouter/key1"] not in masked.stdout
    revealed = run(lyra_home, "vault", "get", "openrouter/key1", "--reveal")
    assert revealed.stdout.strip() == SECRETS["openrouter/key1"]
    assert run(lyra_home, "vault", "verify").returncode == 0

    wrong = run(lyra_home, "vault", "list", LYRA_VAULT_PASSWORD="not the password")
    assert wrong.returncode == 4 and "wrong master password" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = run(lyra_home, "vault", "list", LYRA_VAULT_PATH=str(lyra_home / "none.vault"))
    assert missing.returncode == 4 and "vault init" in missing.stderr

    # the rest of Lyra, with the vault unlocked and the secrets also in the environment
    outputs = [listed, masked, wrong, missing]
    leak_env = {
        "OPENROUTER_API_KEY": SECRETS["openrouter/key1"],
        "BINANCE_API_KEY": SECRETS["exchange/binance/api_key"],
    }
    for args in (
        ("status", "--json"),
        ("council", "check", "--json"),
        ("audit", "verify"),
        ("paper", "--hours", "0.05", "--out", "rep", "--json"),
    ):
        done = run(lyra_home, *args, **leak_env)
        assert "Traceback" not in done.stderr, (args, done.stderr[-1500:])
        outputs.append(done)
    for done in outputs:
        for value in SECRETS.values():
            assert value not in done.stdout and value not in done.stderr
    vault_file = lyra_home / "vault" / "lyra.vault"
    for path in lyra_home.rglob("*"):
        if path.is_file() and not path.name.startswith(vault_file.name):
            data = path.read_bytes()
            for value in SECRETS.values():
                assert value.encode() not in data, f"{value} found in {path}"
