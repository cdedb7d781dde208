"""The vault on real files: encryption, integrity (every byte), modes, passwords, rotation,
concurrent writers, redaction."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyra_governor import vault as vault_module
from lyra_governor.errors import VaultError
from lyra_governor.redact import Redactor, install_redaction
from lyra_governor.vault import Vault

PASSWORD = "correct horse battery"
SECRETS = {
    "exchange/binance/api_key": "BINANCE-KEY-1234567890",
    "exchange/binance/secret": "s3cr3t-binance-xyz",
    "openrouter/key1": "sk-or-v1-abcdefghijklmnop",
}


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_module, "SCRYPT_N", 2**12)  # the format stores n; tests need not wait


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "vault" / "lyra.vault"
    v = Vault.create(path, PASSWORD)
    for name, value in SECRETS.items():
        v.set(name, value)
    return path


def test_round_trip_and_nothing_in_plain_text(filled: Path) -> None:
    v = Vault.open(filled, PASSWORD)
    assert sorted(v.names()) == sorted(SECRETS)
    assert all(v.get(n) == value for n, value in SECRETS.items())
    raw = filled.read_bytes()
    assert not any(value.encode() in raw for value in SECRETS.values())
    assert oct(filled.stat().st_mode & 0o777) == "0o600" and oct(filled.parent.stat().st_mode & 0o777) == "0o700"
    assert (filled.parent / "lyra.vault.bak").exists()  # the previous version is kept before each write


def test_wrong_password_is_refused(filled: Path) -> None:
    with pytest.raises(VaultError, match="wrong master password"):
        Vault.open(filled, "not the password")


def test_every_flipped_byte_is_detected(filled: Path) -> None:
    raw = filled.read_bytes()
    named = 0
    for offset in range(0, len(raw), max(1, len(raw) // 400)):  # ~400 offsets over every region
        damaged = bytearray(raw)
        damaged[offset] ^= 0x01
        filled.write_bytes(bytes(damaged))
        with pytest.raises(VaultError) as caught:
            Vault.open(filled, PASSWORD)
        message = str(caught.value)
        named += "entry" in message
        assert any(word in message for word in ("corrupted", "damaged", "entry", "header", "added", "wrong"))
    filled.write_bytes(raw)
    assert named > 0
    Vault.open(filled, PASSWORD)


def test_changed_entry_is_named(filled: Path) -> None:
    raw = filled.read_text()
    tampered = raw.replace('"name":"exchange/binance/secret"', '"name":"exchange/binance/secreT"')
    filled.write_text(tampered)
    with pytest.raises(VaultError, match=r"entry 2 \('exchange/binance/secreT'\) is damaged"):
        Vault.open(filled, PASSWORD)


def test_removed_or_reordered_entries_are_detected_even_with_fixed_checksums(filled: Path) -> None:
    import json

    doc = json.loads(filled.read_text())
    doc["entries"] = doc["entries"][:-1]  # drop one entry; per-entry sha's stay valid
    filled.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    with pytest.raises(VaultError, match="added, removed or reordered"):
        Vault.open(filled, PASSWORD)


def test_wide_modes_are_refused_with_the_fix(filled: Path) -> None:
    os.chmod(filled, 0o644)
    with pytest.raises(VaultError, match=f"chmod 600 {filled}"):
        Vault.open(filled, PASSWORD)
    os.chmod(filled, 0o600)
    os.chmod(filled.parent, 0o755)
    with pytest.raises(VaultError, match="chmod 700"):
        Vault.open(filled, PASSWORD)


def test_rotate_and_missing_vault(filled: Path, tmp_path: Path) -> None:
    v = Vault.open(filled, PASSWORD)
    v.rotate("a brand new password")
    with pytest.raises(VaultError):
        Vault.open(filled, PASSWORD)
    assert Vault.open(filled, "a brand new password").get("openrouter/key1") == SECRETS["openrouter/key1"]
    with pytest.raises(VaultError, match="vault init"):
        Vault.open(tmp_path / "nowhere" / "x.vault", PASSWORD)


def test_concurrent_set_from_two_processes_loses_nothing(filled: Path) -> None:
    code = (
        "import sys; from lyra_governor import vault as m; m.SCRYPT_N = 2**12\n"
        "v = m.Vault.open(sys.argv[1], sys.argv[2])\n"
        "for i in range(15): v.set(f'{sys.argv[3]}/k{i}', f'value-{sys.argv[3]}-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(filled), PASSWORD, who]) for who in ("alpha", "beta")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    names = set(Vault.open(filled, PASSWORD).names())
    assert {f"alpha/k{i}" for i in range(15)} <= names and {f"beta/k{i}" for i in range(15)} <= names
    assert set(SECRETS) <= names


def test_redaction_of_logs_and_text(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor(["hunter2-secret"])
    assert redactor.redact("key=hunter2-secret; other sk-or-v1-0123456789abcdef") == "key=***; other ***"
    install_redaction(["topsecret-value-77"])
    with caplog.at_level(logging.INFO):
        logging.getLogger("lyra.test").info("connecting with %s", "topsecret-value-77")
    assert "topsecret-value-77" not in caplog.text
