"""The per-consumer limits on a clock of the test's own: exact, so the load test can stay coarse."""

from __future__ import annotations

import pytest

from ase_serving.errors import OverLimit
from ase_serving.gateway.consumer_book import Consumer
from ase_serving.gateway.limits import Limits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_of_rps_tokens_refilled_at_rps() -> None:
    clock = Clock()
    limits = Limits(clock=clock)
    app = Consumer("a", rps=4)
    for _ in range(4):  # the burst
        limits.request(app)
    with pytest.raises(OverLimit) as info:
        limits.request(app)
    assert info.value.http == 429 and info.value.code == 10110 and info.value.retry_after == 1
    clock.now += 0.25  # one token back
    limits.request(app)
    with pytest.raises(OverLimit):
        limits.request(app)
    clock.now += 10  # never more than the burst
    for _ in range(4):
        limits.request(app)
    with pytest.raises(OverLimit):
        limits.request(app)


def test_a_slow_rate_tells_how_long_to_wait() -> None:
    clock = Clock()
    limits = Limits(clock=clock)
    app = Consumer("slow", rps=0.1)
    limits.request(app)
    with pytest.raises(OverLimit) as info:
        limits.request(app)
    assert info.value.retry_after == 10


def test_no_limit_and_anonymous_callers_are_never_counted() -> None:
    limits = Limits(clock=Clock())
    for _ in range(1000):
        limits.request(Consumer("free"))
        limits.request(None)


def test_sessions_open_at_once_and_their_release() -> None:
    limits = Limits()
    app = Consumer("s", sessions=2)
    first, second = limits.open_session(app), limits.open_session(app)
    with pytest.raises(OverLimit, match="2 sessions open"):
        limits.open_session(app)
    first()
    first()  # a second release of the same session changes nothing
    third = limits.open_session(app)
    with pytest.raises(OverLimit):
        limits.open_session(app)
    second()
    third()


def test_each_worker_takes_its_share() -> None:
    clock = Clock()
    limits = Limits(share=0.5, clock=clock)
    app = Consumer("w", rps=10, sessions=4)
    for _ in range(5):
        limits.request(app)
    with pytest.raises(OverLimit):
        limits.request(app)
    held = [limits.open_session(app), limits.open_session(app)]
    with pytest.raises(OverLimit):
        limits.open_session(app)
    for release in held:
        release()
