"""A token bucket: at most ``rate × t + burst`` requests in any span of ``t`` seconds.

Customer.io's Track API asks for a fair-use request rate per workspace (100 req/s in the
figures we trust most; the spec says 1000 "not strictly enforced"), and throttles or drops
above it. Delivery takes one token per upstream request.

The bucket works by reservation: :meth:`TokenBucket.reserve` takes a token at once, possibly
going into debt, and says how long to wait before using it. Callers that arrive together are
thus spaced ``1 / rate`` apart without a retry loop, and the bound holds under any clock, so a
fake clock makes it exact in tests.

Customer.io limits the workspace, not the process, so deliverers sharing a PostgreSQL store
share one bucket too (:class:`SharedBucket`): it lives in the store (``reserve_tokens``, a row
updated under its lock, refilled by the database's clock) and each deliverer reserves tokens
from it ``chunk`` at a time, to spend them within ``chunk / rate`` seconds (unspent ones are
dropped). :func:`shares` splits ``burst`` into that chunk and the shared bucket's capacity so
that, across every deliverer, any ``t`` seconds see at most ``rate × t + max(burst, 2)``
requests (:func:`take` is the reservation's arithmetic; ``docs/delivery.md``).

Deliverers given different rates cannot raise the workspace's rate: the shared bucket refills
at the lowest rate (and holds the smallest capacity) any deliverer reserving within the last
:data:`RATE_MEMORY` seconds asked for (:func:`take_shared`), and a deliverer held below its own
rate says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

import msgspec

log = logging.getLogger("trackguard.delivery")

#: Seconds a deliverer's rate binds the shared bucket after its last reservation: long enough
#: to cover a deliverer that reserves rarely (one chunk per ``chunk / rate`` seconds at most),
#: short enough that a rate raised by a redeploy takes over within a minute.
RATE_MEMORY: Final = 60.0


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("_clock", "_last", "_lock", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0.0 when one was ready)."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._last
            if elapsed > 0:
                self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._last = now  # a clock that went back restarts the refill from here
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, sleep: Callable[[float], object] = time.sleep) -> float:
        """Take a token, sleeping until it may be used; returns the seconds waited."""
        return _acquire(self.reserve(), sleep)

    async def acquire_async(self) -> float:
        """:meth:`acquire` for asyncio code."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


def _acquire(wait: float, sleep: Callable[[float], object]) -> float:
    """Sleep the ``wait`` a reservation gave, if any; the seconds waited."""
    if wait > 0:
        sleep(wait)
    return wait


# --- one bucket for every deliverer ----------------------------------------------------------


