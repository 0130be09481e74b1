"""The bucket every deliverer shares: the reservation arithmetic, the chunk/capacity split,
many deliverers taking chunks from one bucket under a fake clock never exceeding
``rate × t + max(burst, 2)`` requests in any span of ``t`` seconds, and deliverers given
different rates held to the lowest."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.delivery.ratelimit import (
    RATE_MEMORY,
    Reservation,
    SharedBucket,
    SharedState,
    TokenBucket,
    bucket_for,
    shares,
    take,
    take_shared,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Reserver:
    """The store's side of a shared bucket (``PostgresStore.reserve_tokens``), in memory."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.state: dict[str, SharedState] = {}
        self.calls: list[tuple[str, int]] = []

    def reserve_tokens(
        self, name: str, n: int, rate: float, capacity: float, member: str
    ) -> Reservation:
        state, reservation = take_shared(
            self.state.get(name), member, self.clock(), rate, capacity, n
        )
        self.state[name] = state
        self.calls.append((name, n))
        return reservation


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


def test_the_lowest_rate_of_the_deliverers_reserving_binds_the_bucket() -> None:
    state, got = take_shared(None, "fast", 100.0, 40.0, 20.0, 1)
    assert (state.tokens, state.at, got) == (19.0, 100.0, Reservation(wait=0.0, rate=40.0))
    state, got = take_shared(state, "slow", 100.0, 10.0, 5.0, 1)
    # The bucket now holds at most 5 and refills at 10/s, whoever reserves.
    assert (state.tokens, got) == (4.0, Reservation(wait=0.0, rate=10.0))
    state, got = take_shared(state, "fast", 100.5, 40.0, 20.0, 10)
    assert (state.tokens, got) == (-5.0, Reservation(wait=0.5, rate=10.0))  # 5 + 5 - 10
    assert state.rates == {"slow": (10.0, 5.0, 100.0), "fast": (40.0, 20.0, 100.5)}


def test_a_deliverer_silent_for_longer_than_the_memory_no_longer_binds() -> None:
    state, _ = take_shared(None, "slow", 0.0, 10.0, 5.0, 1)
    state, got = take_shared(state, "fast", RATE_MEMORY, 40.0, 20.0, 1)
    assert got.rate == 10.0  # exactly RATE_MEMORY seconds later: still remembered
    state, got = take_shared(state, "fast", RATE_MEMORY + 0.001, 40.0, 20.0, 1)
    assert got.rate == 40.0
    assert set(state.rates) == {"fast"}


def test_a_deliverer_held_below_its_rate_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    store = Reserver(clock)
    slow = SharedBucket(store, "track", rate=10.0, burst=2, clock=clock)
    fast = SharedBucket(store, "track", rate=40.0, burst=4, clock=clock)
    slow.reserve()
    with caplog.at_level(logging.INFO, logger="trackguard.delivery"):
        for _ in range(6):  # three chunks of 2
            fast.reserve()
        clock.now += RATE_MEMORY + 1  # the slow deliverer stopped
        fast.reserve()
    assert [r.getMessage() for r in caplog.records] == [
        "the shared track bucket refills at 10/s, below this deliverer's rate of 40/s: another"
        " deliverer on this database was given a lower rate (the lowest binds)",
        "the shared track bucket refills at this deliverer's rate again",
    ]


@given(
    rates=st.lists(st.floats(5.0, 200.0), min_size=2, max_size=4),
    bursts=st.lists(st.integers(1, 20), min_size=4, max_size=4),
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 0.3), st.floats(0.0, 0.3)),
        min_size=1,
        max_size=60,
    ),
)
def test_deliverers_with_different_rates_stay_under_the_lowest(
    rates: list[float], bursts: list[int], steps: list[tuple[int, float, float]]
) -> None:
    """As above, with each deliverer given its own rate and burst: once every one has reserved,
    any ``t`` seconds see at most ``lowest rate × t + largest capacity + largest chunk``."""
    clock = Clock()
    store = Reserver(clock)
    deliverers = [
        SharedBucket(store, "track", rate, burst, clock=clock)
        for rate, burst in zip(rates, bursts, strict=False)
    ]
    # Each deliverer's first reservation makes its rate known; until the last one has made
    # it, the faster ones reserve at their own rates, so the bound holds from then on.
    free_at = [clock.now + d.reserve() for d in deliverers]
    sent: list[float] = []
    for who, gap, busy in steps:
        who %= len(deliverers)
        clock.now = max(clock.now, free_at[who]) + gap
        at = clock.now + deliverers[who].reserve()
        sent.append(at)
        free_at[who] = at + busy
    assert clock.now - 1000.0 < RATE_MEMORY  # nobody was forgotten
    sent.sort()
    lowest = min(rates)
    bound = max(d.capacity for d in deliverers) + max(d.chunk for d in deliverers)
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            assert j - i + 1 <= lowest * (sent[j] - sent[i]) + bound + 1e-6
