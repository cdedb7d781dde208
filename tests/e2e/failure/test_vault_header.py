"""A tampered vault header is one sentence (exit 4), never a traceback or a memory bomb; the
header is authenticated; `vault verify` also checks the backup it tells users to restore from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.failure.conftest import cli_env, no_traceback, run_cli

PASSWORD = "header test password 1"


def _env(home: Path, **extra: str) -> dict[str, str]:
    values = {
        "LYRA_VAULT_PATH": str(home / "vault" / "lyra.vault"),
        "LYRA_VAULT_PASSWORD": PASSWORD,
        "LYRA_VAULT_SCRYPT_N": "4096",
    }
    return cli_env(home, **(values | extra))


def _vault(home: Path) -> Path:
    assert run_cli(home, "vault", "init", env=_env(home)).returncode == 0
    for name, value in (("exchange/binance/api_key", "hdr-key-1234567"), ("exchange/binance/secret", "hdr-sec-89")):
        stored = run_cli(home, "vault", "set", name, stdin=value + "\n", env=_env(home))
        assert stored.returncode == 0, stored.stderr
    return home / "vault" / "lyra.vault"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _tamper_kdf(path: Path, **changes: Any) -> None:
    """Change KDF parameters and fix the plain header digest, as a deliberate attacker would."""
    doc = json.loads(path.read_bytes())
    doc["kdf"].update(changes)
    header = [doc["format"], doc["version"], doc["kdf"], doc["check"]]
    doc["header_sha"] = hashlib.sha256(_canonical(header)).hexdigest()
    path.write_bytes(_canonical(doc))


TAMPERED = [
    ({"n": 3}, "n must be a power of two"),
    ({"r": 0}, "r must be from 1 to 32"),
    ({"n": "abc"}, "must be whole numbers"),
    ({"n": 2**40}, "n must be a power of two from 2**10 to 2**20"),  # 128 TiB of scrypt memory
    ({"p": 10**6}, "p must be from 1 to 16"),
    ({"n": 2**20, "r": 32}, "would need more than 256 MiB"),
    ({"salt": ""}, "the salt must hold 16 to 64 bytes"),
]


@pytest.mark.timeout(300)
def test_kdf_parameters_are_bounded_before_deriving(lyra_home: Path) -> None:
    path = _vault(lyra_home)
    original = path.read_bytes()
    for changes, words in TAMPERED:
        path.write_bytes(original)
        _tamper_kdf(path, **changes)
        result = run_cli(lyra_home, "vault", "verify", env=_env(lyra_home))
        assert result.returncode == 4, (changes, result.stderr)
        no_traceback(result)
        assert "out of bounds" in result.stderr and words in result.stderr, result.stderr
        assert "lyra.vault.bak" in result.stderr and "nothing was derived" in result.stderr


@pytest.mark.timeout(300)
def test_an_in_bounds_header_change_is_caught_by_its_authentication(lyra_home: Path) -> None:
    path = _vault(lyra_home)
    _tamper_kdf(path, n=1024)  # a downgrade of the work factor, digest fixed up
    result = run_cli(lyra_home, "vault", "list", env=_env(lyra_home))
    assert result.returncode == 4
    no_traceback(result)
    assert "its header was altered" in result.stderr and "lyra.vault.bak" in result.stderr


@pytest.mark.timeout(300)
def test_vault_verify_checks_the_backup_too(lyra_home: Path) -> None:
    path = _vault(lyra_home)
    backup = path.with_name("lyra.vault.bak")
    intact = run_cli(lyra_home, "vault", "verify", env=_env(lyra_home))
    assert intact.returncode == 0, intact.stderr
    assert "vault intact: 2 secrets" in intact.stdout and "backup lyra.vault.bak intact: 1 secrets" in intact.stdout

    raw = bytearray(backup.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in the file users are told to restore
    backup.write_bytes(bytes(raw))
    damaged = run_cli(lyra_home, "vault", "verify", env=_env(lyra_home))
    assert damaged.returncode == 4, damaged.stdout + damaged.stderr
    no_traceback(damaged)
    assert f"the backup {backup} cannot restore this vault" in damaged.stderr
    assert f"cp -p {path} {backup}" in damaged.stderr

    backup.unlink()
    none = run_cli(lyra_home, "vault", "verify", env=_env(lyra_home))
    assert none.returncode == 0 and "no backup yet" in none.stdout

    rotated = run_cli(lyra_home, "vault", "rotate", env=_env(lyra_home, LYRA_VAULT_NEW_PASSWORD="a new password 2"))
    assert rotated.returncode == 0, rotated.stderr
    after = run_cli(lyra_home, "vault", "verify", env=_env(lyra_home, LYRA_VAULT_PASSWORD="a new password 2"))
    assert after.returncode == 0, after.stderr
    assert "sealed with an earlier master password" in after.stdout
