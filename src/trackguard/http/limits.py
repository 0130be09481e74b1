"""Connection limits of the HTTP server, and the counts of how often each one tripped.

One slow or hostile client must not hold the server: every phase of a connection has a bound
(headers, body, idle keep-alive), the request head has a size cap, and the number of open
connections has a ceiling. ``ConnectionStats`` counts each trip for ``/metrics`` and logs a
summary at most once per interval, so a flood of bad clients cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("trackguard.http")

#: The limits, in the order ``/metrics`` and the log summary list them.
LIMIT_NAMES: Final = (
    "header_bytes",
    "header_timeout",
    "body_timeout",
    "max_connections",
    "bad_request",  # not HTTP at all: refused like a limit, and counted with them
)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client may take from the server (defaults in docs/gateway.md, *Limits*)."""

    #: Request line plus headers, in bytes; more is answered 431 and the connection closed.
    max_header_bytes: int = 32 * 1024
    #: Seconds from a request's first byte (or a new connection) to the end of its headers;
    #: a client still sending them is answered 408 and closed.
    header_timeout: float = 10.0
    #: Seconds a client may pause between two pieces of its body; then 408 and close.
    body_gap_timeout: float = 30.0
    #: Seconds for the whole body, from the end of the headers: a client that trickles its
    #: body a byte at a time, never pausing long, is answered 408 and closed too.
    body_timeout: float = 60.0
    #: Seconds an idle keep-alive connection stays open after its last response.
    keep_alive_timeout: float = 5.0
    #: Open connections on the public listener; above it, new connections are closed at once.
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{f.name} must be a whole number >= 1, not {value!r}")
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{f.name} must be a number of seconds > 0, not {value!r}")

    @property
    def sweep_interval(self) -> float:
        """How often deadlines are checked: a timeout fires at most this much late."""
        shortest = min(self.header_timeout, self.body_gap_timeout, self.body_timeout)
        return min(1.0, max(0.01, shortest / 4))


#: Seconds between two summary lines in the log.
SUMMARY_INTERVAL: Final = 10.0


class ConnectionStats:
    """Trips per limit and open connections, written by the server and read by ``/metrics``.

    Everything runs on the server's event loop; the counters are plain ints read at scrape
    time from another thread, which is safe for ints.
    """

    def __init__(
        self,
        interval: float = SUMMARY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trips: dict[str, int] = dict.fromkeys(LIMIT_NAMES, 0)
        self.open_connections = 0
        self._interval = interval
        self._clock = clock
        self._unlogged: dict[str, int] = dict.fromkeys(LIMIT_NAMES, 0)
        self._last_logged = -math.inf
        self._flush_pending = False

    def trip(self, limit: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one trip of ``limit``; log it now, or with the next summary line when one
        was logged less than an interval ago."""
        self.trips[limit] += 1
        self._unlogged[limit] += 1
        if self._flush_pending:
            return
        delay = self._last_logged + self._interval - self._clock()
        if delay <= 0:
            self.flush()
        elif loop is not None:
            self._flush_pending = True
            loop.call_later(delay, self.flush)
        # else: without a loop, the next trip after the interval logs these too

    def flush(self) -> None:
        """Log the trips counted since the last summary (one line), if any."""
        self._flush_pending = False
        counted = {name: n for name, n in self._unlogged.items() if n}
        if not counted:
            return
        self._last_logged = self._clock()
        self._unlogged = dict.fromkeys(LIMIT_NAMES, 0)
        summary = " ".join(f"{name}={n}" for name, n in counted.items())
        log.warning(
            "connection limits tripped: %s (open connections: %d; at most one line per %gs)",
            summary,
            self.open_connections,
            self._interval,
        )

    def collector(self) -> Collector:
        """A Prometheus collector of these counts, for the gateway's registry."""
        return _StatsCollector(self)


class _StatsCollector(Collector):
    def __init__(self, stats: ConnectionStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        trips = CounterMetricFamily(
            "trackguard_connection_limit_trips",
            "Connections answered 400/408/431 or closed by a connection limit, by limit",
            labels=["limit"],
        )
        for name, n in self._stats.trips.items():
            trips.add_metric([name], n)
        yield trips
        yield GaugeMetricFamily(
            "trackguard_open_connections",
            "Connections open on the public listener",
            value=self._stats.open_connections,
        )
