"""`lyra-governor orphans list|release`, `resume --bot` and the orphaned capital in `status`
(issue 14 hole 7), through the real CLI app on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lyra_governor.cli.app import app
from lyra_governor.config import Settings
from lyra_governor.governor import Governor

from .conftest import EnvelopeMandates, FakeClock, allowed


def test_an_operator_lists_and_releases_a_silent_bots_capital(
    settings: Settings, clock: FakeClock, propose: object, lyra_home: Path
) -> None:
    dead = Governor.from_settings(settings, "bot-dead", mandates=EnvelopeMandates(), clock=clock)
    dead.ledger.set_phase(3, "test", "paper")
    assert allowed(dead, propose(bot_id="bot-dead")).allowed  # type: ignore[operator]
    clock.advance(settings.risk.heartbeat_timeout_s + 10)
    alive = Governor.from_settings(settings, "bot-alive", mandates=EnvelopeMandates(), clock=clock)
    alive.heartbeat()
    dead.close()
    alive.close()
    conf = lyra_home / "lyra.yml"
    conf.write_text(yaml.safe_dump({"db_url": settings.db_url, "data_dir": str(lyra_home)}))
    runner = CliRunner()
    listed = runner.invoke(app, ["--config", str(conf), "orphans", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)
    assert found["orphaned_usd"] > 59 and [r["bot_id"] for r in found["reservations"]] == ["bot-dead"]
    status = runner.invoke(app, ["--config", str(conf), "status", "--json"])
    assert '"orphaned_usd"' in status.output
    refused = runner.invoke(app, ["--config", str(conf), "orphans", "release", "--bot", "bot-dead"])
    assert refused.exit_code == 2 and "--exchange-checked" in refused.output
    released = runner.invoke(
        app, ["--config", str(conf), "orphans", "release", "--bot", "bot-dead", "--exchange-checked", "--json"]
    )
    assert released.exit_code == 0, released.output
    assert len(json.loads(released.output)["released"]) == 1
    after = runner.invoke(app, ["--config", str(conf), "orphans", "list", "--json"])
    assert json.loads(after.output) == {"orphaned_usd": 0.0, "reservations": []}
    resumed = runner.invoke(app, ["--config", str(conf), "resume", "--bot", "bot-dead", "--json"])
    assert resumed.exit_code == 0 and json.loads(resumed.output)["resumed"] is False
