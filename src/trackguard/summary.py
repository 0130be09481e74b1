"""Counted, rate-limited log lines: a flood of the same event costs one line per interval.

Unauthenticated requests, quarantine records dropped over an open route's budget and store
commit failures can each happen thousands of times a second. Writing a line (or a traceback)
for each fills the disk the gateway needs for its data; writing none hides the problem. A
:class:`Summary` counts occurrences by key and writes at most one line per ``interval``: the
total and the largest keys. Keys are bounded (``max_keys``; the rest are counted under
``other``), so an attacker choosing keys cannot grow memory.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

#: Seconds between two lines of one summary.
SUMMARY_INTERVAL: Final = 60.0
#: Distinct keys one summary counts before the rest go under ``other``.
SUMMARY_KEYS: Final = 100
#: Keys shown in one line (the largest counts).
_SHOWN: Final = 5
OTHER: Final = "other"


class Summary:
    """Counts by key; logs the first occurrence at once, then one line per interval.

    ``add`` is O(1) and safe from any thread. ``flush`` writes what is counted (shutdown).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = SUMMARY_INTERVAL,
        max_keys: int = SUMMARY_KEYS,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self.interval = interval
        self.max_keys = max_keys
        self._level = level
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._last = -math.inf
        self._lock = threading.Lock()
        #: Lines written so far (for tests and ``/metrics``-style checks of the bound).
        self.lines = 0
        #: Occurrences counted since start.
        self.total = 0

    def add(self, key: str, n: int = 1, *, exc: BaseException | None = None) -> None:
        """Count ``n`` occurrences of ``key``; ``exc`` is logged with the line it opens, if any."""
        with self._lock:
            self.total += n
            if key in self._counts or len(self._counts) < self.max_keys:
                self._counts[key] += n
            else:
                self._counts[OTHER] += n
            now = self._clock()
            if now - self._last < self.interval:
                return
            self._last = now
            line = self._take()
        self._write(line, exc)

    def flush(self) -> None:
        """Write what is counted and not yet written (nothing if nothing is)."""
        with self._lock:
            line = self._take() if self._counts else None
        if line is not None:
            self._write(line, None)

    def _take(self) -> str:
        counts, self._counts = self._counts, Counter()
        total = sum(counts.values())
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{key}: {n}" for key, n in top[:_SHOWN])
        more = f" and {len(top) - _SHOWN} more" if len(top) > _SHOWN else ""
        return f"{self._what}: {total} ({shown}{more})"

    def _write(self, line: str, exc: BaseException | None) -> None:
        self.lines += 1
        self._log.log(self._level, "%s", line, exc_info=exc)
