"""Keep secrets out of logs, status output, reports and error messages.

`Redactor` replaces every known secret value (and strings shaped like API keys) with `***`.
`install_redaction` puts a filter on the root logger and its handlers, so any log record,
arguments and exception text included, is scrubbed before it is written anywhere. Opening the
vault installs it with the vault's values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

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


def redact(text: str) -> str:
    """Scrub `text` with everything installed so far (for CLI errors, reports, status)."""
    return _GLOBAL.redact(text)
