"""Settings: embedded defaults, merged with conf/lyra_governor.yml, then LYRA_* variables.

Why it is built this way:
- Every section forbids unknown keys: a typo such as ``max_order_notinal_usd`` must not leave
  a limit at its default silently. The error names the file, the key and what is allowed.
- Slugs, weights and prompts of the council live in YAML (``defaults.yml``), not in code.
- Environment variables win over the file (``LYRA_DB_URL``, ``LYRA_RISK__PRICE_COLLAR_PCT``),
  which is how headless and Docker bots are configured.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from lyra_governor.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("conf/lyra_governor.yml")
PAPER_SUFFIX = "_paper_trade"
#: Governor-clock seconds between a bot's heartbeat writes; `risk.heartbeat_timeout_s` must
#: leave room for at least HEARTBEAT_MISSES_TOLERATED of them to be late or missed.
HEARTBEAT_INTERVAL_S = 15.0
HEARTBEAT_MISSES_TOLERATED = 3


class _Section(BaseModel):
    # allow_inf_nan=False: `inf` or `nan` in any number switches a limit off; refused everywhere.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class ExchangeSettings(_Section):
    ccxt_id: str | None = None
    hummingbot: bool = True
    pairs: list[str] = Field(default_factory=list)
    # spot fees in percent of notional, charged on every paper fill (the exchange's public rates)
    maker_fee_pct: float = Field(default=0.1, ge=0, le=5)
    taker_fee_pct: float = Field(default=0.1, ge=0, le=5)

    @field_validator("pairs")
    @classmethod
    def _pairs_are_base_quote(cls, pairs: list[str]) -> list[str]:
        for pair in pairs:
            parts = pair.split("-")
            if len(parts) != 2 or not all(p.isalnum() and p.isupper() for p in parts):
                raise ValueError("each pair must look like BASE-QUOTE in capitals, e.g. BTC-USDT")
        return pairs


class LadderSettings(_Section):
    paper_virtual_usd: Decimal = Field(default=Decimal("1000"), gt=0, le=Decimal(10**7))
    rungs_usd: list[Decimal] = Field(default_factory=lambda: [Decimal(x) for x in (100, 500, 1000, 2500)])
    full_capital_usd: Decimal = Field(default=Decimal("13947.76"), gt=0, le=Decimal(10**9))
    phase5_exchange_share: float = Field(default=0.35, gt=0, le=1)
    thresholds: dict[int, float] = Field(default_factory=lambda: {1: 0.70, 2: 0.75, 3: 0.80, 4: 0.85, 5: 0.90})
    paper_success_rate_min: float = Field(default=0.95, ge=0, le=1)
    rung_min_hours: float = Field(default=24, ge=0, le=24 * 90)

    @field_validator("rungs_usd")
    @classmethod
    def _rungs_ascending(cls, rungs: list[Decimal]) -> list[Decimal]:
        if not rungs or any(r <= 0 for r in rungs) or rungs != sorted(rungs):
            raise ValueError("rungs_usd must be a non-empty ascending list of positive amounts")
        return rungs

    @model_validator(mode="after")
    def _rungs_within_capital(self) -> LadderSettings:
        if self.rungs_usd and self.rungs_usd[-1] > self.full_capital_usd:
            raise ValueError("ladder.rungs_usd must not exceed ladder.full_capital_usd (the top rung is a share of it)")
        return self

    @field_validator("thresholds")
    @classmethod
    def _thresholds_per_phase(cls, thresholds: dict[int, float]) -> dict[int, float]:
        if sorted(thresholds) != [1, 2, 3, 4, 5]:
            raise ValueError("thresholds needs exactly the phases 1, 2, 3, 4 and 5")
        if any(not 0 < t <= 1 for t in thresholds.values()):
            raise ValueError("each threshold must be a fraction in (0, 1], e.g. 0.8 for 80 %")
        return thresholds


class BreakerSettings(_Section):
    """Deterministic circuit breakers (lyra_governor/breakers); defaults justified in defaults.yml."""

    storm_consecutive: int = Field(default=5, ge=2, le=100)
    storm_window_s: float = Field(default=300, ge=10, le=86_400)
    storm_rate: float = Field(default=0.5, gt=0, le=1)
    storm_min_samples: int = Field(default=10, ge=3, le=10_000)
    storm_cooldown_s: float = Field(default=300, ge=10, le=86_400)
    daily_loss_pct: float = Field(default=5.0, gt=0, le=50)
    drawdown_pct: float = Field(default=10.0, gt=0, le=50)
    duplicate_window_s: float = Field(default=1.0, ge=0.05, le=60)
    max_order_amount: dict[str, Decimal] = Field(default_factory=dict)
    exchange_order_rate_max: int = Field(default=50, ge=1, le=10_000)
    exchange_order_rate_window_s: float = Field(default=1.0, ge=0.1, le=60)

    @field_validator("max_order_amount")
    @classmethod
    def _amounts_positive(cls, amounts: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, amount in amounts.items():
            if not amount.is_finite() or amount <= 0:
                raise ValueError(f"breakers.max_order_amount.{key} must be a finite amount of base units above zero")
        return amounts

    def max_amount(self, trading_pair: str) -> Decimal | None:
        """The pair's own limit, else its base asset's (``BTC-USDT`` then ``BTC``)."""
        return self.max_order_amount.get(trading_pair) or self.max_order_amount.get(trading_pair.split("-", 1)[0])


class RiskSettings(_Section):
    price_collar_pct: float = Field(default=3.0, gt=0, le=20)
    max_order_notional_usd: Decimal = Field(default=Decimal("250"), gt=0, le=Decimal(1_000_000))
    order_rate_max: int = Field(default=20, ge=1, le=1000)
    order_rate_window_s: float = Field(default=1.0, ge=0.1, le=60)
    max_open_orders: int = Field(default=40, ge=1, le=1000)
    stale_price_s: float = Field(default=10, ge=0.5, le=120)
    future_tolerance_s: float = Field(default=2.0, ge=0, le=10)
    heartbeat_timeout_s: float = Field(default=120, ge=HEARTBEAT_INTERVAL_S * HEARTBEAT_MISSES_TOLERATED, le=3600)
    reference_window_s: float = Field(default=60, ge=10, le=3600)
    reference_min_history_s: float = Field(default=5, ge=2, le=600)
    fx_band_pct: float = Field(default=10.0, gt=0, le=50)
    close_tolerance_pct: float = Field(default=0.5, ge=0, le=5)

    @model_validator(mode="after")
    def _together(self) -> RiskSettings:
        if self.reference_min_history_s > self.reference_window_s:
            raise ValueError(
                "risk.reference_min_history_s must not exceed risk.reference_window_s "
                "(the history a reference needs cannot be longer than the window it is taken over)"
            )
        if self.future_tolerance_s > self.stale_price_s:
            raise ValueError("risk.future_tolerance_s must not exceed risk.stale_price_s")
        return self


class RoleSettings(_Section):
    name: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1)
    # Tried in order when `model` is gone from OpenRouter's catalogue or answers 404 (retired).
    fallbacks: list[str] = Field(default_factory=list, max_length=8)
    weight: float = Field(default=1.0, gt=0)
    # auto: json_schema where the catalogue lists structured_outputs, json_object elsewhere.
    response_format: Literal["auto", "json_schema", "json_object"] = "auto"
    prompt: str = Field(min_length=1)


class SentimentSettings(_Section):
    """Optional news input (lyra_governor.sentiment): data for the council, never a check."""

    enabled: bool = False
    jsonl: list[str] = Field(default_factory=list)  # JSONL files of headlines; "sample" = the shipped sample
    feeds: list[str] = Field(default_factory=list)  # RSS/Atom URLs or local files (feedparser)
    window_s: float = Field(default=21_600, gt=0)  # aggregate per asset over the last 6 h
    window_end: Literal["now", "latest"] = "now"  # latest: end the window at the newest headline (a static sample)
    min_headlines: int = Field(default=3, ge=1)  # fewer in the window: no score
    refresh_s: float = Field(default=300, gt=0)
    assets: dict[str, list[str]] = Field(default_factory=dict)  # asset -> words naming it; {} = built-in list


class ConsensusSettings(_Section):
    backend: Literal["local", "openrouter"] = "local"
    per_order: bool = False
    deadline_s: float = Field(default=8.0, gt=0, le=120)
    mandate_ttl_s: float = Field(default=900, gt=0, le=900)
    mandate_max_total_usd: Decimal = Field(default=Decimal("10000"), gt=0, le=Decimal(10**9))
    daily_budget_usd: float = Field(default=5.0, ge=0, le=1000)
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    catalogue_max_age_s: float = Field(default=3600, ge=0, le=7 * 86_400)  # how long a fetched model list is reused
    # Share of the voters' weight that must answer; below it the verdict is degraded and never PROCEED.
    quorum: float = Field(default=0.75, gt=0, le=1)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    roles: list[RoleSettings] = Field(default_factory=list)

    @field_validator("roles")
    @classmethod
    def _roles_unique(cls, roles: list[RoleSettings]) -> list[RoleSettings]:
        names = [r.name for r in roles]
        if len(set(names)) != len(names):
            raise ValueError("role names must be unique")
        if not 1 <= len(roles) <= 16:
            raise ValueError("the council needs between 1 and 16 roles (8 by design)")
        return roles


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=1, le=65535)
    # answers a second the server sends at the most (`GovernorServer.paced`); 0 = no limit
    max_answers_per_s: float = Field(default=300.0, ge=0, le=100_000)


class MqttSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    namespace: str = "hbot"
    # Hummingbot instance ids (conf_client.yml `instance_id`) that get the MQTT stop command on a
    # halt, besides the ones discovered from their heartbeats and Lyra presence messages.
    instance_ids: list[str] = Field(default_factory=list)
    discover_s: float = Field(default=1.0, ge=0, le=60)


class CommissioningSettings(_Section):
    """Commissioning runs and Phase-2 exchange validation (lyra_governor.commissioning)."""

    # Route every ccxt call to <url>/<real host>/<path> (a local fake exchange or a recording
    # proxy). null = the real exchanges: going live is removing this one line.
    exchange_api_url: str | None = None
    sandbox: bool = True  # use ccxt's sandbox/testnet where the exchange has one
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    min_exchanges: int = Field(default=5, ge=1)
    max_clock_skew_ms: float = Field(default=5000, gt=0, le=60_000)
    max_load_per_cpu: float = Field(default=0.9, gt=0, le=1000)  # tests on shared hosts switch the check off with 1000
    min_free_memory_pct: float = Field(default=10, ge=0, le=100)
    min_free_disk_gb: float = Field(default=1.0, ge=0, le=100_000)


class StoreSettings(_Section):
    """How long the order path may wait on the store: every store call of `review` is bounded
    by `budget_ms` (a held write lock is STORE_BUSY, a store that does not answer is
    STORE_UNAVAILABLE; see lyra_governor/store_budget.py)."""

    budget_ms: int = Field(default=200, ge=10, le=10_000)


class Settings(BaseSettings):
    """All of Lyra's settings. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="LYRA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    db_url: str = "sqlite:///data/lyra.db"
    data_dir: Path = Path("data")
    vault_path: Path = Path("data/vault/lyra.vault")
    fx_usd: dict[str, Decimal] = Field(default_factory=dict)
    exchanges: dict[str, ExchangeSettings] = Field(default_factory=dict)
    ladder: LadderSettings = Field(default_factory=LadderSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    commissioning: CommissioningSettings = Field(default_factory=CommissioningSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    # Not a setting: where these settings came from, for error messages and `status`.
    source: str = Field(default="<embedded defaults>", exclude=True)

    @field_validator("db_url")
    @classmethod
    def _supported_store(cls, url: str) -> str:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "sqlite":
            return url
        if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]  # the driver Lyra installs
        shown = f"'{scheme}'" if scheme.replace("+", "").isalnum() and len(scheme) <= 20 else "this URL"
        raise ValueError(
            f"Lyra cannot use {shown} as its store; it supports sqlite:///<path> (one host) and "
            "postgresql+psycopg://<user>@<host>/<database> (several hosts)"
        )

    @field_validator("fx_usd")
    @classmethod
    def _fx_positive(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, rate in rates.items():
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"fx_usd.{currency} must be a positive number of USD")
        return rates

    @model_validator(mode="after")
    def _quotes_have_rates(self) -> Settings:
        for name, exchange in self.exchanges.items():
            for pair in exchange.pairs:
                quote = pair.split("-")[1]
                if quote not in self.fx_usd:
                    raise ValueError(
                        f"exchanges.{name} trades {pair} but fx_usd has no rate for {quote}; add fx_usd.{quote}"
                    )
                if self.breakers.max_amount(pair) is None:
                    raise ValueError(
                        f"exchanges.{name} trades {pair} but breakers.max_order_amount has no limit for it; "
                        f"add breakers.max_order_amount.{pair.split('-')[0]} (base units per order)"
                    )
        if self.risk.max_order_notional_usd > self.ladder.full_capital_usd:
            raise ValueError("risk.max_order_notional_usd must not exceed ladder.full_capital_usd")
        if self.breakers.storm_min_samples < self.breakers.storm_consecutive:
            raise ValueError("breakers.storm_min_samples must be at least breakers.storm_consecutive")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: a LYRA_* variable overrides the YAML handed in as init kwargs.
        return (env_settings, init_settings)

    # --- derived helpers (pure) -------------------------------------------------------------

    @staticmethod
    def exchange_of(connector: str) -> str:
        """``binance_paper_trade`` -> ``binance``; ``binance`` -> ``binance``."""
        return connector[: -len(PAPER_SUFFIX)] if connector.endswith(PAPER_SUFFIX) else connector

    @staticmethod
    def is_paper(connector: str) -> bool:
        return connector.endswith(PAPER_SUFFIX)

    def threshold(self, phase: int) -> float:
        return self.ladder.thresholds[phase]

    @property
    def db_path(self) -> Path | None:
        """The SQLite file behind db_url, or None for another database."""
        prefix = "sqlite:///"
        return Path(self.db_url[len(prefix) :]) if self.db_url.startswith(prefix) else None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "exchanges":
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found; create it or point --config / LYRA_CONFIG elsewhere") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{label}: malformed YAML{where}: {problem}; fix the file's syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of settings, not {type(data).__name__}")
    return data


