"""The request log: one JSON line per request, written off the event loop.

The format (documented in ``docs/request-log.md``, read by ``trackguard audit``)::

    {"time": "2026-11-28T15:43:28.123Z", "method": "POST", "path": "/api/v1/customers/42/events",
     "headers": {"content-type": "application/json", "authorization": "[redacted]"},
     "body": "<raw body text>", "status": 200, "response": "{}\\n", "source": "web",
     "outcome": "fixed", "codes": ["event_name_drift"]}

A body that is not UTF-8 is written with replacement characters and also as ``body_base64``.
Credentials never reach the file: ``authorization`` (and cookies) are redacted by
:func:`redact_headers` before anything is queued.

The writer never stops silently and never holds unbounded memory: lines wait in a bounded
buffer (beyond it they are dropped and counted), a failed write (a full disk) is retried with
backoff and written whole or not at all, so the file never holds half a line, and the file is
rotated by size. :attr:`RequestLog.status` tells ``/readyz``, ``/metrics`` and the monitor.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from trackguard.durations import iso_time
from trackguard.redact import redact_headers
from trackguard.summary import Summary

__all__ = [
    "RequestLog",
    "RequestLogPolicy",
    "RequestLogStatus",
    "log_line",
    "redact_headers",
]

log = logging.getLogger("trackguard.requestlog")

#: ``fail``: a failing request log makes ``/readyz`` answer 503; ``best-effort`` (the
#: default): it is reported in ``/readyz``'s body, ``/metrics`` and the log, and requests go on.
RequestLogPolicy = Literal["fail", "best-effort"]
POLICIES: Final[tuple[RequestLogPolicy, ...]] = ("best-effort", "fail")
#: Lines and bytes waiting to be written before new lines are dropped (and counted).
BUFFER_LINES: Final = 10_000
BUFFER_BYTES: Final = 16 * 1024 * 1024
#: Size at which the file is rotated (0: never), and how many rotated files are kept.
MAX_BYTES: Final = 100 * 1024 * 1024
KEEP: Final = 5
#: Seconds before the first retry of a failed write; doubled per failure up to RETRY_MAX.
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 30.0
#: At most this much (and at most ``max_bytes``) is written in one go, so a nearly full disk
#: still takes whole lines and a rotated file stays under ``max_bytes``.
_CHUNK: Final = 1024 * 1024

_encode: Final = msgspec.json.encode


def log_line(
    *,
    ts: float,
    method: str,
    path: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    status: int,
    response: bytes,
    source: str | None,
    outcome: str | None = None,
    codes: tuple[str, ...] = (),
) -> bytes:
    """One request-log line (headers must already be redacted).

    ``outcome`` and ``codes`` (the verdict's) are written when the gateway checked the request.
    """
    entry: dict[str, Any] = {
        "time": iso_time(ts),
        "method": method,
        "path": path,
        "headers": dict(headers),
    }
    try:
        entry["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        entry["body"] = body.decode("utf-8", "replace")
        entry["body_base64"] = base64.b64encode(body).decode("ascii")
    entry["status"] = status
    entry["response"] = response.decode("utf-8", "replace")
    if source is not None:
        entry["source"] = source
    if outcome is not None:
        entry["outcome"] = outcome
        entry["codes"] = list(codes)
    return _encode(entry) + b"\n"


@dataclass(frozen=True)
class RequestLogStatus:
    """What the writer has done: lines written and dropped, and whether it is failing now."""

    written: int
    dropped: int
    buffered: int
    rotations: int
    failing: bool
    error: str | None


class RequestLog:
    """Appends lines to a file from a background thread; ``close()`` flushes what it can.

    ``write`` never blocks and never raises: a full buffer drops the line and counts it.
    """

    def __init__(
        self,
        path: Path,
        *,
        buffer_lines: int = BUFFER_LINES,
        buffer_bytes: int = BUFFER_BYTES,
        max_bytes: int = MAX_BYTES,
        keep: int = KEEP,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        if buffer_lines < 1 or buffer_bytes < 1 or max_bytes < 0 or keep < 0:
            raise ValueError("request log limits must be positive (max_bytes, keep: >= 0)")
        self.path = path
        self.buffer_lines = buffer_lines
        self.buffer_bytes = buffer_bytes
        self.max_bytes = max_bytes
        self.keep = keep
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._fd = self._open()
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._drops = Summary(log, f"request log {path}: lines dropped, buffer full")
        self.lines = 0
        self.dropped = 0
        self.rotations = 0
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name="trackguard-request-log", daemon=True
        )
        self._thread.start()

    @property
    def status(self) -> RequestLogStatus:
        return RequestLogStatus(
            written=self.lines,
            dropped=self.dropped,
            buffered=len(self._buffer),
            rotations=self.rotations,
            failing=self.error is not None,
            error=self.error,
        )

    def write(self, line: bytes) -> None:
        with self._cond:
            if (
                self._stop.is_set()
                or len(self._buffer) >= self.buffer_lines
                or self._buffered + len(line) > self.buffer_bytes
            ):
                self.dropped += 1
                dropped = True
            else:
                self._buffer.append(line)
                self._buffered += len(line)
                self._cond.notify()
                dropped = False
        if dropped:
            self._drops.add("dropped")

    def _open(self) -> int:
        # Bodies hold personal data: a new file is readable by its owner only.
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _run(self) -> None:
        delay = self.retry_first
        chunk = min(_CHUNK, self.max_bytes) if self.max_bytes else _CHUNK
        while True:
            with self._cond:
                while not self._buffer and not self._stop.is_set():
                    self._cond.wait()
                if not self._buffer:
                    return
                batch: list[bytes] = []
                size = 0
                for line in self._buffer:
                    if batch and size + len(line) > chunk:
                        break
                    batch.append(line)
                    size += len(line)
            try:
                self._append(b"".join(batch))
            except OSError as exc:
                self._failed(exc)
                if self._stop.is_set():
                    return  # closing: close() counts what is left
                self._stop.wait(delay)  # close() cuts the wait short for one last try
                delay = min(delay * 2, self.retry_max)
                continue
            with self._cond:
                for _ in batch:
                    self._buffer.popleft()
                self._buffered -= size
            self.lines += len(batch)
            delay = self.retry_first
            if self.error is not None:
                log.warning(
                    "request log %s: writing again (%d lines dropped so far)",
                    self.path,
                    self.dropped,
                )
                self.error = None

    def _failed(self, exc: OSError) -> None:
        error = exc.strerror or str(exc)
        if self.error is None:
            log.error(
                "request log %s: cannot write (%s); retrying with backoff, keeping up to %d lines",
                self.path,
                error,
                self.buffer_lines,
            )
        self.error = error

    def _append(self, data: bytes) -> None:
        """Write ``data`` (whole lines) at the end of the file, all of it or none of it."""
        start = os.fstat(self._fd).st_size
        if self.max_bytes and start and start + len(data) > self.max_bytes:
            self._rotate()
            start = 0
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError:
            if done:
                os.ftruncate(self._fd, start)  # never leave half a line behind
            raise

    def _rotate(self) -> None:
        """``FILE`` becomes ``FILE.1``, ``FILE.1`` becomes ``FILE.2``, ... up to ``keep``."""
        name = str(self.path)
        for i in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{name}.{i}"):
                os.replace(f"{name}.{i}", f"{name}.{i + 1}")
        if self.keep:
            os.replace(name, f"{name}.1")
        else:
            os.unlink(name)
        old, self._fd = self._fd, self._open()
        os.close(old)
        self.rotations += 1

    def close(self) -> None:
        """Write what is buffered (one last try if the disk is failing), then close."""
        with self._cond:
            self._stop.set()
            self._cond.notify()
        self._thread.join()
        left = len(self._buffer)
        if left:
            self.dropped += left
            log.error(
                "request log %s: %d lines could not be written before shutdown", self.path, left
            )
        self._drops.flush()
        os.close(self._fd)
