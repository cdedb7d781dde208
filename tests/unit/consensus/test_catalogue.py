"""The model catalogue (pure part): parsing the documented /models shape, resolving each role's
slug and fallbacks, prices, structured outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lyra_governor.config import RoleSettings, Settings
from lyra_governor.consensus.catalogue import Catalogue, CatalogueError, parse_catalogue, resolve_role, resolve_roles

RECORDED = Path(__file__).parents[2] / "e2e" / "consensus" / "data" / "openrouter_models.json"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue(parse_catalogue(json.loads(RECORDED.read_text())), 0.0, "recorded")


def role(model: str, *fallbacks: str, response_format: str = "auto") -> RoleSettings:
    return RoleSettings(
        name="risk_assessor", model=model, fallbacks=list(fallbacks), response_format=response_format, prompt="p"
    )  # type: ignore[arg-type]


def test_recorded_catalogue_parses(catalogue: Catalogue) -> None:
    assert len(catalogue.models) >= 40
    sonnet = catalogue.get("anthropic/claude-sonnet-4.5")
    assert sonnet is not None and sonnet.context_length == 1_000_000
    assert sonnet.per_million("prompt") == 3.0 and sonnet.per_million("completion") == 15.0
    assert sonnet.structured_outputs
    llama = catalogue.get("meta-llama/llama-3.3-70b-instruct")
    assert llama is not None and not llama.structured_outputs
    auto = catalogue.get("openrouter/auto")  # "-1": a router's price is not fixed
    assert auto is not None and auto.prompt_usd_per_token is None and auto.cost_usd(10, 10) is None
    assert catalogue.get("google/gemini-pro-1.5") is None  # retired: absent from the recorded list


def test_defaults_all_resolve_to_their_primary(catalogue: Catalogue, settings: Settings) -> None:
    resolved = resolve_roles(settings, catalogue)
    assert [m.state for m in resolved] == ["ok"] * 8
    # some configured fallbacks are already retired (absent), which changes nothing while the primary lives
    assert any(m.missing for m in resolved)


def test_stale_slug_falls_back_in_order(catalogue: Catalogue) -> None:
    stale = role("anthropic/claude-3.5-sonnet", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4")
    m = resolve_role(stale, catalogue)
    assert m.state == "fallback" and m.chosen == "anthropic/claude-sonnet-4.5"
    assert m.missing == ["anthropic/claude-3.5-sonnet"]
    assert m.candidates == ["anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4"]
    assert "retired, using fallback anthropic/claude-sonnet-4.5" in m.describe()


def test_all_gone_names_the_role(catalogue: Catalogue) -> None:
    m = resolve_role(role("google/gemini-pro-1.5", "microsoft/wizardlm-2-8x22b"), catalogue)
    assert m.gone and m.chosen is None
    assert "role risk_assessor" in m.describe() and "gemini-pro-1.5, microsoft/wizardlm-2-8x22b" in m.describe()


def test_without_a_catalogue_the_configured_order_stands() -> None:
    m = resolve_role(role("a/b", "c/d", "a/b"), None)
    assert m.state == "unchecked" and not m.gone and m.candidates == ["a/b", "c/d"]


def test_response_format_follows_structured_outputs(catalogue: Catalogue) -> None:
    assert resolve_role(role("openai/gpt-5.1"), catalogue).response_format("auto") == "json_schema"
    assert resolve_role(role("meta-llama/llama-3.3-70b-instruct"), catalogue).response_format("json_schema") == (
        "json_object"
    )
    assert resolve_role(role("openai/gpt-5.1"), catalogue).response_format("json_object") == "json_object"
    assert resolve_role(role("x/y"), None).response_format("auto") == "json_object"


def test_catalogue_prices_a_call(catalogue: Catalogue) -> None:
    # 420 prompt + 35 completion tokens on GPT-5.1 at $1.25 / $10 per million tokens
    assert catalogue.cost_usd("openai/gpt-5.1", 420, 35) == pytest.approx(420 * 1.25e-6 + 35 * 10e-6)
    assert catalogue.cost_usd("no/such-model", 1, 1) is None


def test_bad_shapes() -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue([{"id": "x"}])
    models = parse_catalogue({"data": [{"id": 3}, "junk", {"id": "a/b", "pricing": "free", "context_length": -1}]})
    assert list(models) == ["a/b"] and models["a/b"].context_length == 0 and models["a/b"].prompt_usd_per_token is None
