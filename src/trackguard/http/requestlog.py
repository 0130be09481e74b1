"""The request log: one JSON line per request, written off the event loop.

The format (documented in ``docs/request-log.md``, read by ``trackguard audit``)::

    {"time": "2026-11-28T15:43:28.123Z", "method": "POST", "path": "/api/v1/customers/42/events",
     "headers": {"content-type": "application/json", "authorization": "[redacted]"},
     "body": "<raw body text>", "status": 200, "response": "{}\\n", "source": "web",
     "outcome": "fixed", "codes": ["event_name_drift"]}

A body that is not UTF-8 is written with replacement characters and also as ``body_base64``.
Credentials never reach the file: ``authorization`` (and cookies) are redacted by
:func:`redact_headers` before anything is queued.
"""

from __future__ import annotations

import base64
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from trackguard.redact import redact_headers

__all__ = ["RequestLog", "iso_time", "log_line", "redact_headers"]

_encode: Final = msgspec.json.encode


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


class RequestLog:
    """Appends lines to a file from a background thread; ``close()`` flushes everything."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("ab")
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="trackguard-request-log", daemon=True
        )
        self._thread.start()
        self.lines = 0

    def write(self, line: bytes) -> None:
        self._queue.put(line)

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                break
            chunk = [line]
            while True:  # write what is queued in one go
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._fh.write(b"".join(chunk))
                    self.lines += len(chunk)
                    self._fh.flush()
                    return
                chunk.append(nxt)
            self._fh.write(b"".join(chunk))
            self.lines += len(chunk)
            self._fh.flush()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._fh.close()
