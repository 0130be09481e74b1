"""Durable storage: the Store protocol, its SQLite implementation and group commit.

``open_store`` picks the implementation from a path or URL; the gateway commits through a
:class:`GroupCommitter`, delivery leases and marks rows on the store directly.
"""

from trackguard.store.base import (
    OutboxRow,
    OutboxStats,
    QuarantineRecord,
    Store,
    StoreClosed,
    StoreError,
    Write,
)
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import SQLiteStore, open_store

__all__ = [
    "GroupCommitter",
    "OutboxRow",
    "OutboxStats",
    "QuarantineRecord",
    "SQLiteStore",
    "Store",
    "StoreClosed",
    "StoreError",
    "Write",
    "open_store",
]