def _explain(exc: ValidationError, label: str) -> str:
    """One line per problem: file, dotted key, what is wrong and what is allowed."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "<top level>"
        kind = err["type"]
        if kind == "extra_forbidden":
            lines.append(f"{label}: unknown key '{key}'; remove it or fix its spelling (see conf/lyra_governor.yml)")
        else:
            # never the value itself: a mistyped key can hold a secret
            expected = _expected_range(err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{label}: '{key}': {message}{f'; expected {expected}' if expected else ''}")
    return "\n".join(lines)


def _explain_env(exc: SettingsError) -> str:
    """pydantic-settings could not parse a LYRA_* variable holding a whole section as JSON."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else None
    if field is None:
        return "a LYRA_* variable could not be parsed; check the variables that hold a section as JSON"
    var = f"LYRA_{field.upper()}"
    return (
        f"{var} is not a valid JSON object; give the section as JSON ({var}='{{\"key\": value}}') "
        f"or set one key at a time ({var}__<KEY>=value)"
    )


def _expected_range(loc: tuple[int | str, ...]) -> str:
    """'a finite number >= 45 and <= 3600' for a constrained field, '' when unknown."""
    model: Any = Settings
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            return ""
        field = fields[part]
        model = field.annotation
    if field is None:
        return ""
    bounds = []
    for meta in field.metadata:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, name, None)
            if value is not None:
                bounds.append(f"{sign} {value:g}" if isinstance(value, float | int) else f"{sign} {value}")
    if not bounds:
        return ""
    return "a finite number " + " and ".join(bounds)


def resolve_config_path(explicit: Path | str | None = None) -> Path | None:
    """--config, else LYRA_CONFIG, else ./conf/lyra_governor.yml when present, else none."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("LYRA_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(path: Path | str | None = None, *, use_env: bool = True, **overrides: Any) -> Settings:
    """Load and validate settings; raise `ConfigError` with a human message on any problem.

    `overrides` (nested dicts allowed) are merged last, for tests and for commands such as
    `paper` that run on their own store.
    """
    defaults = yaml.safe_load(resources.files("lyra_governor").joinpath("defaults.yml").read_text("utf-8"))
    config_path = resolve_config_path(path)
    data = defaults
    label = "<embedded defaults>"
    if config_path is not None:
        label = str(config_path)
        data = _deep_merge(defaults, _read_yaml(config_path, label))
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data) if use_env else Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, label + (" (or a LYRA_* variable)" if use_env else ""))) from None
    except SettingsError as exc:
        raise ConfigError(_explain_env(exc)) from None
    return settings.model_copy(update={"source": label})
