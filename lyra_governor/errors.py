"""Errors a user can cause and fix. The CLI prints their message (one sentence plus a way out)
and exits with their `exit_code`; it never shows a traceback for them."""

from __future__ import annotations


class LyraError(Exception):
    """Base for every error meant for a person: the message names the problem and a fix."""

    exit_code: int = 1


class ConfigError(LyraError):
    """The configuration file or a LYRA_* variable is malformed or out of range."""

    exit_code = 2


class StoreUnavailable(LyraError):
    """The ledger database cannot be reached or written."""

    exit_code = 3


class VaultError(LyraError):
    """The vault is missing, corrupted, has unsafe file modes, or the password is wrong."""

    exit_code = 4


class StoreDamaged(StoreUnavailable):
    """The store's file is damaged, is not a database, or is another application's database."""

    exit_code = 3
