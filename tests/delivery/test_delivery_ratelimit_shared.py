"""The bucket every deliverer shares: the reservation arithmetic, the chunk/capacity split, and
many deliverers taking chunks from one bucket under a fake clock never exceeding
``rate × t + max(burst, 2)`` requests in any span of ``t`` seconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.delivery.ratelimit import SharedBucket, TokenBucket, bucket_for, shares, take


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reserver:
    """The store's side of a shared bucket (``PostgresStore.reserve_tokens``), in memory."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.state: dict[str, tuple[float, float]] = {}
        self.calls: list[tuple[str, int]] = []

    def reserve_tokens(self, name: str, n: int, rate: float, capacity: float) -> float:
        now = self.clock()
        tokens, at = self.state.get(name, (capacity, now))
        level, at, wait = take(tokens, at, now, rate, capacity, n)
        self.state[name] = (level, at)
        self.calls.append((name, n))
        return wait


def test_take_refills_by_elapsed_time_up_to_capacity_and_goes_into_debt() -> None:
    assert take(2.0, 10.0, 10.0, 4.0, 2.0, 1) == (1.0, 10.0, 0.0)
    assert take(0.0, 10.0, 10.5, 4.0, 2.0, 1) == (1.0, 10.5, 0.0)  # 0.5 s refilled 2, took 1
    assert take(0.0, 10.0, 99.0, 4.0, 2.0, 2) == (0.0, 99.0, 0.0)  # capped at capacity
    assert take(0.0, 10.0, 10.0, 4.0, 2.0, 2) == (-2.0, 10.0, 0.5)  # debt: wait 2 / 4 s


def test_take_never_refills_for_a_clock_that_is_behind() -> None:
    # A clock read before the row lock was granted: no refill, and updated_at stays.
    assert take(0.0, 10.0, 9.0, 4.0, 2.0, 1) == (-1.0, 10.0, 0.25)


@pytest.mark.parametrize(
    ("burst", "chunk", "capacity"),
    [(1, 1, 1), (2, 1, 1), (3, 1, 2), (4, 2, 2), (10, 5, 5), (11, 5, 6)],
)
def test_shares_split_the_burst(burst: int, chunk: int, capacity: int) -> None:
    assert shares(burst) == (chunk, capacity)
    assert chunk + capacity == max(burst, 2)


def test_a_chunk_is_spent_locally_then_the_next_is_reserved() -> None:
    clock = Clock()
    store = Reserver(clock)
    bucket = SharedBucket(store, "track", rate=10.0, burst=4, clock=clock)
    assert (bucket.chunk, bucket.capacity) == (2, 2)
    waits = [bucket.reserve() for _ in range(6)]
    # 2 tokens in the bucket, then each chunk of 2 waits for 2 more: 0.2 s at 10/s.
    assert waits == pytest.approx([0.0, 0.0, 0.2, 0.2, 0.4, 0.4])
    assert store.calls == [("track", 2)] * 3


def test_unspent_tokens_expire_after_chunk_over_rate() -> None:
    clock = Clock()
    store = Reserver(clock)
    bucket = SharedBucket(store, "track", rate=10.0, burst=4, clock=clock)
    assert bucket.reserve() == 0.0
    clock.now += 0.2  # the chunk's second token expired (2 / 10 s)
    assert bucket.reserve() == 0.0
    assert store.calls == [("track", 2), ("track", 2)]


def test_buckets_are_shared_only_by_stores_that_keep_them() -> None:
    clock = Clock()
    assert isinstance(bucket_for(Reserver(clock), "track", 5.0, 1, clock), SharedBucket)
    assert isinstance(bucket_for(object(), "track", 5.0, 1, clock), TokenBucket)


@given(
    rate=st.floats(1.0, 200.0),
    burst=st.integers(1, 20),
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 0.3), st.floats(0.0, 0.3)),
        min_size=1,
        max_size=150,
    ),
)
def test_deliverers_sharing_a_bucket_stay_under_rate_t_plus_burst(
    rate: float, burst: int, steps: list[tuple[int, float, float]]
) -> None:
    """Four deliverers take turns: each step one of them sends after ``gap`` seconds of idling
    (its unspent tokens may expire), and its request takes ``busy`` seconds (tokens of its
    chunk are spent late). Every send time must respect the documented bound."""
    clock = Clock()
    store = Reserver(clock)
    deliverers = [SharedBucket(store, "track", rate, burst, clock=clock) for _ in range(4)]
    free_at = [clock.now] * 4  # when each deliverer may act next (they run concurrently)
    sent: list[float] = []
    for who, gap, busy in steps:
        clock.now = max(clock.now, free_at[who]) + gap
        wait = deliverers[who].reserve()
        at = clock.now + wait
        sent.append(at)
        free_at[who] = at + busy
    sent.sort()
    bound = max(burst, 2)
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            assert j - i + 1 <= rate * (sent[j] - sent[i]) + bound + 1e-6


@given(
    rate=st.floats(1.0, 200.0),
    capacity=st.integers(1, 10),
    reservations=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 10)), max_size=80),
)
def test_grants_never_exceed_capacity_plus_rate_times_t(
    rate: float, capacity: int, reservations: list[tuple[float, int]]
) -> None:
    """Tokens whose wait ends within any span of ``t`` seconds: at most ``capacity + rate × t``
    (for chunks no larger than the capacity, as :func:`shares` makes them)."""
    now, tokens, at = 0.0, float(capacity), 0.0
    usable: list[tuple[float, int]] = []
    for gap, n in reservations:
        n = min(n, capacity)
        now += gap
        tokens, at, wait = take(tokens, at, now, rate, capacity, n)
        usable.append((now + wait, n))
    usable.sort()
    for i in range(len(usable)):
        total = 0
        for j in range(i, len(usable)):
            total += usable[j][1]
            assert total <= capacity + rate * (usable[j][0] - usable[i][0]) + 1e-6
