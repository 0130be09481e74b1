"""The emulator's request log: what every Track request was and got, and traffic statistics.

Entries are trackguard's request-log lines (``trackguard.http.requestlog.log_line``, the
format the gateway writes and ``trackguard check``/``audit`` read), so a ``--record`` file can
be fed straight back to them. Credentials never reach an entry: headers go through
``trackguard.redact`` first. The statistics keep the busiest 1 s and 100 ms windows so a test
can prove a client stays under a rate limit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from trackguard.http.requestlog import log_line
from trackguard.private import open_private
from trackguard.redact import redact_headers

KEEP_ENTRIES: Final = 10_000
#: Recent entries are also capped by size: ten thousand 1 MiB bodies would not fit in memory.
KEEP_BYTES: Final = 64 * 1024 * 1024


def record_line(
    at: float,
    method: str,
    path: str,
    raw_headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
    body: bytes,
    status: int,
    response: bytes,
) -> bytes:
    """One request-log line with the request's headers redacted."""
    headers = redact_headers(
        (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in raw_headers
    )
    return log_line(
        ts=at,
        method=method,
        path=path,
        headers=headers,
        body=body,
        status=status,
        response=response,
        source=None,
    )


class _Window:
    """Sliding-window maximum of arrivals: the busiest ``width`` seconds seen so far."""

    __slots__ = ("arrivals", "best", "width")

    def __init__(self, width: float) -> None:
        self.width = width
        self.arrivals: deque[float] = deque()
        self.best = 0

    def add(self, at: float) -> None:
        arrivals = self.arrivals
        arrivals.append(at)
        while arrivals[0] <= at - self.width:
            arrivals.popleft()
        self.best = max(self.best, len(arrivals))


class EmulatorLog:
    """Recent entries in memory; every entry appended to ``record`` and flushed per line."""

    def __init__(
        self, record: Path | None = None, keep: int = KEEP_ENTRIES, keep_bytes: int = KEEP_BYTES
    ) -> None:
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None if record is None else open_private(record, "ab")
        self._keep = keep
        self._keep_bytes = keep_bytes
        self.reset()

    def reset(self) -> None:
        """Forget entries and statistics (the record file keeps everything)."""
        with self._lock:
            self.entries: deque[tuple[int, dict[str, Any]]] = deque()
            self._bytes = 0
            self.by_status: Counter[int] = Counter()
            self.total = 0
            self._second = _Window(1.0)
            self._tenth = _Window(0.1)

    def arrival(self) -> None:
        """Count a request as it arrives, before its body is read."""
        now = time.monotonic()
        with self._lock:
            self._second.add(now)
            self._tenth.add(now)

    def add(self, line: bytes, status: int) -> None:
        """Keep a finished request's line and append it to the record file."""
        record = msgspec.json.decode(line)
        with self._lock:
            self.entries.append((len(line), record))
            self._bytes += len(line)
            while len(self.entries) > self._keep or (
                self._bytes > self._keep_bytes and len(self.entries) > 1
            ):
                self._bytes -= self.entries.popleft()[0]
            self.by_status[status] += 1
            self.total += 1
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def snapshot(self) -> list[dict[str, Any]]:
        """The most recent entries (up to ``KEEP_ENTRIES`` and ``KEEP_BYTES``), oldest first."""
        with self._lock:
            return [record for _, record in self.entries]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.total,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "max_per_second": self._second.best,
                "max_per_100ms": self._tenth.best,
            }

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
