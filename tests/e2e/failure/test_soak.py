"""The soak, short (issue 17 point 7; the 30 simulated minutes are bench/soak.py): `serve` and
three governed paper bots on one PostgreSQL store (a private cluster), the store restarted
twice and the MQTT broker (a private Mosquitto) once, 16 clients reading; the same on one
SQLite file whose write lock another process holds twice (and its WAL under the goal). The server stays up
and answers, nothing is ALLOWED while the store is away, trading resumes, and everything
reconciles. Before, the server answered /forensic/status 503 for good after the first store
restart (its cached error was never recomputed)."""

from __future__ import annotations

import pytest

from lyra_governor.store import WAL_GOAL_BYTES
from tests.soak import run_soak, summary_lines


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
def test_serve_and_three_bots_survive_two_store_restarts_and_a_broker_restart(store: str) -> None:
    f = run_soak(minutes=3, speed=12, clients=16, requests=20, say=lambda _line: None, store=store)
    print()
    for line in summary_lines(f):
        print(line)
    assert f["server_alive"], f
    assert f["after"] == {"/metrics": 200, "/forensic/status": 200, "audit_ok": True, "lyra_up": True}, f["after"]
    assert f["metrics_poll_failures"] == 0 and f["readers_errors"] == 0, f["readers_first_errors"]
    assert f["reviews_while_store_away"] > 0, f  # the bots did try while it was away
    assert f["allowed_while_store_away"] == 0, f["codes_while_store_away"]
    assert f["allowed_after_last_restart"] > 0, f  # trading resumed
    assert f["decisions"].get("ALLOWED", 0) >= 10 and f["fills"] >= 5, f["decisions"]
    assert f["invariant_problems"] == [], f["invariant_problems"]
    assert f["reservations_open"] == 0 and f["events_unsent"] == 0, f
    assert f["audit_verify_ok"], f
    assert f["halt_exit"] == 0 and f["mqtt_halt_heard"] == [True, True, True], f  # heard over the restarted broker
    if store == "postgresql":  # /metrics said so while the store was stopped (SQLite's stays readable)
        assert f["metrics_lyra_up_0"] > 0, f["metrics_poll_codes"]
    if store == "sqlite":
        assert f["wal_max_mb"] <= WAL_GOAL_BYTES / 2**20, f["wal_max_mb"]
