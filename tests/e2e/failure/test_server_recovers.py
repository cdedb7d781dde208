"""The server's cached answers recover once the store is back: a failed computation is the
answer for one cache period, then the next request computes again. Before, the error stayed
until a background computation succeeded, and none was started once the last value had aged,
so after a store restart /forensic/status answered 503 for good."""

from __future__ import annotations

import contextlib
import time

import pytest

from lyra_governor.errors import StoreUnavailable
from lyra_governor.server import Refreshed


def _eventually(get: object, timeout_s: float = 10.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return get()  # type: ignore[operator]
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.mark.timeout(60)
def test_a_cached_answer_recovers_after_the_store_comes_back() -> None:
    state = {"away": False, "computed": 0}

    def compute() -> int:
        if state["away"]:
            raise StoreUnavailable("the store is away")
        state["computed"] += 1
        return state["computed"]

    cached = Refreshed(compute, every_s=0.05)
    assert cached.get() == 1
    state["away"] = True
    deadline = time.monotonic() + 10
    while cached.last_error is None and time.monotonic() < deadline:  # a refresh (or a request) fails
        with contextlib.suppress(StoreUnavailable):
            cached.get()
        time.sleep(0.02)
    assert cached.last_error is not None
    time.sleep(0.2)  # the last value is long past 2 cache periods
    with pytest.raises(StoreUnavailable):
        cached.get()  # still away: said at once
    state["away"] = False
    assert _eventually(cached.get) == 2  # back: the next request computes again


@pytest.mark.timeout(60)
def test_a_failure_is_the_answer_for_one_period_not_a_computation_per_request() -> None:
    calls = {"n": 0}

    def compute() -> int:
        calls["n"] += 1
        raise StoreUnavailable("the store is away")

    cached = Refreshed(compute, every_s=5.0)
    for _ in range(20):
        with pytest.raises(StoreUnavailable):
            cached.get()
    assert calls["n"] == 1  # 16 clients during an outage do not queue behind 16 failing computations
