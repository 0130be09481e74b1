"""Copy a SQLite store into an empty store (PostgreSQL, or another SQLite file): the way from one
gateway's file to a database several gateways share (``trackguard store copy``).

Everything the protocol keeps is copied with its numbers: outbox rows with their seq, state,
attempts and errors; quarantine records with their id; identity bindings and profiles with
their change numbers; dedupe claims; anonymous activity; the counts; meta (checkpoints); and
the monitor's tables (per-minute and hourly counts, health snapshots, alert and channel state),
so ``stats``, ``health``, the console's history and firing alerts carry on from the destination.
The source is read in one read transaction (one consistent snapshot) and the destination
written in one transaction, ``batch`` rows at a time, so a failed copy leaves the destination
as empty as it was. Then every table's rows and the counts are compared, source against
destination.

A source no monitor wrote has no monitor tables: they copy as 0 rows. One whose counts predate
``monitor_hourly`` gets its hourly rows rolled up from the counts, as the monitor would.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec

from trackguard.store.base import StoreError
from trackguard.store.files import connect, readonly_uri
from trackguard.store.monitor_schema import HOURLY_FROM_COUNTS, MONITOR_SCHEMA, create_statements
from trackguard.store.sqlite import SQLiteStore, open_store
from trackguard.store.urls import (
    SQLITE_FORMS,
    display_url,
    is_postgres_url,
    sqlite_path,
    store_location,
)

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

#: The store's tables copied, each with the key its rows are read in order of.
STORE_TABLES: Final = (
    ("outbox", ("seq",)),
    ("quarantine", ("id",)),
    ("identities", ("email",)),
    ("profiles", ("person",)),
    ("claims", ("key",)),
    ("anonymous", ("anonymous_id",)),
    ("meta", ("key",)),
)
#: Every table copied, in the order of the copy and of :attr:`CopyReport.rows`: the store's,
#: then the monitor's (each keyed by its primary key).
TABLES: Final = STORE_TABLES + tuple((t.name, t.key) for t in MONITOR_SCHEMA)
#: Rows read and written at a time.
DEFAULT_BATCH: Final = 5000
_BYTES: Final = {("outbox", "payload"), ("quarantine", "body")} | {
    (t.name, c) for t in MONITOR_SCHEMA for c, kind in t.columns if kind == "blob"
}
_MONITOR: Final = {t.name: t for t in MONITOR_SCHEMA}


class CopyReport(msgspec.Struct, frozen=True):
    """Rows copied per table (equal in source and destination), and the counts copied."""

    rows: dict[str, int]
    counts: dict[str, int]


def copy_store(
    source: str | os.PathLike[str],
    destination: str,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy the SQLite store at ``source`` into the empty store ``destination`` (a path,
    ``sqlite:///path`` or ``postgresql://…``, created when missing) and verify the copy.

    Raises :class:`StoreError` when the source is not a SQLite store, the destination is the
    source itself (however spelled) or holds data, or the copy does not match;
    ``progress(table, rows so far)`` is called per batch.
    """
    if batch < 1:
        raise StoreError("batch must be >= 1")
    path = _source_file(source)
    _refuse_itself(path, destination)
    SQLiteStore(path, readonly=True).close()  # a store of this schema (upgraded if older)
    src = connect(path, readonly_uri(path), uri=True)
    dst = open_store(destination)
    try:
        src.execute("BEGIN")  # one snapshot for the whole copy
        target = _target(dst)
        if target.has_data():
            raise StoreError(f"{destination}: the destination store is not empty")
        present = {
            str(n) for (n,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        rows: dict[str, int] = {}
        counts = dict(src.execute("SELECT name, n FROM counts").fetchall())
        with target.transaction():
            target.create_monitor_tables()
            for table, key in TABLES:
                relation, columns = _source(src, present, table)
                columns = [c for c in columns if c in target.columns(table)]
                done = 0
                if relation is not None:
                    for chunk in _chunks(src, relation, table, key, columns, batch):
                        target.write(table, columns, chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(table, done)
                rows[table] = done
            target.finish(counts, _last_numbers(src))
        for table, n in rows.items():
            found = target.count(table)
            if found != n:
                raise StoreError(f"copy check failed: {table} has {found} rows, not {n}")
        copied = target.counts()
        if {k: copied.get(k) for k in counts} != counts:
            raise StoreError(f"copy check failed: counts {copied} instead of {counts}")
        return CopyReport(rows=rows, counts=counts)
    finally:
        src.close()
        dst.close()


def _source_file(source: str | os.PathLike[str]) -> str:
    """The SQLite file ``source`` names: a PostgreSQL store is not copied from, and any other
    URL is refused as every command refuses it."""
    if is_postgres_url(source):
        shown = display_url(os.fspath(source))
        raise StoreError(f"{shown!r}: the source must be a SQLite store ({SQLITE_FORMS})")
    return store_location(os.fspath(source), postgres=False)


def _refuse_itself(source: str, destination: str) -> None:
    """Refuse a destination that is the source file, before either is opened: an empty store
    would be "copied" into itself and reported a success, a filled one refused as not empty.
    Compared as files (``samefile``), so another spelling of the path (relative or absolute,
    a ``sqlite:///`` URL, a symbolic link) is the same store too."""
    dest = sqlite_path(destination)
    if dest is None:
        return  # a PostgreSQL store: not the source
    with contextlib.suppress(OSError):  # also a file the copy will create: not the source
        if os.path.samefile(source, dest):
            raise StoreError(
                f"{destination!r}: is the source store itself;"
                " copy into another SQLite file or a PostgreSQL store"
            )


def _source(
    conn: sqlite3.Connection, present: set[str], table: str
) -> tuple[str | None, list[str]]:
    """What ``table``'s rows are read from in the source (None: nothing), and its columns."""
    if table in present:
        return table, [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    declared = [c for c, _ in _MONITOR[table].columns] if table in _MONITOR else []
    if table == "monitor_hourly" and "monitor_counts" in present:
        return f"({HOURLY_FROM_COUNTS})", declared
    return None, declared


def _chunks(
    conn: sqlite3.Connection,
    relation: str,
    table: str,
    key: Sequence[str],
    columns: Sequence[str],
    batch: int,
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``relation`` in key order, ``batch`` at a time (keyset: each read is an
    index range, however far in; a key of several columns compares as a row value)."""
    cols = ", ".join(columns)
    keys = ", ".join(key)
    at = [columns.index(k) for k in key]
    marks = ", ".join("?" for _ in key)
    bytes_at = [i for i, c in enumerate(columns) if (table, c) in _BYTES]
    first = f"SELECT {cols} FROM {relation} ORDER BY {keys} LIMIT ?"
    rows = conn.execute(first, (batch,)).fetchall()
    after = f"SELECT {cols} FROM {relation} WHERE ({keys}) > ({marks}) ORDER BY {keys} LIMIT ?"
    while rows:
        for i in bytes_at:  # BLOB columns may hold text written by hand
            rows = [
                (*r[:i], r[i].encode() if isinstance(r[i], str) else r[i], *r[i + 1 :])
                for r in rows
            ]
        yield rows
        rows = conn.execute(after, (*(rows[-1][i] for i in at), batch)).fetchall()


def _last_numbers(conn: sqlite3.Connection) -> dict[str, int]:
    """The last outbox seq and quarantine id handed out (AUTOINCREMENT never reuses one,
    even after retention deleted the rows that had it)."""
    found = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    return {name: int(found.get(name, 0)) for name in ("outbox", "quarantine")}


class _Target(ABC):
    """How rows are written into one kind of destination store."""

    def has_data(self) -> bool:
        """Whether a table copied into holds a row (a monitor table the destination does
        not have yet holds none), or a count is not 0."""
        names = [t for t, _ in TABLES if t != "meta" and self.columns(t)]
        tables = " UNION ALL ".join(f"SELECT 1 FROM {t}" for t in names)
        if self.read(f"SELECT 1 WHERE EXISTS ({tables})"):
            return True
        return any(n for n in self.counts().values())

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.read("SELECT name, n FROM counts")}

    def count(self, table: str) -> int:
        return int(self.read(f"SELECT count(*) FROM {table}")[0][0])

    @abstractmethod
    def read(self, sql: str) -> list[Any]:
        """Rows of one query."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The columns of ``table`` (none: no such table)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """The one transaction the copy writes in."""

    @abstractmethod
    def create_monitor_tables(self) -> None:
        """Make the monitor's tables where the store's schema does not."""

    @abstractmethod
    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values of ``columns``) into ``table``."""

    @abstractmethod
    def finish(self, counts: dict[str, int], last: dict[str, int]) -> None:
        """Set the counts and the last outbox seq and quarantine id handed out."""


def _target(store: Any) -> _Target:
    if isinstance(store, SQLiteStore):
        return _SQLiteTarget(store)
    from trackguard.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return _PostgresTarget(store)


class _SQLiteTarget(_Target):
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.conn: sqlite3.Connection | None = None

    def read(self, sql: str) -> list[Any]:
        if self.conn is not None:  # inside the copy's transaction: what it wrote so far
            return self.conn.execute(sql).fetchall()
        return self.store.read(sql)

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self.read(f"PRAGMA table_info({table})")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.store.transaction() as conn:
            self.conn = conn
            try:
                yield
            finally:
                self.conn = None

    def create_monitor_tables(self) -> None:
        # The monitor makes them on a SQLite file on first use; the copy makes them now.
        assert self.conn is not None
        for statement in create_statements("sqlite"):
            self.conn.execute(statement)

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        assert self.conn is not None
        marks = ", ".join("?" for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def finish(self, counts: dict[str, int], last: dict[str, int]) -> None:
        assert self.conn is not None
        self.conn.executemany(
            "INSERT OR REPLACE INTO counts (name, n) VALUES (?, ?)", list(counts.items())
        )
        for name, seq in last.items():
            self.conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq))


class _PostgresTarget(_Target):
    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.cur: Any = None

    def read(self, sql: str) -> list[Any]:
        return self.store.read(sql)

    def columns(self, table: str) -> set[str]:
        rows = self.store.read(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (self.store.schema, table),
        )
        return {r[0] for r in rows}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.store.transaction() as cur:
            self.cur = cur
            try:
                yield
            finally:
                self.cur = None

    def create_monitor_tables(self) -> None:
        pass  # the store's migrations made them

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        texts = [i for i, c in enumerate(columns) if table == "meta" and c == "value"]
        with self.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                for i in texts:  # SQLite keeps meta values of any type; here they are text
                    row = (*row[:i], str(row[i]), *row[i + 1 :])
                copy.write_row(row)

    def finish(self, counts: dict[str, int], last: dict[str, int]) -> None:
        self.cur.executemany(
            "INSERT INTO counts (name, n) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET n = excluded.n",
            sorted(counts.items()),
        )
        for table, key in (("outbox", "seq"), ("quarantine", "id")):
            self.cur.execute(
                f"UPDATE sequences SET last = greatest(%s, (SELECT coalesce(max({key}), 0)"
                f" FROM {table})) WHERE name = %s",
                (last[table], table),
            )
