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
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


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
        wait = self.reserve()
        if wait > 0:
            sleep(wait)
        return wait

    async def acquire_async(self) -> float:
        """:meth:`acquire` for asyncio code."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
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


@runtime_checkable
class TokenReserver(Protocol):
    """A store that keeps buckets every deliverer shares (``PostgresStore``)."""

    def reserve_tokens(self, name: str, n: int, rate: float, capacity: float) -> float:
        """Take ``n`` tokens from bucket ``name`` (:func:`take`, by the store's clock); the
        seconds to wait before using them."""
        ...


class SharedBucket:
    """:class:`TokenBucket`'s interface over a bucket kept in the store, reserved in chunks
    (module docstring). ``clock`` is monotonic; the store's clock refills the bucket."""

    __slots__ = (
        "_clock",
        "_left",
        "_lock",
        "_name",
        "_start",
        "_store",
        "_until",
        "burst",
        "capacity",
        "chunk",
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

    def reserve(self) -> float:
        """Take a token (a new chunk from the store when this one is spent or expired); the
        seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            if self._left == 0 or now >= self._until:
                wait = self._store.reserve_tokens(self._name, self.chunk, self.rate, self.capacity)
                self._left = self.chunk
                self._start = now + wait
                self._until = self._start + self.chunk / self.rate
            self._left -= 1
            return max(0.0, self._start - now)

    def acquire(self, sleep: Callable[[float], object] = time.sleep) -> float:
        """Take a token, sleeping until it may be used; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            sleep(wait)
        return wait


Bucket = TokenBucket | SharedBucket


def bucket_for(
    store: object, name: str, rate: float, burst: int, clock: Callable[[], float]
) -> Bucket:
    """The store's shared bucket ``name`` when it keeps any, else a bucket of this process."""
    if isinstance(store, TokenReserver):
        return SharedBucket(store, name, rate, burst)
    return TokenBucket(rate, burst, clock)
