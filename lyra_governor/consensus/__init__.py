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


def health(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Extra council facts for `status` (no network): the news sentiment per asset when the
    feed is enabled, and each role's model as the cached OpenRouter catalogue last saw it."""
    import time

    from lyra_governor.consensus.catalogue import _read_cache, cache_path, resolve_roles
    from lyra_governor.sentiment import SentimentFeed

    out: dict[str, Any] = {}
    feed = SentimentFeed.from_settings(settings)
    if feed is not None:
        out["sentiment"] = feed.overview(time.time() if now is None else now)
    if settings.consensus.backend == "openrouter":
        cached = _read_cache(cache_path(settings))
        if cached is None:
            out["models"] = "no catalogue read yet: run `lyra-governor council models`"
        else:
            resolved = resolve_roles(settings, cached[0])
            out["models"] = {m.role: m.chosen or "GONE" for m in resolved}
            out["models_gone"] = [m.role for m in resolved if m.gone]
            out["catalogue_age_s"] = round(time.time() - cached[1])
    return out


__all__ = ["Council", "MandateBook", "health", "mandate_provider"]
