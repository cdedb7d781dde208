"""`audit verify` and the ledger check read one snapshot, up to the head they read: with bots
writing all the while, a concurrent verifier never reports a false alarm, on SQLite and on
PostgreSQL (before, PostgreSQL gave 'the chain holds 3432 records but its head says 3420')."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyra_governor import audit
from lyra_governor.config import load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.store import read_tx
from tests.e2e.failure.conftest import EXE, cli_env

WORKER = Path(__file__).resolve().parents[1] / "core" / "hammer_worker.py"


def _verify_while_bots_write(db_url: str, home: Path) -> None:
    ledger = Ledger.open(load_settings(None, use_env=False, db_url=db_url))
    ledger.set_phase(3, "test", "verify under load")
    bots = [
        subprocess.Popen([sys.executable, str(WORKER), db_url, f"bot-{i}", "150", str(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    cli = [EXE, "audit", "verify", "--json"]
    alarms: list[str] = []
    checks = cli_checks = 0
    try:
        while any(b.poll() is None for b in bots) or checks < 5:
            with read_tx(ledger.engine) as snapshot:  # what `audit verify` does, as fast as it can
                result = audit.verify(ledger.engine, conn=snapshot)
                totals_ok, detail = ledger.totals_agree(snapshot)
            checks += 1
            if not result.ok:
                alarms.append(result.problem)
            if not totals_ok:
                alarms.append(detail)
            if cli_checks < 2 and result.count > 50:  # and the command itself, mid-run
                out = subprocess.run(cli, capture_output=True, text=True, env=cli_env(home, LYRA_DB_URL=db_url),
                                     cwd=home, timeout=120, check=False)  # fmt: skip
                cli_checks += 1
                verdict = json.loads(out.stdout.strip().splitlines()[-1])
                if not verdict["ok"]:
                    alarms.append(f"CLI: {verdict['problem'] or verdict['ledger_totals']}")
            time.sleep(0.01)
    finally:
        for bot in bots:
            _, err = bot.communicate(timeout=240)
            assert bot.returncode == 0, err[-2000:]
    final = audit.verify(ledger.engine)
    ledger.close()
    print(f"\n{db_url.partition(':')[0]}: {checks} verifications while 2 bots wrote ({final.count} records), "
          f"{cli_checks} by the CLI, {len(alarms)} false alarms")  # fmt: skip
    assert final.ok and final.count > 200
    assert cli_checks >= 1
    assert alarms == []


@pytest.mark.timeout(300)
def test_verify_under_writers_on_sqlite(lyra_home: Path) -> None:
    _verify_while_bots_write(f"sqlite:///{lyra_home / 'lyra.db'}", lyra_home)


@pytest.mark.timeout(300)
def test_verify_under_writers_on_postgresql(pg_url: str, lyra_home: Path) -> None:
    _verify_while_bots_write(pg_url, lyra_home)
