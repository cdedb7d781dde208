"""Reservation ids (`reservation.ReservationIds`): a random prefix per process and a counter.
They are the reservations' key in a store that many processes, on many hosts, write to for
years: no two may ever be equal, whichever processes made them."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lyra_governor import reservation
from lyra_governor.config import Settings
from lyra_governor.governor import Governor
from lyra_governor.models import OrderProposal
from lyra_governor.reservation import ReservationIds
from tests.unit.core.conftest import EnvelopeMandates, FakeClock, allowed

ID = re.compile(r"res-[0-9a-f]{16}[0-9a-f]{6,}")
ROOT = Path(__file__).resolve().parents[3]
MAKE = "from lyra_governor.reservation import reservation_id; print(' '.join(reservation_id() for _ in range(2000)))"


def test_ids_have_their_form_and_sort_in_the_order_they_were_made() -> None:
    ids = [reservation.reservation_id() for _ in range(1000)]
    assert all(ID.fullmatch(i) for i in ids) and all(len(i) <= 40 for i in ids)  # String(40) columns
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({i[:20] for i in ids}) == 1  # one prefix per process


def test_threads_never_get_the_same_id() -> None:
    got: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(reservation.reservation_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in got for i in out]
    assert len(set(every)) == len(every) == 80_000


def test_two_processes_never_make_the_same_id() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", MAKE], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]  # fmt: skip
    first, second = (set(run.stdout.split()) for run in runs)
    assert len(first) == len(second) == 2000 and not first & second
    mine = reservation.reservation_id()
    assert mine not in first | second
    assert len({i[:20] for i in first | second | {mine}}) == 3  # each process its own prefix


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_draws_its_own_prefix() -> None:
    """A child forked from a process that made ids already would otherwise continue the very
    same prefix and counter as its parent: `os.register_at_fork` draws a new prefix in it."""
    before = reservation.reservation_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, " ".join(reservation.reservation_id() for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [reservation.reservation_id() for _ in range(100)]
    assert len(child) == 100 and not set(child) & set(parent)
    assert {i[:20] for i in child} != {before[:20]} == {i[:20] for i in parent}


def test_ids_from_an_injected_entropy_are_the_same_on_every_run(
    settings: Settings, clock: FakeClock, mandates: EnvelopeMandates, propose: Callable[..., OrderProposal]
) -> None:
    """A seeded simulation replays its run, ids included: `ReservationIds(entropy)` draws its
    prefix from the entropy given (the same seed, the same ids; a fork draws again from it), and
    a governor given `reservation_ids` reserves under those ids, not the process's."""
    made = [ReservationIds(random.Random(7).randbytes) for _ in range(2)]
    first, second = ([ids.new() for _ in range(3)] for ids in made)
    assert first == second and all(ID.fullmatch(i) for i in first) and first == sorted(first)
    assert first[0][:20] == f"res-{random.Random(7).randbytes(8).hex()}"
    made[0].draw()  # as in a forked child: a new prefix from the same source, the counter from 0
    assert made[0].new()[:20] != first[0][:20] and made[0].new().endswith("000001")
    ids = ReservationIds(random.Random(7).randbytes)
    gov = Governor.from_settings(settings, "bot-1", mandates=mandates, clock=clock, reservation_ids=ids.new)
    try:
        gov.ledger.set_phase(3, "test", "paper trading under test")
        decision = allowed(gov, propose())
        assert decision.allowed and decision.reservation_id == first[0]
        assert [r["reservation_id"] for r in gov.ledger.open_reservations("bot-1")] == [first[0]]
    finally:
        gov.close()
