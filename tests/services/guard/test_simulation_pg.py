"""The stateful simulation on PostgreSQL (a fresh schema): the same invariants as on SQLite."""

from __future__ import annotations

import logging

from tests.simulation import Simulation


def test_random_interleavings_keep_every_invariant_on_postgresql(pg_url: str) -> None:
    logging.getLogger("lyra_governor").setLevel(logging.ERROR)
    sim = Simulation(pg_url, seed=5, bots=3, verify_every=100)
    try:
        report = sim.run(200)
    finally:
        sim.close()
    assert report.steps == 200 and report.decisions.get("ALLOWED", 0) > 5, report.as_dict()
    assert not report.other_violations, "\n".join(report.other_violations[:10])
