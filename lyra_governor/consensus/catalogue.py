"""OpenRouter's model catalogue (`GET /api/v1/models`): which slugs exist, what they cost,
what they support, and which model each council role will really use.

Why: slugs are retired as models are replaced and a retired slug answers 404. A council built
on stale slugs loses voters quietly until it can never reach its threshold. So each role has an
ordered fallback list in config, the catalogue picks the first slug that still exists, and
`council models`, `council check` and Phase-1 commissioning name a role whose slugs are all gone.

`parse_catalogue` and `resolve_role` are pure. `fetch_catalogue` / `load_catalogue` are the
adapters: one unauthenticated GET, cached in `<data_dir>/openrouter_models.json` so a restart
does not ask again within `consensus.catalogue_max_age_s`. When the catalogue cannot be had at
all, roles keep their configured order and a 404 at call time moves to the next fallback.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyra_governor.config import RoleSettings, Settings

CACHE_FILE = "openrouter_models.json"
FETCH_TIMEOUT_S = 5.0


class CatalogueError(Exception):
    """The catalogue could not be read (network, HTTP status, not the documented shape)."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    context_length: int
    prompt_usd_per_token: float | None  # None: not a fixed price (e.g. a router)
    completion_usd_per_token: float | None
    supported_parameters: frozenset[str]

    @property
    def structured_outputs(self) -> bool:
        """True when OpenRouter lists `structured_outputs` (a strict json_schema is honoured)."""
        return "structured_outputs" in self.supported_parameters

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prompt_usd_per_token is None or self.completion_usd_per_token is None:
            return None
        return prompt_tokens * self.prompt_usd_per_token + completion_tokens * self.completion_usd_per_token

    def per_million(self, which: str) -> float | None:
        price = self.prompt_usd_per_token if which == "prompt" else self.completion_usd_per_token
        return None if price is None else round(price * 1e6, 6)


