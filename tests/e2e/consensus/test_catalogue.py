"""The model catalogue end to end against the fake OpenRouter's recorded /models list:
`council models`, stale slugs falling back (from the catalogue and from a 404 at call time),
`council check` and Phase 1 failing a role whose slugs are all gone, catalogue pricing, and
402 reported as billing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lyra_governor.commissioning.phase1 import collect_phase1, phase1_checks
from lyra_governor.config import Settings, load_settings
from lyra_governor.consensus import Council
from lyra_governor.consensus.catalogue import cache_path
from lyra_governor.models import CouncilContext, Verdict

from .fake_openrouter import Behaviour, FakeOpenRouter

EXE = Path(sys.executable).with_name("lyra-governor")
RISK = ["anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4", "anthropic/claude-3.7-sonnet"]


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYRA_OPENROUTER_KEY1", "sk-or-test-key-one")
    monkeypatch.setenv("LYRA_OPENROUTER_KEY2", "sk-or-test-key-two")


def or_settings(home: Path, fake: FakeOpenRouter, **consensus: object) -> Settings:
    return load_settings(
        None,
        use_env=False,
        db_url=f"sqlite:///{home / 'lyra.db'}",
        data_dir=str(home),
        consensus={"backend": "openrouter", "openrouter_base_url": fake.base_url, "deadline_s": 3.0, **consensus},
    )


def write_config(home: Path, fake: FakeOpenRouter) -> Path:
    path = home / "conf" / "lyra_governor.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "db_url": f"sqlite:///{home / 'lyra.db'}",
                "data_dir": str(home / "data"),
                "consensus": {"backend": "openrouter", "openrouter_base_url": fake.base_url, "deadline_s": 3.0},
            }
        )
    )
    return path


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER"))}
    env["LYRA_OPENROUTER_KEY1"] = "sk-or-cli-key"
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, cwd=home, env=env, timeout=120, check=False
    )


def test_council_models_cli_shows_a_stale_slug_falling_back(lyra_home: Path, fake: FakeOpenRouter) -> None:
    write_config(lyra_home, fake)
    done = cli(lyra_home, "council", "models", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["models_listed"] >= 40
    roles = {r["role"]: r for r in report["roles"]}
    assert all(r["state"] == "ok" for r in roles.values())
    gpt = roles["primary_analyst"]
    assert gpt["model"] == "openai/gpt-5.1" and gpt["context_length"] == 400_000
    assert gpt["prompt_usd_per_mtok"] == 1.25 and gpt["completion_usd_per_mtok"] == 10.0
    assert gpt["structured_outputs"] is True and gpt["response_format"] == "json_schema"
    assert roles["technical_validator"]["structured_outputs"] is False
    assert roles["technical_validator"]["response_format"] == "json_object"
    assert "google/gemini-pro-1.5" in roles["market_analyst"]["missing"]  # a configured slug already retired

    fake.retire(RISK[0])  # Anthropic retires the primary: the role moves to its first fallback
    done = cli(lyra_home, "council", "models", "--json")
    assert done.returncode == 0, done.stdout
    risk = {r["role"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])["roles"]}["risk_assessor"]
    assert risk["state"] == "fallback" and risk["model"] == RISK[1] and RISK[0] in risk["missing"]
    table = cli(lyra_home, "council", "models")
    assert table.returncode == 0 and "fallback" in table.stdout and "risk_assessor" in table.stdout


def test_a_role_with_every_slug_gone_fails_models_and_check(lyra_home: Path, fake: FakeOpenRouter) -> None:
    write_config(lyra_home, fake)
    fake.retire(*RISK)
    done = cli(lyra_home, "council", "models", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["gone"] == ["risk_assessor"] and not report["ok"]
    check = cli(lyra_home, "council", "check", "--json")
    assert check.returncode == 1, check.stdout
    result = json.loads(check.stdout.strip().splitlines()[-1])
    assert any("role risk_assessor" in line for line in result["models_gone"])
    ballot = {m["role"]: m for m in result["models"]}["risk_assessor"]
    assert ballot["error_kind"] == "model_gone" and not ballot["answered"]
    assert RISK[0] not in {r["model"] for r in fake.calls()}  # a gone model is not even called
    text = cli(lyra_home, "council", "check")
    assert text.returncode == 1 and "role risk_assessor" in text.stdout


def test_models_cli_without_a_catalogue_is_a_clear_error(lyra_home: Path, fake: FakeOpenRouter) -> None:
    write_config(lyra_home, fake)
    fake.catalogue_status = 503
    done = cli(lyra_home, "council", "models")
    assert done.returncode == 1 and "cannot read OpenRouter's model list" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_404_at_call_time_moves_to_the_next_fallback(lyra_home: Path, fake: FakeOpenRouter, keys: None) -> None:
    settings = or_settings(lyra_home, fake)
    Council.from_settings(settings)  # fetches and caches the catalogue (the primary is still listed)
    assert cache_path(settings).exists() and fake.catalogue_gets == 1
    fake.retire(RISK[0])  # retired after the cache was written: the cached list is stale
    council = Council.from_settings(settings)
    assert fake.catalogue_gets == 1  # the fresh cache is reused, no second GET
    result = council.decide(CouncilContext(phase=3, question="health", now=time.time()))
    ballot = {b.role: b for b in result.ballots}["risk_assessor"]
    assert ballot.answered and ballot.model == RISK[1]
    assert [r["model"] for r in fake.calls() if r["model"].startswith("anthropic/")] == RISK[:2]
    assert result.response_rate == 1.0 and result.verdict is Verdict.PROCEED


def test_cost_comes_from_catalogue_prices_when_usage_has_none(
    lyra_home: Path, fake: FakeOpenRouter, keys: None
) -> None:
    fake.default = Behaviour(cost=None)
    settings = or_settings(lyra_home, fake)
    result = Council.from_settings(settings).decide(CouncilContext(phase=3, question="health", now=time.time()))
    prices = {m["id"]: m["pricing"] for m in fake.catalogue["data"]}  # type: ignore[index]
    expected = {
        b.model: 420 * float(prices[b.model]["prompt"]) + 35 * float(prices[b.model]["completion"])
        for b in result.ballots
    }
    assert {b.model: b.cost_usd for b in result.ballots} == pytest.approx(expected)
    assert result.cost_usd == pytest.approx(sum(expected.values())) and result.cost_usd > 0.005
    spend = json.loads((lyra_home / "openrouter_spend.json").read_text())
    assert sum(spend.values()) == pytest.approx(sum(expected.values()))  # the daily budget counts it


def test_402_is_billing_not_a_dead_model_and_the_council_is_degraded(
    lyra_home: Path, fake: FakeOpenRouter, keys: None
) -> None:
    fake.default = Behaviour(status=402, fail_times=1000)
    result = Council.from_settings(or_settings(lyra_home, fake)).decide(
        CouncilContext(phase=3, question="health", now=time.time())
    )
    assert {b.error_kind for b in result.ballots} == {"billing"}
    assert all("billing" in (b.error or "") and "model is fine" in (b.error or "") for b in result.ballots)
    assert result.degraded and result.verdict is Verdict.HOLD_OR_INVESTIGATE
    assert any("degraded" in r and "(billing)" in r for r in result.reasons)


def test_phase1_fails_the_role_whose_models_are_gone(lyra_home: Path, fake: FakeOpenRouter, keys: None) -> None:
    fake.retire(*RISK)
    settings = or_settings(lyra_home, fake)
    facts = collect_phase1(settings, Council.from_settings(settings), now=time.time())
    checks = {c.name: c for c in phase1_checks(facts, settings)}
    assert not checks["council models"].passed
    assert "role risk_assessor" in checks["council models"].detail
    local = load_settings(None, use_env=False, db_url=f"sqlite:///{lyra_home / 'l.db'}", data_dir=str(lyra_home))
    facts = collect_phase1(local, Council.from_settings(local), now=time.time())
    assert {c.name: c for c in phase1_checks(facts, local)}["council models"].passed


def test_a_404_for_the_schema_is_not_a_retired_model(lyra_home: Path, fake: FakeOpenRouter, keys: None) -> None:
    fake.behaviour[RISK[0]] = Behaviour(no_schema_provider=True)
    result = Council.from_settings(or_settings(lyra_home, fake)).decide(
        CouncilContext(phase=3, question="health", now=time.time())
    )
    ballot = {b.role: b for b in result.ballots}["risk_assessor"]
    assert ballot.answered and ballot.model == RISK[0]  # still the primary, asked again in json_object
    kinds = [r["body"]["response_format"]["type"] for r in fake.calls(RISK[0])]
    assert kinds == ["json_schema", "json_object"] and not fake.calls(RISK[1])
