"""`status`, `phase`, `halt`, `resume`, `promote`, `demote` as an operator types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from tests.e2e.operator.conftest import no_traceback, run_cli

REQUIRED = ("phase", "rung", "halted", "deployed_usd", "reserved_usd", "cap_usd", "exchanges", "council", "audit_ok")


def _json(result: object) -> dict:  # type: ignore[type-arg]
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1])


def _ledger(home: Path) -> Ledger:
    return Ledger.open(load_settings(None, use_env=False, db_url=f"sqlite:///{home / 'lyra.db'}"))


@pytest.mark.timeout(120)
def test_status_on_a_fresh_store(lyra_home: Path) -> None:
    table = run_cli(lyra_home, "status")
    assert table.returncode == 0, table.stderr
    no_traceback(table)
    for words in ("Phase 1", "ACTIVE", "binance", "checkpoints", "audit chain", "intact", "council local"):
        assert words in table.stdout
    result = run_cli(lyra_home, "status", "--json")
    assert result.returncode == 0, result.stderr
    s = _json(result)
    for key in REQUIRED:
        assert key in s
    assert s["phase"] == 1 and s["halted"] is False and s["rung"] is None and s["audit_ok"] is True
    assert s["cap_usd"] == 0.0 and set(s["exchanges"]) >= {"binance", "okx", "kraken"}
    assert s["council"]["voters"] == 8 and s["council"]["voters_up"] == "unknown"
    assert "commission --phase 1" in s["promotion"]["blockers"][0]


@pytest.mark.timeout(120)
def test_halt_then_resume_is_audited_and_visible(lyra_home: Path) -> None:
    halted = run_cli(lyra_home, "halt", "--reason", "exchange outage", "--actor", "alice")
    assert halted.returncode == 0, halted.stderr
    assert "HALTED" in halted.stdout and "mqtt.enabled is false" in halted.stdout
    s = _json(run_cli(lyra_home, "status", "--json"))
    assert s["halted"] is True and s["trading_state"] == "HALTED" and s["reason"] == "exchange outage"
    again = run_cli(lyra_home, "resume", "--actor", "alice", "--json")
    assert again.returncode == 0 and _json(again) == {"mqtt": None, "resumed": True, "trading_state": "ACTIVE"}
    assert _json(run_cli(lyra_home, "resume", "--json"))["resumed"] is False  # nothing to resume
    ledger = _ledger(lyra_home)
    try:
        events = [(r.event, r.actor, r.payload.get("reason")) for r in audit.tail(ledger.engine, 10)]
        assert ("halt", "alice", "exchange outage") in events
        assert ("resume", "alice", "operator resumed") in events
        assert audit.verify(ledger.engine).ok
    finally:
        ledger.close()


@pytest.mark.timeout(120)
def test_promote_refuses_naming_the_missing_evidence_then_promotes(lyra_home: Path) -> None:
    refused = run_cli(lyra_home, "promote")
    assert refused.returncode == 1
    no_traceback(refused)
    assert "promotion refused" in refused.stderr
    assert "commission --phase 1" in refused.stderr and "council was not asked" in refused.stderr
    ledger = _ledger(lyra_home)
    try:
        ledger.record_evidence("phase1", {"checks": "all passed"}, True, "test")
    finally:
        ledger.close()
    phase = _json(run_cli(lyra_home, "phase", "--json"))
    assert phase["phase"] == 1 and phase["promotion"]["evidence_ready"] is True
    promoted = run_cli(lyra_home, "promote", "--json")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    body = _json(promoted)
    assert body["promoted"] is True and body["phase"] == 2 and body["consensus"]["verdict"] == "PROCEED"
    demoted = run_cli(lyra_home, "demote", "--reason", "step back")
    assert demoted.returncode == 0 and "phase 2 -> 1" in demoted.stdout
    ledger = _ledger(lyra_home)
    try:
        events = [r.event for r in audit.tail(ledger.engine, 20)]
        assert events.count("promote_refused") == 1 and "promote" in events and "council_verdict" in events
        assert "demote" in events and ledger.state().phase == 1
    finally:
        ledger.close()


@pytest.mark.timeout(120)
def test_phase4_rungs_demote_and_drill(lyra_home: Path) -> None:
    ledger = _ledger(lyra_home)
    try:
        ledger.set_phase(4, "test", "live at the first rung")
    finally:
        ledger.close()
    s = _json(run_cli(lyra_home, "status", "--json"))
    assert s["phase"] == 4 and s["rung"] == 1 and s["exchanges"]["binance"]["cap_usd"] == 100.0
    blockers = " ".join(s["promotion"]["blockers"])
    assert "drill" in blockers and "needs 24 h" in blockers
    drill = run_cli(lyra_home, "halt", "--drill")
    assert drill.returncode == 0 and "drill passed" in drill.stdout
    s = _json(run_cli(lyra_home, "status", "--json"))
    assert s["halted"] is False and s["evidence"]["drill"]["passed"] is True
    assert "drill" not in " ".join(s["promotion"]["blockers"])
    bad = run_cli(lyra_home, "demote", "--exchange", "nowhere")
    assert bad.returncode == 1 and "unknown exchange 'nowhere'" in bad.stderr
    no_traceback(bad)


@pytest.mark.timeout(60)
def test_watch_refreshes_and_user_mistakes_are_one_line(lyra_home: Path) -> None:
    watched = run_cli(lyra_home, "status", "--watch", "--json", "--interval", "0.1", "--iterations", "3")
    assert watched.returncode == 0, watched.stderr
    ticks = [json.loads(line) for line in watched.stdout.strip().splitlines()]
    assert len(ticks) == 3 and ticks[0]["generated_at"] < ticks[2]["generated_at"]
    tables = run_cli(lyra_home, "status", "--watch", "--interval", "0.1", "--iterations", "2")
    assert tables.returncode == 0 and tables.stdout.count("capital per exchange") == 2
    (lyra_home / "bad.yml").write_text("risk:\n  max_order_notinal_usd: 5\n")
    bad = run_cli(lyra_home, "--config", "bad.yml", "status")
    assert bad.returncode == 2 and "unknown key 'risk.max_order_notinal_usd'" in bad.stderr
    no_traceback(bad)
    dead = run_cli(lyra_home, "halt", LYRA_DB_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert dead.returncode == 3 and "unavailable" in dead.stderr
    no_traceback(dead)


@pytest.mark.timeout(60)
def test_council_health_with_openrouter_keys_and_budget(lyra_home: Path) -> None:
    import datetime as dt

    data = lyra_home / "data"
    data.mkdir()
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    (data / "openrouter_spend.json").write_text(json.dumps({today: 0.42}))
    keys = {f"LYRA_OPENROUTER_KEY{i}": f"sk-or-test-{i}-secret" for i in (1, 2, 3)}
    result = run_cli(lyra_home, "status", "--json", LYRA_CONSENSUS__BACKEND="openrouter", **keys)
    assert result.returncode == 0, result.stderr
    council = _json(result)["council"]
    assert council["backend"] == "openrouter" and council["keys_left"] == 3 and council["spend_today_usd"] == 0.42
    assert "secret" not in result.stdout  # key values never appear, only how many there are
    table = run_cli(lyra_home, "status", LYRA_CONSENSUS__BACKEND="openrouter", **keys)
    assert "keys left 3" in table.stdout and "0.4200 / 5 USD" in table.stdout and "secret" not in table.stdout
