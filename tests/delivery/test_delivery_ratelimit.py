"""The token bucket under a fake clock: never more than ``rate × t + burst`` uses."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.delivery.ratelimit import TokenBucket


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_starts_full_then_spaces_callers_one_over_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    waits = [bucket.acquire(clock.sleep) for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(1000.3)


def test_refills_while_idle_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=4, clock=clock)
    for _ in range(4):
        bucket.acquire(clock.sleep)
    clock.now += 1.0  # two tokens come back
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])
    clock.now += 3600.0  # a long idle spell refills to burst, not beyond
    assert [bucket.reserve() for _ in range(5)] == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5])


def test_reservations_queue_callers_that_arrive_together() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4.0, burst=1, clock=clock)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_a_clock_that_goes_back_does_not_stall_the_bucket() -> None:
    clock = FakeClock(now=5000.0)
    bucket = TokenBucket(rate=10.0, burst=1, clock=clock)
    bucket.acquire(clock.sleep)
    clock.now = 10.0  # wall clock stepped back by NTP
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 0.2
    assert bucket.reserve() == pytest.approx(0.0)


@given(
    rate=st.floats(0.5, 200.0),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=120),
)
def test_never_more_than_rate_times_t_plus_burst(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    used: list[float] = []
    for gap in gaps:
        clock.now += gap
        bucket.acquire(clock.sleep)
        used.append(clock.now)
    for i in range(len(used)):
        for j in range(i, len(used)):
            assert j - i + 1 <= rate * (used[j] - used[i]) + burst + 1e-6


def test_acquire_async_waits_the_same_reservations() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=2, clock=clock)

    async def take() -> list[float]:
        return [await bucket.acquire_async() for _ in range(4)]

    assert asyncio.run(take()) == pytest.approx([0.0, 0.0, 0.001, 0.002])


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_refuses_a_bucket_that_never_gives(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be > 0 and burst >= 1"):
        TokenBucket(rate=rate, burst=burst)
