"""The Pipelines calls the emulator accepted, the ones it dropped, and the repeats it ignored.

Calls are kept exactly as accepted (the contract's :class:`Call` body, ``messageId`` and all),
in arrival order. A call whose ``messageId`` was already accepted is not kept again and is
counted as a duplicate, as every SDK resends the same batch on a retry (Customer.io's own
deduplication window is UNVERIFIED; the emulator remembers every id until a reset). Dropped
calls are what a permissive Customer.io answers 200 to and then loses: each is kept with its
reasons so a test can see it.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from trackguard.contract.pipelines import Call, Dropped


class PipelinesState:
    """Thread-safe record of the Pipelines traffic; views are deep copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: list[dict[str, Any]] = []
            self.dropped: list[dict[str, Any]] = []
            self.duplicates = 0
            self._seen: set[str] = set()

    def accept(
        self,
        calls: tuple[Call, ...],
        *,
        path: str,
        now: float,
        envelope: dict[str, Any] | None = None,
    ) -> list[Call]:
        """Keep ``calls`` (with their batch's ``envelope``: ``sentAt``, a default ``context``…);
        returns the ones that were new (not repeats of a messageId)."""
        fresh: list[Call] = []
        with self._lock:
            for call in calls:
                message_id = call.body.get("messageId")
                if isinstance(message_id, str):
                    if message_id in self._seen:
                        self.duplicates += 1
                        continue
                    self._seen.add(message_id)
                self.calls.append(
                    {
                        "seq": len(self.calls) + 1,
                        "type": call.type,
                        "path": path,
                        "batch_index": call.index,
                        "received_at": now,
                        "call": call.body,
                        "envelope": envelope or {},
                    }
                )
                fresh.append(call)
        return fresh

    def drop(self, dropped: tuple[Dropped, ...], *, path: str, status: int, now: float) -> None:
        """Keep what was not accepted, with every reason."""
        with self._lock:
            for item in dropped:
                self.dropped.append(
                    {
                        "path": path,
                        "status": status,
                        "batch_index": item.index,
                        "received_at": now,
                        "errors": [{"code": e.code, "message": e.line} for e in item.errors],
                        "call": item.body,
                    }
                )

    def calls_view(self, *, type: str | None = None, user_id: str | None = None) -> list[Any]:
        """Accepted calls in arrival order, optionally of one type or one userId."""
        with self._lock:
            found = [
                c
                for c in self.calls
                if (type is None or c["type"] == type)
                and (user_id is None or c["call"].get("userId") == user_id)
            ]
            return copy.deepcopy(found)

    def dropped_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.dropped)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "pipelines_calls": len(self.calls),
                "pipelines_dropped": len(self.dropped),
                "pipelines_duplicates": self.duplicates,
            }