@dataclass(frozen=True)
class Catalogue:
    models: Mapping[str, ModelInfo]
    fetched_at: float
    source: str

    def get(self, slug: str) -> ModelInfo | None:
        return self.models.get(slug)

    def cost_usd(self, slug: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        info = self.models.get(slug)
        return None if info is None else info.cost_usd(prompt_tokens, completion_tokens)


@dataclass(frozen=True)
class RoleModels:
    """Where one role stands against the catalogue."""

    role: str
    configured: str
    candidates: list[str]  # slugs to try, in order (all present in the catalogue when it is known)
    missing: list[str] = field(default_factory=list)  # configured slugs the catalogue does not list
    info: ModelInfo | None = None  # the chosen model's entry
    known: bool = True  # False: no catalogue, candidates are the configured order unchecked

    @property
    def chosen(self) -> str | None:
        return self.candidates[0] if self.candidates else None

    @property
    def gone(self) -> bool:
        return self.known and not self.candidates

    @property
    def state(self) -> str:
        if not self.known:
            return "unchecked"
        if self.gone:
            return "gone"
        return "ok" if self.chosen == self.configured else "fallback"

    def response_format(self, configured: str) -> str:
        """json_schema only where the catalogue lists structured outputs; json_object otherwise
        (the answer is validated strictly either way)."""
        if configured == "json_object":
            return "json_object"
        if self.info is not None:
            return "json_schema" if self.info.structured_outputs else "json_object"
        return "json_schema" if configured == "json_schema" else "json_object"

    def describe(self) -> str:
        if self.state == "gone":
            return (
                f"role {self.role}: {', '.join(self.missing)} all gone from OpenRouter's catalogue; "
                f"set consensus.roles[{self.role}].model or add a fallback that `lyra-governor council models` lists"
            )
        if self.state == "fallback":
            return f"role {self.role}: {', '.join(self.missing)} retired, using fallback {self.chosen}"
        if self.state == "unchecked":
            return f"role {self.role}: catalogue unavailable, trying {', '.join(self.candidates)} in order"
        return f"role {self.role}: {self.chosen}"


def _price(value: Any) -> float | None:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if math.isfinite(price) and price >= 0 else None  # "-1": variable (a router)


def parse_catalogue(data: Any) -> dict[str, ModelInfo]:
    """The documented `{"data": [model, ...]}` shape; entries without a string id are skipped."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CatalogueError('the catalogue is not {"data": [...]}')
    models: dict[str, ModelInfo] = {}
    for entry in data["data"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            continue
        raw_pricing = entry.get("pricing")
        pricing: dict[str, Any] = raw_pricing if isinstance(raw_pricing, dict) else {}
        params = entry.get("supported_parameters")
        context = entry.get("context_length")
        info = ModelInfo(
            id=entry["id"],
            name=str(entry.get("name") or entry["id"]),
            context_length=int(context) if isinstance(context, int | float) and context > 0 else 0,
            prompt_usd_per_token=_price(pricing.get("prompt")),
            completion_usd_per_token=_price(pricing.get("completion")),
            supported_parameters=frozenset(p for p in params if isinstance(p, str)) if isinstance(params, list) else
            frozenset(),
        )  # fmt: skip
        models[info.id] = info
    return models


def role_slugs(role: RoleSettings) -> list[str]:
    """The role's model then its fallbacks, each once, in order."""
    out: list[str] = []
    for slug in (role.model, *role.fallbacks):
        if slug not in out:
            out.append(slug)
    return out


def resolve_role(role: RoleSettings, catalogue: Catalogue | None) -> RoleModels:
    slugs = role_slugs(role)
    if catalogue is None:
        return RoleModels(role=role.name, configured=role.model, candidates=slugs, known=False)
    present = [s for s in slugs if catalogue.get(s) is not None]
    missing = [s for s in slugs if catalogue.get(s) is None]
    info = catalogue.get(present[0]) if present else None
    return RoleModels(role=role.name, configured=role.model, candidates=present, missing=missing, info=info)


def resolve_roles(settings: Settings, catalogue: Catalogue | None) -> list[RoleModels]:
    return [resolve_role(role, catalogue) for role in settings.consensus.roles]


# --- adapters --------------------------------------------------------------------------------


def cache_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / CACHE_FILE


def fetch_catalogue(base_url: str, timeout_s: float = FETCH_TIMEOUT_S) -> tuple[Catalogue, Any]:
    """GET <base>/models (no key needed). Returns the catalogue and the raw document."""
    import httpx  # here: `status` reads the cached catalogue through this module, never the network

    url = base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, timeout=timeout_s, headers={"X-Title": "Lyra governor"})
    except httpx.HTTPError as exc:
        raise CatalogueError(f"{url} not reachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise CatalogueError(f"{url} answered HTTP {response.status_code}")
    try:
        raw = response.json()
    except ValueError:
        raise CatalogueError(f"{url} did not answer JSON") from None
    return Catalogue(parse_catalogue(raw), time.time(), url), raw


def _read_cache(path: Path) -> tuple[Catalogue, float] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        fetched = float(doc["fetched_at"])
        return Catalogue(parse_catalogue(doc["catalogue"]), fetched, f"{path} (cached)"), fetched
    except (OSError, ValueError, KeyError, TypeError, CatalogueError):
        return None


def _write_cache(path: Path, raw: Any, fetched_at: float) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fetched_at": fetched_at, "catalogue": raw}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache we cannot write only costs one more GET next time


def load_catalogue(settings: Settings, *, refresh: bool = False) -> tuple[Catalogue | None, str]:
    """(catalogue or None, a sentence on where it came from or why there is none).

    A fresh cache wins unless `refresh`; else one GET; if that fails a stale cache is better
    than nothing (retired slugs still 404 and fall back at call time)."""
    path = cache_path(settings)
    cached = _read_cache(path)
    max_age = settings.consensus.catalogue_max_age_s
    if cached is not None and not refresh and time.time() - cached[1] <= max_age:
        return cached[0], f"cached catalogue from {path}"
    try:
        catalogue, raw = fetch_catalogue(settings.consensus.openrouter_base_url)
    except CatalogueError as exc:
        if cached is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(cached[1]))
            return cached[0], f"{exc}; using the cached catalogue from {when} UTC"
        return None, str(exc)
    _write_cache(path, raw, catalogue.fetched_at)
    return catalogue, f"{len(catalogue.models)} models from {catalogue.source}"
