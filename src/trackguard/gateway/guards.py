"""What keeps floods cheap: budgets and counted summaries for 401s, open-route quarantine and
failed commits.

Each of these can happen thousands of times a second. The gateway counts them in ``/metrics``
and, through :class:`~trackguard.summary.Summary`, writes at most one log line a minute for
each, so neither the disk nor the log pays per request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Final

import msgspec

from trackguard.gateway.metrics import GatewayMetrics
from trackguard.store.base import StoreError, Write
from trackguard.summary import Summary

log = logging.getLogger("trackguard.gateway")

#: Quarantine records the open routes may add per ``QUARANTINE_INTERVAL``; beyond, they are
#: dropped and counted (``trackguard_open_quarantine_dropped_total``).
OPEN_QUARANTINE_BUDGET: Final = 100
QUARANTINE_INTERVAL: Final = 60.0


class Budget:
    """At most ``limit`` per ``interval`` seconds (a fixed window, read from ``clock``)."""

    def __init__(
        self, limit: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.interval = interval
        self._clock = clock
        self._start = -math.inf
        self._used = 0

    def take(self, n: int) -> bool:
        now = self._clock()
        if now - self._start >= self.interval:
            self._start, self._used = now, 0
        if self._used + n > self.limit:
            return False
        self._used += n
        return True


class Guards:
    """The gateway's counted, summarised answers to floods (one per gateway)."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        open_quarantine_budget: int = OPEN_QUARANTINE_BUDGET,
        quarantine_interval: float = QUARANTINE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self.unauthenticated = Summary(
            log, "requests without valid credentials (answered 401)", clock=clock
        )
        self.quarantine_dropped = Summary(
            log, "quarantine records dropped over the open routes' budget", clock=clock
        )
        self.commit_failures = Summary(
            log, "store commits failed (answered 503)", level=logging.ERROR, clock=clock
        )
        self._open_budget = Budget(open_quarantine_budget, quarantine_interval, clock)
        self._commit_failing = False

    def unauthorized(self, address: str, route: str) -> None:
        """Count a 401; summarised by client address and route."""
        self._metrics.unauthenticated += 1
        self.unauthenticated.add(f"{address} {route}")

    def within_budget(self, write: Write, route: str) -> Write:
        """``write`` if the open routes' quarantine budget has room, else without quarantine."""
        if self._open_budget.take(len(write.quarantine)):
            return write
        self._metrics.open_quarantine_dropped += len(write.quarantine)
        self.quarantine_dropped.add(route, len(write.quarantine))
        return msgspec.structs.replace(write, quarantine=())

    def commit_failed(self, exc: StoreError) -> None:
        """Counted, one line per interval; the first failure of a run logs its traceback."""
        first = not self._commit_failing
        self._commit_failing = True
        cause = exc.__cause__ or exc  # the store's reason, not the batch it failed in
        key = str(cause)[:200] or type(cause).__name__
        self.commit_failures.add(key, exc=exc if first else None)

    def committed(self) -> None:
        if self._commit_failing:
            self._commit_failing = False
            self.commit_failures.flush()
            log.warning("store commits succeed again")

    def flush(self) -> None:
        """Write what the summaries counted since their last line (shutdown)."""
        for summary in (self.unauthenticated, self.quarantine_dropped, self.commit_failures):
            summary.flush()
