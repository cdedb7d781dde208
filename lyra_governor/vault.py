"""The vault: exchange and OpenRouter credentials, encrypted at rest, never printed.

Why it is built this way:
- The master password goes through scrypt (its parameters are stored in the file, so they can
  be raised on `rotate`); HKDF splits the result into an encryption key, a MAC key and a
  password-check key.
- Each secret is AES-GCM encrypted with its name as associated data, so a value moved to
  another name does not decrypt.
- Integrity, in two layers: a keyed HMAC over the header and every entry in order (tampering:
  a changed, removed, added or reordered entry), and a plain SHA-256 per entry and per header
  (accidents: a flipped byte is found and the damaged part NAMED even before the password is
  checked). The file is compact JSON with no whitespace, so no byte of it is insignificant.
- A wrong password fails on the check value, compared in constant time, before any entry is
  touched; the message does not say which part failed.
- The file is 0600 inside a 0700 folder (wider modes are refused with the chmod to run), every
  write is atomic (temp file, fsync, rename) after a backup of the previous file, and writers
  hold an exclusive lock, so two processes running `vault set` at once lose nothing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from lyra_governor.errors import VaultError
from lyra_governor.redact import install_redaction

FORMAT = "lyra-vault"
VERSION = 1
SCRYPT_N = int(os.environ.get("LYRA_VAULT_SCRYPT_N", str(2**15)))
NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-./")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError):
        raise VaultError(f"the vault is corrupted: {where} is not valid base64; restore the backup (.bak)") from None


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _sha(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()


def _check_name(name: str) -> None:
    if not name or len(name) > 200 or not set(name) <= NAME_OK or name.startswith("/"):
        raise VaultError(f"invalid secret name {name!r}; use lowercase names like exchange/binance/api_key")


# Fixed bounds for the scrypt parameters read from a file, checked before anything is derived:
# a tampered header must not make `open` allocate gigabytes or spin for minutes. 128 * n * r
# bytes is scrypt's memory; Lyra writes n = 2**15, r = 8, p = 1 (32 MiB).
KDF_N_MIN, KDF_N_MAX = 2**10, 2**20
KDF_R_MAX, KDF_P_MAX = 32, 16
KDF_MEMORY_MAX = 256 * 2**20
KDF_WORK_MAX = 2**24  # n * r * p
SALT_BYTES = (16, 64)


def check_kdf(kdf: Any, path: Path | None) -> None:
    """Raise `VaultError` (naming the parameter, never deriving) unless `kdf` is within bounds."""
    where, backup = (str(path), f"{path.name}.bak") if path else ("the vault", ".bak")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or not all(k in kdf for k in ("n", "r", "p", "salt")):
        raise VaultError(f"{where}: the key-derivation parameters are damaged; restore the backup ({backup})")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    problem = ""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        problem = "n, r and p must be whole numbers"
    elif not KDF_N_MIN <= n <= KDF_N_MAX or n & (n - 1):
        problem = f"n must be a power of two from 2**10 to 2**20, not {n}"
    elif not 1 <= r <= KDF_R_MAX:
        problem = f"r must be from 1 to {KDF_R_MAX}, not {r}"
    elif not 1 <= p <= KDF_P_MAX:
        problem = f"p must be from 1 to {KDF_P_MAX}, not {p}"
    elif 128 * n * r > KDF_MEMORY_MAX or n * r * p > KDF_WORK_MAX:
        problem = f"n={n}, r={r}, p={p} would need more than {KDF_MEMORY_MAX >> 20} MiB or too much work"
    else:
        salt = _unb64(kdf["salt"], "the key-derivation salt")
        if not SALT_BYTES[0] <= len(salt) <= SALT_BYTES[1]:
            problem = f"the salt must hold 16 to 64 bytes, not {len(salt)}"
    if problem:
        raise VaultError(
            f"{where}: the key-derivation parameters are out of bounds ({problem}): the header was altered or "
            f"damaged; nothing was derived; restore the backup ({backup})"
        )


class _Keys:
    def __init__(self, password: str, kdf: dict[str, Any]) -> None:
        check_kdf(kdf, None)
        salt = _unb64(kdf["salt"], "the key-derivation salt")
        master = Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(
            password.encode("utf-8")
        )

        def sub(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

        self.enc = AESGCM(sub(b"lyra-vault enc"))
        self.mac = sub(b"lyra-vault mac")
        self.check = hmac.new(sub(b"lyra-vault check"), b"lyra-vault password check", hashlib.sha256).hexdigest()


class Vault:
    def __init__(self, path: Path, password: str, doc: dict[str, Any], keys: _Keys) -> None:
        self.path = path
        self._password = password
        self._doc = doc
        self._keys = keys

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path | str, password: str) -> Vault:
        path = Path(path)
        if len(password) < 8:
            raise VaultError("the master password must have at least 8 characters")
        if path.exists():
            raise VaultError(f"{path} already exists; open it, or move it away to start a new vault")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        kdf = {"name": "scrypt", "n": SCRYPT_N, "r": 8, "p": 1, "salt": _b64(os.urandom(16))}
        keys = _Keys(password, kdf)
        doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kdf": kdf, "check": keys.check, "entries": []}
        vault = cls(path, password, doc, keys)
        with vault._locked():
            vault._write()
        return vault

    @classmethod
    def open(cls, path: Path | str, password: str) -> Vault:
        path = Path(path)
        doc = _read(path)
        keys = _Keys(password, doc["kdf"])
        if not hmac.compare_digest(keys.check, str(doc["check"])):
            # The check value is an HMAC keyed from the scrypt output, so it authenticates the
            # header: a changed salt, n, r, p or check fails here exactly like a wrong password.
            raise VaultError(
                f"wrong master password for {path} (or LYRA_VAULT_PASSWORD is wrong), or its header was altered: "
                f"if the password is right, restore the backup ({path.name}.bak)"
            )
        vault = cls(path, password, doc, keys)
        vault.verify()
        install_redaction(vault._values())
        return vault

    @classmethod
    def check_backup(cls, path: Path | str, password: str) -> str:
        """Verify the backup `vault verify` tells users to restore from; return what was checked.

        A backup written before `rotate` is sealed with the earlier password: its structure,
        digests and KDF bounds are checked, and the message says the rest needs that password.
        """
        path = Path(path)
        backup = path.with_name(path.name + ".bak")
        if not backup.exists():
            return f"no backup yet ({backup.name} is written before the next change)"
        try:
            doc = _read(backup)
            keys = _Keys(password, doc["kdf"])
            if not hmac.compare_digest(keys.check, str(doc["check"])):
                return (
                    f"backup {backup.name}: structure and digests intact; it is sealed with an earlier master "
                    "password (written before `vault rotate`), so its entries were not decrypted"
                )
            copy = cls(backup, password, doc, keys)
            copy.verify()
        except VaultError as exc:
            raise VaultError(
                f"the backup {backup} cannot restore this vault: {exc}; the vault itself is intact, so make a new "
                f"backup now: cp -p {path} {backup}"
            ) from None
        return f"backup {backup.name} intact: {len(copy.names())} secrets"

    # --- reading ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [str(e["name"]) for e in self._doc["entries"]]

    def get(self, name: str) -> str:
        for entry in self._doc["entries"]:
            if entry["name"] == name:
                return self._decrypt(entry)
        raise VaultError(f"no secret named {name!r} in the vault; add it with `lyra-governor vault set {name}`")

    def _decrypt(self, entry: dict[str, Any]) -> str:
        name = str(entry["name"])
        try:
            plain = self._keys.enc.decrypt(
                _unb64(entry["nonce"], f"entry {name!r}"), _unb64(entry["ct"], f"entry {name!r}"), name.encode("utf-8")
            )
        except InvalidTag:
            raise VaultError(
                f"the vault entry {name!r} is damaged or was tampered with; restore the backup (.bak) or set it again"
            ) from None
        return plain.decode("utf-8")

    def _values(self) -> list[str]:
        return [self._decrypt(e) for e in self._doc["entries"]]

    def verify(self) -> None:
        """Raise `VaultError` naming the first damaged part; return quietly when intact."""
        _check_digests(self.path, self._doc)
        for entry in self._doc["entries"]:
            self._decrypt(entry)
        if not hmac.compare_digest(self._mac(self._doc), str(self._doc.get("mac", ""))):
            raise VaultError(
                f"{self.path}: entries were added, removed or reordered since the vault was last "
                "written by Lyra; restore the backup (.bak)"
            )

    # --- writing ------------------------------------------------------------------------

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        if not value:
            raise VaultError(f"refusing to store an empty value for {name!r}")
        with self._locked():
            self._reload()
            nonce = os.urandom(12)
            ct = self._keys.enc.encrypt(nonce, value.encode("utf-8"), name.encode("utf-8"))
            entry = {"name": name, "nonce": _b64(nonce), "ct": _b64(ct)}
            entries = [e for e in self._doc["entries"] if e["name"] != name]
            entries.append(entry)
            self._doc["entries"] = sorted(entries, key=lambda e: str(e["name"]))
            self._write()
        install_redaction([value])

    def delete(self, name: str) -> None:
        with self._locked():
            self._reload()
            before = len(self._doc["entries"])
            self._doc["entries"] = [e for e in self._doc["entries"] if e["name"] != name]
            if len(self._doc["entries"]) == before:
                raise VaultError(f"no secret named {name!r} in the vault")
            self._write()

    def rotate(self, new_password: str) -> None:
        """Re-encrypt everything under a new master password (and current scrypt cost)."""
        if len(new_password) < 8:
            raise VaultError("the new master password must have at least 8 characters")
        with self._locked():
            self._reload()
            secrets = {str(e["name"]): self._decrypt(e) for e in self._doc["entries"]}
            kdf = {
                "name": "scrypt",
                "n": max(SCRYPT_N, int(self._doc["kdf"]["n"])),
                "r": 8,
                "p": 1,
                "salt": _b64(os.urandom(16)),
            }
            keys = _Keys(new_password, kdf)
            entries = []
            for name, value in sorted(secrets.items()):
                nonce = os.urandom(12)
                entries.append(
                    {
                        "name": name,
                        "nonce": _b64(nonce),
                        "ct": _b64(keys.enc.encrypt(nonce, value.encode(), name.encode())),
                    }
                )
            self._doc = {"format": FORMAT, "version": VERSION, "kdf": kdf, "check": keys.check, "entries": entries}
            self._keys, self._password = keys, new_password
            self._write()

    def _reload(self) -> None:
        """Re-read under the lock: another process may have written since we opened."""
        if self.path.exists():
            doc = _read(self.path)
            if not hmac.compare_digest(self._keys.check, str(doc["check"])):
                raise VaultError("the vault's master password was changed by another process; open it again")
            self._doc = doc

    def _mac(self, doc: dict[str, Any]) -> str:
        body = {k: doc[k] for k in ("format", "version", "kdf", "check")}
        body["entries"] = [{k: e[k] for k in ("name", "nonce", "ct")} for e in doc["entries"]]
        return hmac.new(self._keys.mac, _canonical(body), hashlib.sha256).hexdigest()

    def _write(self) -> None:
        doc = {k: self._doc[k] for k in ("format", "version", "kdf", "check", "entries")}
        doc["entries"] = [
            {**{k: e[k] for k in ("name", "nonce", "ct")}, "sha": _sha([e["name"], e["nonce"], e["ct"]])}
            for e in doc["entries"]
        ]
        doc["header_sha"] = _sha([doc["format"], doc["version"], doc["kdf"], doc["check"]])
        doc["mac"] = self._mac(doc)
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
        if self.path.exists():
            backup = self.path.with_name(self.path.name + ".bak")
            shutil.copyfile(self.path, backup)
            os.chmod(backup, 0o600)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        os.chmod(self.path, 0o600)
        self._doc = json.loads(data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _check_modes(path: Path) -> None:
    folder = path.parent
    for target, wanted in ((folder, 0o700), (path, 0o600)):
        mode = stat.S_IMODE(target.stat().st_mode)
        if mode & 0o077:
            raise VaultError(f"{target} is readable by others (mode {mode:o}); run: chmod {wanted:o} {target}")


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise VaultError(f"no vault at {path}; create one with `lyra-governor vault init` (or set LYRA_VAULT_PATH)")
    _check_modes(path)
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        where = getattr(exc, "pos", None)
        at = f" near byte {where}" if where is not None else ""
        raise VaultError(f"the vault file {path} is corrupted{at}; restore the backup ({path.name}.bak)") from None
    required = ("format", "version", "kdf", "check", "entries", "header_sha", "mac")
    if not isinstance(doc, dict) or any(k not in doc for k in required) or doc.get("format") != FORMAT:
        raise VaultError(
            f"{path} is not a Lyra vault or its structure is damaged; restore the backup ({path.name}.bak)"
        )
    if not isinstance(doc["entries"], list) or not all(
        isinstance(e, dict) and {"name", "nonce", "ct", "sha"} <= set(e) for e in doc["entries"]
    ):
        raise VaultError(f"{path}: the entry list is damaged; restore the backup ({path.name}.bak)")
    _check_digests(path, doc)
    check_kdf(doc["kdf"], path)
    return doc


def _check_digests(path: Path, doc: dict[str, Any]) -> None:
    """Name the damaged part (header or entry) from the plain SHA-256 digests."""
    if _sha([doc["format"], doc["version"], doc["kdf"], doc["check"]]) != doc.get("header_sha"):
        raise VaultError(
            f"{path}: the header (key-derivation parameters or password check) is damaged; "
            f"restore the backup ({path.name}.bak)"
        )
    for i, entry in enumerate(doc["entries"]):
        if _sha([entry["name"], entry["nonce"], entry["ct"]]) != entry.get("sha"):
            raise VaultError(
                f"{path}: entry {i + 1} ({str(entry.get('name'))[:60]!r}) is damaged; restore the "
                f"backup ({path.name}.bak) or set it again"
            )


def vault_path(settings: Any) -> Path:
    return Path(os.environ.get("LYRA_VAULT_PATH") or settings.vault_path)


def open_vault(settings: Any) -> Vault | None:
    """The configured vault, or None when there is none. A vault that exists but cannot be
    opened (no or wrong LYRA_VAULT_PASSWORD, damage) is an error, never silently skipped."""
    path = vault_path(settings)
    if not path.exists():
        return None
    password = os.environ.get("LYRA_VAULT_PASSWORD")
    if not password:
        raise VaultError(
            f"the vault {path} is locked; set LYRA_VAULT_PASSWORD (headless) or run the command interactively"
        )
    return Vault.open(path, password)
