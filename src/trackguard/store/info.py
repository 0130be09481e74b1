"""What a store file holds: schema version, size, pages, and rows per table with their age.

Read through a read-only connection that never creates, upgrades or writes the file, so it
works on a store a gateway is writing, on a backup on a read-only mount, and on a file of any
schema version (``trackguard store info``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.store.base import StoreError
from trackguard.store.files import readonly_uri

__all__ = ["StoreInfo", "TableInfo", "store_info"]

#: The column that dates each table's rows, and its unit in seconds (tables not listed hold no
#: time: identities, profiles, counts, meta, alert and channel state).
TIME_COLUMNS: Final = {
    "outbox": ("received_at", 1),
    "quarantine": ("received_at", 1),
    "claims": ("expires_at", 1),
    "anonymous": ("first_seen", 1),
    "monitor_counts": ("minute", 60),
    "monitor_health": ("at", 1),
}


class TableInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Rows of one table; ``oldest``/``newest`` are Unix times of its dating column (claims:
    expiry times), None for a table without one or without rows."""

    name: str
    rows: int
    oldest: float | None = None
    newest: float | None = None


class StoreInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    schema_version: int
    size_bytes: int
    wal_bytes: int
    page_size: int
    page_count: int
    freelist_count: int
    #: Outbox rows by delivery state, from the store's counts (kept exact by every write).
    outbox_states: dict[str, int]
    tables: tuple[TableInfo, ...]


def store_info(path: str | os.PathLike[str]) -> StoreInfo:
    """Describe the store at ``path``; StoreError when it does not exist or is not SQLite."""
    p = Path(path)
    if not p.exists():
        raise StoreNotFound(str(p))
    try:
        conn = sqlite3.connect(readonly_uri(p), uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as e:
        raise StoreError(f"{p}: cannot open the store: {e}") from e
    try:
        conn.execute("BEGIN")  # one snapshot for every figure
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        names = [
            str(n)
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        if version == 0 and not names:
            raise StoreError(f"{p}: not a trackguard store (no schema)")
        tables = tuple(_table(conn, name) for name in names)
        states = (
            {str(k): int(v) for k, v in conn.execute("SELECT name, n FROM counts")}
            if "counts" in names
            else {}
        )
        pragma = {
            name: int(conn.execute(f"PRAGMA {name}").fetchone()[0])
            for name in ("page_size", "page_count", "freelist_count")
        }
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        raise StoreError(f"{p}: {e}") from e
    finally:
        conn.close()
    wal = p.with_name(p.name + "-wal")
    return StoreInfo(
        path=str(p),
        schema_version=version,
        size_bytes=p.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        outbox_states={k: v for k, v in states.items() if k in ("pending", "delivered", "failed")},
        tables=tables,
        **pragma,
    )


def _table(conn: sqlite3.Connection, name: str) -> TableInfo:
    rows = int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
    dated = TIME_COLUMNS.get(name)
    if dated is None or rows == 0:
        return TableInfo(name=name, rows=rows)
    column, unit = dated
    lo, hi = conn.execute(f'SELECT min({column}), max({column}) FROM "{name}"').fetchone()
    return TableInfo(
        name=name,
        rows=rows,
        oldest=None if lo is None else float(lo) * unit,
        newest=None if hi is None else float(hi) * unit,
    )
