"""Copy a SQLite store into an empty store (PostgreSQL, or another SQLite file): the way from one
gateway's file to a database several gateways share (``trackguard store copy``).

Everything the protocol keeps is copied with its numbers: outbox rows with their seq, state,
attempts and errors; quarantine records with their id; identity bindings and profiles with
their change numbers; dedupe claims; anonymous activity; the counts; meta (checkpoints). The
source is read in one read transaction (one consistent snapshot) and the destination written in
one transaction, ``batch`` rows at a time, so a failed copy leaves the destination as empty as it
was. Then every table's rows and the counts are compared, source against destination.

The monitor's tables (per-minute counts, alert state) are not copied: they are the history of
the gateway that wrote them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final

import msgspec

from trackguard.store.base import StoreError
from trackguard.store.files import connect, readonly_uri
from trackguard.store.sqlite import SQLiteStore, open_store, sqlite_path

#: The tables copied, each with the key its rows are read in order of.
TABLES: Final = (
    ("outbox", "seq"),
    ("quarantine", "id"),
    ("identities", "email"),
    ("profiles", "person"),
    ("claims", "key"),
    ("anonymous", "anonymous_id"),
    ("meta", "key"),
)
#: Rows read and written at a time.
DEFAULT_BATCH: Final = 5000
_BYTES: Final = {("outbox", "payload"), ("quarantine", "body")}


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

    Raises :class:`StoreError` when the source is not a SQLite store, the destination holds
    data, or the copy does not match; ``progress(table, rows so far)`` is called per batch.
    """
    if batch < 1:
        raise StoreError("batch must be >= 1")
    path = sqlite_path(source)
    if path is None:
        raise StoreError(f"{source!r}: the source must be a SQLite store (a path or sqlite:///)")
    SQLiteStore(path, readonly=True).close()  # a store of this schema (upgraded if older)
    src = connect(path, readonly_uri(path), uri=True)
    dst = open_store(destination)
    try:
        src.execute("BEGIN")  # one snapshot for the whole copy
        target = _target(dst)
        if target.has_data():
            raise StoreError(f"{destination}: the destination store is not empty")
        rows: dict[str, int] = {}
        counts = dict(src.execute("SELECT name, n FROM counts").fetchall())
        with target.transaction():
            for table, key in TABLES:
                columns = [c for c in _columns(src, table) if c in target.columns(table)]
                done = 0
                for chunk in _chunks(src, table, key, columns, batch):
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


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _chunks(
    conn: sqlite3.Connection, table: str, key: str, columns: Sequence[str], batch: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in key order, ``batch`` at a time (keyset: each read is an index
    range, however far in)."""
    cols = ", ".join(columns)
    at = columns.index(key)
    bytes_at = [i for i, c in enumerate(columns) if (table, c) in _BYTES]
    rows = conn.execute(f"SELECT {cols} FROM {table} ORDER BY {key} LIMIT ?", (batch,)).fetchall()
    while rows:
        for i in bytes_at:  # BLOB columns may hold text written by hand
            rows = [
                (*r[:i], r[i].encode() if isinstance(r[i], str) else r[i], *r[i + 1 :])
                for r in rows
            ]
        yield rows
        rows = conn.execute(
            f"SELECT {cols} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
            (rows[-1][at], batch),
        ).fetchall()


def _last_numbers(conn: sqlite3.Connection) -> dict[str, int]:
    """The last outbox seq and quarantine id handed out (AUTOINCREMENT never reuses one,
    even after retention deleted the rows that had it)."""
    found = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    return {name: int(found.get(name, 0)) for name in ("outbox", "quarantine")}


class _Target:
    """How rows are written into one kind of destination store."""

    def has_data(self) -> bool:
        tables = " UNION ALL ".join(f"SELECT 1 FROM {t}" for t, _ in TABLES if t != "meta")
        if self.read(f"SELECT 1 WHERE EXISTS ({tables})"):
            return True
        return any(n for n in self.counts().values())

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.read("SELECT name, n FROM counts")}

    def count(self, table: str) -> int:
        return int(self.read(f"SELECT count(*) FROM {table}")[0][0])

    def read(self, sql: str) -> list[Any]:
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def finish(self, counts: dict[str, int], last: dict[str, int]) -> None:
        raise NotImplementedError


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
        return self.store.read(sql)

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self.store.read(f"PRAGMA table_info({table})")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.store.transaction() as conn:
            self.conn = conn
            try:
                yield
            finally:
                self.conn = None

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
    def __init__(self, store: Any) -> None:
        self.store = store
        self.cur: Any = None

    def read(self, sql: str) -> list[Any]:
        result: list[Any] = self.store._read(sql)
        return result

    def columns(self, table: str) -> set[str]:
        rows = self.store._read(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (self.store.schema, table),
        )
        return {r[0] for r in rows}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        from trackguard.store.postgres import _COMMIT_LOCK

        with self.store._transaction(_COMMIT_LOCK) as cur:
            self.cur = cur
            try:
                yield
            finally:
                self.cur = None

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
