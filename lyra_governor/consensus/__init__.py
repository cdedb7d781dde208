"""The AI council: eight roles, local or OpenRouter voters, emergency rules, mandates.

Public API: `Council.from_settings(settings, vault=None)` (`decide`, `adecide`) and
`mandate_provider(settings, vault=None)`, the governor's default `MandateProvider`.
"""

from __future__ import annotations

from typing import Any

from lyra_governor.config import Settings
from lyra_governor.consensus.council import Council
from lyra_governor.consensus.mandates import MandateBook


def mandate_provider(settings: Settings, vault: Any = None) -> MandateBook:
    """The governor's default provider: a `MandateBook` over the configured council."""
    return MandateBook(settings, Council.from_settings(settings, vault))


__all__ = ["Council", "MandateBook", "mandate_provider"]
