"""What a store holds: schema version, size, and rows per table with their age.

A SQLite file is read through a read-only connection that never creates, upgrades or writes
it, so this works on a store a gateway is writing, on a backup on a read-only mount, and on a
store of any schema version; its figures add the file's pages and WAL. A file with no schema
version (empty, or another program's tables) is refused in the words every command uses:
describing its tables would present it as a store. A PostgreSQL store is read in one read-only
snapshot (``REPEATABLE READ``); its sizes are each table's ``pg_total_relation_size`` (rows,
indexes and TOAST). Row counts are exact (``count(*)``) on both, so on a large store this
takes as long as reading each table once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.store.base import StoreError
from trackguard.store.files import connect, readonly_uri, schema_version
from trackguard.store.sql import Session, is_postgres_url, session, snapshot

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


class StoreInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``path`` is the file, or the PostgreSQL URL (without its password) and schema; the
    file's own figures (WAL, pages) are None for PostgreSQL, and ``table_bytes`` (each table
    with its indexes) None for SQLite."""

    path: str
    database: str = "sqlite"
    schema_version: int
    size_bytes: int
    wal_bytes: int | None = None
    page_size: int | None = None
    page_count: int | None = None
    freelist_count: int | None = None
    #: Outbox rows by delivery state, from the store's counts (kept exact by every write).
    outbox_states: dict[str, int]
    tables: tuple[TableInfo, ...]
    table_bytes: dict[str, int] | None = None
    #: Whether PostgreSQL's autovacuum runs (None: a SQLite file). Off, dead rows are never
    #: reclaimed and the planner keeps the tables' sizes of when they were last analyzed.
    autovacuum: bool | None = None


def store_info(target: str | os.PathLike[str]) -> StoreInfo:
    """Describe the store ``target`` names (a SQLite path or a ``postgresql://`` URL);
    StoreError when it does not exist or is not a store."""
    if is_postgres_url(target):
        with session(str(target)) as s, snapshot(s):
            return _postgres_info(s)
    p = Path(target)
    if not p.exists():
        raise StoreNotFound(str(p))
    conn = connect(str(p), readonly_uri(p), uri=True)
    try:
        conn.execute("BEGIN")  # one snapshot for every figure
        version = schema_version(conn, str(p))  # 0 (another program's file): refused
        names = [
            str(n)
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables = tuple(_table(lambda q: conn.execute(q).fetchone(), name) for name in names)
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
        outbox_states=_states(states),
        tables=tables,
        page_size=pragma["page_size"],
        page_count=pragma["page_count"],
        freelist_count=pragma["freelist_count"],
    )


def _states(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k in ("pending", "delivered", "failed")}


def _postgres_info(s: Session) -> StoreInfo:
    """The figures of the PostgreSQL store ``s`` is on (read in one :func:`snapshot`)."""
    sizes = {
        str(name): int(n)
        for name, n in s.rows(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace ns ON ns.oid = c.relnamespace"
            " WHERE ns.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            ' ORDER BY c.relname COLLATE "C"'
        )
    }
    version = s.one("SELECT max(version) FROM schema_version")
    counts = {
        str(k): int(v) for k, v in s.rows('SELECT name, n FROM counts ORDER BY name COLLATE "C"')
    }
    autovacuum = s.one("SELECT current_setting('autovacuum') = 'on'")
    return StoreInfo(
        path=s.where,
        database="postgresql",
        schema_version=int(version[0]) if version and version[0] is not None else 0,
        size_bytes=sum(sizes.values()),
        outbox_states=_states(counts),
        tables=tuple(_table(s.one, name) for name in sizes),
        table_bytes=sizes,
        autovacuum=bool(autovacuum and autovacuum[0]),
    )


def _table(one: Callable[[str], tuple[Any, ...] | None], name: str) -> TableInfo:
    """Rows of table ``name`` and the range of its dating column; ``one`` runs a query."""
    counted = one(f'SELECT count(*) FROM "{name}"')
    rows = int(counted[0]) if counted else 0
    dated = TIME_COLUMNS.get(name)
    if dated is None or rows == 0:
        return TableInfo(name=name, rows=rows)
    column, unit = dated
    lo, hi = one(f'SELECT min({column}), max({column}) FROM "{name}"') or (None, None)
    return TableInfo(
        name=name,
        rows=rows,
        oldest=None if lo is None else float(lo) * unit,
        newest=None if hi is None else float(hi) * unit,
    )
