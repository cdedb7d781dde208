"""The store watchdog (`store_budget.Watchdog`) cuts a call at its deadline and otherwise
leaves the order path alone: it sleeps until the earliest armed deadline instead of waking on
a 10 ms tick (100 times a second, inside a few percent of the reviews: issue 14's p99).
Real threads and real time; the bounds are generous for a loaded machine."""

from __future__ import annotations

import threading
import time

from lyra_governor.store_budget import Watchdog


def _blocked_call(dog: Watchdog, budget_s: float, limit_s: float = 5.0) -> tuple[float, bool]:
    """A call that blocks until it is cut (or `limit_s`): how long it ran, and whether the
    watchdog says it fired."""
    cut = threading.Event()
    started = time.monotonic()
    with dog.guard(budget_s, cut.set) as fired:
        cut.wait(limit_s)
        return time.monotonic() - started, fired()


def test_a_call_past_its_deadline_is_cut() -> None:
    dog = Watchdog()
    ran, fired = _blocked_call(dog, 0.05)
    assert fired
    assert 0.05 <= ran < 1.0, ran


def test_a_short_deadline_armed_after_a_long_one_is_cut_on_time() -> None:
    """The thread sleeps until the earliest deadline it knew of (here 10 s away): a call due
    sooner must wake it, or it would overrun by seconds."""
    dog = Watchdog()
    with dog.guard(10.0, lambda: None):
        time.sleep(0.05)  # the thread has planned its next look for the 10 s deadline
        ran, fired = _blocked_call(dog, 0.05)
    assert fired
    assert ran < 1.0, ran


def test_calls_that_end_in_time_are_not_cut_and_do_not_wake_the_thread() -> None:
    """A busy order path (short calls back to back, all within a 200 ms budget) for 0.6 s:
    nothing is cut, and the thread looks a few times (about once per budget), not on a tick
    (the 10 ms polling thread looked 60 times in that time)."""
    dog = Watchdog()
    cuts: list[int] = []
    with dog.guard(0.2, lambda: cuts.append(1)):  # starts the thread and teaches it the budget
        pass
    time.sleep(0.05)
    before = dog.wakes
    end = time.monotonic() + 0.6
    calls = 0
    while time.monotonic() < end:
        with dog.guard(0.2, lambda: cuts.append(1)) as fired:
            time.sleep(0.0005)
            assert not fired()
        calls += 1
    looked = dog.wakes - before
    assert not cuts
    assert calls > 100
    assert looked <= 12, f"the watchdog looked {looked} times in 0.6 s for {calls} calls"


def test_calls_armed_from_several_threads_without_its_lock_are_cut_on_time_and_leave_nothing() -> None:
    """`arm` and `disarm` take no lock for a call due no earlier than the thread's planned wake:
    threads arming and disarming short calls back to back while others block until cut. Every
    blocked call is cut (within generous bounds), no short one is, and nothing stays armed or
    fired."""
    dog = Watchdog()
    with dog.guard(0.05, lambda: None):  # the shortest budget: later calls take no lock
        pass
    cut_short: list[int] = []
    blocked: list[tuple[float, bool]] = []
    stop = time.monotonic() + 0.8

    def short_calls() -> None:
        while time.monotonic() < stop:
            with dog.guard(0.5, lambda: cut_short.append(1)):
                pass

    def blocked_calls() -> None:
        while time.monotonic() < stop:
            blocked.append(_blocked_call(dog, 0.05, limit_s=2.0))

    threads = [threading.Thread(target=short_calls) for _ in range(3)] + [threading.Thread(target=blocked_calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(blocked) >= 3 and not cut_short
    assert all(fired and ran < 1.0 for ran, fired in blocked), blocked
    assert not dog._armed and not dog._fired