def shares(burst: int) -> tuple[int, int]:
    """``(chunk, capacity)`` of a shared bucket for ``burst``: a deliverer reserves ``chunk``
    tokens at once (half the burst, at least 1) from a shared bucket of ``capacity`` (the rest,
    at least 1). Tokens a chunk holds may be spent up to ``chunk / rate`` seconds after they
    became usable, so the bound on any ``t`` seconds is ``rate × t + capacity + chunk``, which
    is ``rate × t + max(burst, 2)``."""
    chunk = max(1, burst // 2)
    return chunk, max(1, burst - chunk)


def take(
    tokens: float, updated_at: float, now: float, rate: float, capacity: float, n: int
) -> tuple[float, float, float]:
    """Reserve ``n`` tokens at ``now`` from a bucket that held ``tokens`` at ``updated_at``:
    ``(tokens left, its new updated_at, seconds to wait before using them)``.

    The bucket may go into debt (tokens < 0): the wait is the time to pay it back. A ``now``
    earlier than ``updated_at`` (a clock read before a lock was granted, or a clock stepped
    back) refills nothing and leaves ``updated_at`` as it was, so no time is counted twice.
    """
    elapsed = max(0.0, now - updated_at)
    level = min(capacity, tokens + elapsed * rate) - n
    return level, max(updated_at, now), (0.0 if level >= 0 else -level / rate)


class SharedState(msgspec.Struct, forbid_unknown_fields=False):
    """A shared bucket as the store keeps it: its level at ``at`` (the store's clock), and the
    ``[rate, capacity, last reservation]`` each deliverer (by ``member`` id) asked for."""

    tokens: float
    at: float
    rates: dict[str, tuple[float, float, float]] = {}


class Reservation(msgspec.Struct, frozen=True):
    """What a reservation from a shared bucket gives: the seconds to wait before using the
    tokens, and the rate the bucket refilled at (below the asker's when another deliverer
    asked for less)."""

    wait: float
    rate: float


def take_shared(
    state: SharedState | None,
    member: str,
    now: float,
    rate: float,
    capacity: float,
    n: int,
) -> tuple[SharedState, Reservation]:
    """:func:`take` on a shared bucket, at the lowest rate and capacity of the deliverers that
    reserved within :data:`RATE_MEMORY` seconds of ``now`` (``member`` among them, at
    ``rate``/``capacity``): the new state to save, and the reservation."""
    rates = {
        other: seen
        for other, seen in (state.rates if state is not None else {}).items()
        if other != member and now - seen[2] <= RATE_MEMORY
    }
    rates[member] = (rate, capacity, now)
    lowest = min(r for r, _, _ in rates.values())
    smallest = min(c for _, c, _ in rates.values())
    tokens, at = (state.tokens, state.at) if state is not None else (smallest, now)
    level, at, wait = take(tokens, at, now, lowest, smallest, n)
    return SharedState(tokens=level, at=at, rates=rates), Reservation(wait=wait, rate=lowest)


@runtime_checkable
class TokenReserver(Protocol):
    """A store that keeps buckets every deliverer shares (``PostgresStore``)."""

    def reserve_tokens(
        self, name: str, n: int, rate: float, capacity: float, member: str
    ) -> Reservation:
        """Take ``n`` tokens from bucket ``name`` for deliverer ``member``
        (:func:`take_shared`, by the store's clock)."""
        ...


class SharedBucket:
    """:class:`TokenBucket`'s interface over a bucket kept in the store, reserved in chunks
    (module docstring). ``clock`` is monotonic; the store's clock refills the bucket."""

    __slots__ = (
        "_clock",
        "_held_at",
        "_left",
        "_lock",
        "_name",
        "_start",
        "_store",
        "_until",
        "burst",
        "capacity",
        "chunk",
        "member",
        "rate",
    )

    def __init__(
        self,
        store: TokenReserver,
        name: str,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self.chunk, self.capacity = shares(burst)
        self._store = store
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._left = 0
        self._start = self._until = -math.inf
        #: This deliverer's id in the shared bucket (its rate binds the others while it runs).
        self.member = uuid.uuid4().hex
        #: The lower rate another deliverer holds this one to (last logged), or None.
        self._held_at: float | None = None

    def reserve(self) -> float:
        """Take a token (a new chunk from the store when this one is spent or expired); the
        seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            if self._left == 0 or now >= self._until:
                got = self._store.reserve_tokens(
                    self._name, self.chunk, self.rate, self.capacity, self.member
                )
                self._held(got.rate)
                self._left = self.chunk
                self._start = now + got.wait
                self._until = self._start + self.chunk / self.rate
            self._left -= 1
            return max(0.0, self._start - now)

    def _held(self, rate: float) -> None:
        """Log once when another deliverer's lower rate starts (or stops) binding this one."""
        held = rate if rate < self.rate else None
        if held == self._held_at:
            return
        self._held_at = held
        if held is not None:
            log.warning(
                "the shared %s bucket refills at %g/s, below this deliverer's rate of %g/s:"
                " another deliverer on this database was given a lower rate (the lowest binds)",
                self._name,
                held,
                self.rate,
            )
        else:
            log.info("the shared %s bucket refills at this deliverer's rate again", self._name)

    def acquire(self, sleep: Callable[[float], object] = time.sleep) -> float:
        """Take a token, sleeping until it may be used; returns the seconds waited."""
        return _acquire(self.reserve(), sleep)


Bucket = TokenBucket | SharedBucket


def bucket_for(
    store: object, name: str, rate: float, burst: int, clock: Callable[[], float]
) -> Bucket:
    """The store's shared bucket ``name`` when it keeps any, else a bucket of this process.

    ``clock`` times the process's bucket; a shared bucket times its chunks by the monotonic
    clock (a wall clock stepped back would let a chunk be spent late) and is refilled by the
    database's."""
    if isinstance(store, TokenReserver):
        return SharedBucket(store, name, rate, burst)
    return TokenBucket(rate, burst, clock)
