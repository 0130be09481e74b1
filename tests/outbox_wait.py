"""Waiting for delivery in whole-system tests: until the store holds no pending outbox row."""

from __future__ import annotations

import os
import time

from trackguard.store.sqlite import open_store


def drain(db: str | os.PathLike[str], timeout: float = 20.0, poll: float = 0.02) -> None:
    """Return once delivery has settled every outbox row of ``db``; AssertionError (with the
    outbox counts) after ``timeout`` seconds."""
    store = open_store(db)
    try:
        deadline = time.monotonic() + timeout
        while store.outbox_stats().pending:
            assert time.monotonic() < deadline, f"outbox not drained: {store.outbox_stats()}"
            time.sleep(poll)
    finally:
        store.close()
