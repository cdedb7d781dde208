"""Keep secrets out of logs, status output, reports and error messages.

`Redactor` replaces every known secret value (and strings shaped like API keys) with `***`.
`install_redaction` puts a filter on the root logger and its handlers, so any log record,
arguments and exception text included, is scrubbed before it is written anywhere. Opening the
vault installs it with the vault's values.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

MASK = "***"
# OpenRouter keys and long hex/base64 tokens that look like credentials
KEY_PATTERNS = [re.compile(r"sk-or-[A-Za-z0-9_-]{8,}"), re.compile(r"sk-[A-Za-z0-9]{20,}")]
MIN_SECRET_LEN = 4


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        self._values |= {v for v in values if v and len(v) >= MIN_SECRET_LEN}
        if self._values:
            ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial leaks
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        for pattern in KEY_PATTERNS:
            text = pattern.sub(MASK, text)
        return text


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.redact(text)
            record.exc_info = None
        return True


_GLOBAL = Redactor()
_FILTER = RedactingFilter(_GLOBAL)


def install_redaction(values: Iterable[str]) -> Redactor:
    """Add `values` to the process-wide redactor and make sure the root logger uses it."""
    _GLOBAL.add(values)
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    return _GLOBAL


SECRET_ENV_WORDS = ("KEY", "SECRET", "PASSWORD", "PASSPHRASE", "TOKEN", "CREDENTIAL")
MIN_ENV_SECRET_LEN = 8


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """Values of the variables whose names say they hold a secret (BINANCE_API_SECRET,
    LYRA_OPENROUTER_KEY1, LYRA_VAULT_PASSWORD, LYRA_SERVER_TOKEN, LYRA_SECRET_*)."""
    return [
        value
        for name, value in environ.items()
        if len(value) >= MIN_ENV_SECRET_LEN and any(word in name.upper() for word in SECRET_ENV_WORDS)
    ]


def redact(text: str) -> str:
    """Scrub `text` with everything installed so far (for CLI errors, reports, status)."""
    return _GLOBAL.redact(text)


class RedactingStream(io.TextIOBase):
    """A text stream that scrubs what it forwards, a line at a time (a secret never holds a
    newline, so no secret is ever split between two writes to the stream below)."""

    def __init__(self, inner: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        cut = self._pending.rfind("\n")
        if cut >= 0:
            done, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
            self.inner.write(self.redactor.redact(done))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            done, self._pending = self._pending, ""
            self.inner.write(self.redactor.redact(done))
        self.inner.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.inner.errors


def redact_standard_streams() -> None:
    """Route everything the process prints (rich output, errors, tracebacks) through the
    redactor. What must show a secret on purpose (`vault get --reveal`) writes to `raw_stdout`."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, _GLOBAL))
    atexit.register(_flush_standard_streams)


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def raw_stdout() -> TextIO:
    """The process's stdout below any redaction (for output that is the secret itself)."""
    stream = sys.stdout
    if isinstance(stream, RedactingStream):
        stream.flush()
        return stream.inner
    return stream
