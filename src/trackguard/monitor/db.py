"""The monitor's tables in the store's SQLite file, on a connection of its own.

WAL lets this connection write beside the store's writer; each flush is one short
transaction. Tables: ``monitor_counts`` (per-minute buckets), ``monitor_hourly`` (the same
counts per hour and event, without route and source, written in the same transaction: a week
is ~170 rows per event and name instead of ~10,000, so week-long views stay cheap),
``monitor_health`` (data-health
snapshots), ``monitor_alerts`` (the state of every rule, so a restart never re-notifies a
firing it already sent) and ``monitor_channels`` (notifier health, for ``alerts status``).

``readonly=True`` (``stats``, ``health``, ``alerts status``) never creates or writes the file
and opens one on a read-only mount; monitor tables a store does not have yet read as empty.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.monitor.tally import Key
from trackguard.store.base import StoreError
from trackguard.store.files import readonly_uri
from trackguard.store.retention import MONITOR_TABLES, delete_batches

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS monitor_counts (
        minute INTEGER NOT NULL, event TEXT NOT NULL, route TEXT NOT NULL,
        source TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (minute, event, route, source, kind, name)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS monitor_hourly (
        hour INTEGER NOT NULL, event TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        n INTEGER NOT NULL, PRIMARY KEY (hour, event, kind, name)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS monitor_health (
        at REAL NOT NULL, metric TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (metric, at)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS monitor_alerts (
        rule TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS monitor_channels (
        channel TEXT PRIMARY KEY, status BLOB NOT NULL) WITHOUT ROWID""",
)
_UPSERT: Final = (
    "INSERT INTO monitor_counts (minute, event, route, source, kind, name, n)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
)

_UPSERT_HOURLY: Final = (
    "INSERT INTO monitor_hourly (hour, event, kind, name, n) VALUES (?,?,?,?,?)"
    " ON CONFLICT DO UPDATE SET n = n + excluded.n"
)
# Rolls up counts written before ``monitor_hourly`` existed (a store from an older trackguard).
_BACKFILL_HOURLY: Final = (
    "INSERT INTO monitor_hourly (hour, event, kind, name, n)"
    " SELECT minute / 60, event, kind, name, sum(n) FROM monitor_counts GROUP BY 1, 2, 3, 4"
)


class CountRow(msgspec.Struct, frozen=True):
    """Counts summed over a range of minutes for one (event, route, source, kind, name)."""

    event: str
    route: str
    source: str
    kind: str
    name: str
    n: int


class MonitorDB:
    """Counters, health snapshots and alert state; every method is thread-safe."""

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0, readonly: bool = False
    ) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        if readonly and not os.path.exists(self.path):
            raise StoreNotFound(str(self.path))
        target = readonly_uri(self.path) if readonly else self.path
        try:
            self._conn = sqlite3.connect(
                target,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=readonly,
            )
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open the store: {e}") from e
        try:
            if readonly:
                self._shadow_missing_tables()
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                with self._transaction() as conn:
                    had_hourly = _has(conn, "monitor_hourly")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    if not had_hourly:
                        conn.execute(_BACKFILL_HOURLY)
        except sqlite3.Error as e:
            self._conn.close()
            raise StoreError(f"{self.path}: cannot open the store: {e}") from e

    def _shadow_missing_tables(self) -> None:
        """Empty in-memory stand-ins for the monitor tables the file lacks (a store no
        gateway has monitored yet), so reads answer "nothing" without writing the file."""
        self._conn.execute("PRAGMA temp_store = MEMORY")
        present = {
            name
            for (name,) in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for statement in _SCHEMA:
            name = re.findall(r"EXISTS (\w+)", statement)[0]
            if name not in present:
                self._conn.execute(statement.replace("CREATE TABLE", "CREATE TEMP TABLE"))

    def add_counts(self, counts: Mapping[Key, int]) -> None:
        if not counts:
            return
        with self._transaction() as conn:
            conn.executemany(_UPSERT, ((*k, n) for k, n in counts.items()))
            conn.executemany(_UPSERT_HOURLY, _hourly(counts))

    def counts(self, since: float, until: float) -> list[CountRow]:
        """Counts of the minutes that start in ``[since, until)``, summed per key."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT event, route, source, kind, name, sum(n) FROM monitor_counts"
                " WHERE minute >= ? AND minute < ? GROUP BY event, route, source, kind, name",
                (_minute(since), _minute(until)),
            ).fetchall()
        return [CountRow(*r) for r in rows]

    def prune(self, before: float, *, batch: int = 1000) -> int:
        """Delete counter buckets and health snapshots older than ``before``, ``batch`` rows
        per transaction (the lock is released between batches, so the gateway's commits and
        flushes never wait long); returns how many buckets went."""
        counts_rule, *others = MONITOR_TABLES
        buckets = delete_batches(self._transaction, counts_rule, before, batch)
        for rule in others:
            delete_batches(self._transaction, rule, before, batch)
        return buckets

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def add_health(self, at: float, values: Mapping[str, int]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO monitor_health (at, metric, value) VALUES (?,?,?)",
                ((at, k, v) for k, v in values.items()),
            )

    def health_at(self, metric: str, at: float) -> int | None:
        """The latest snapshot of ``metric`` taken at or before ``at``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM monitor_health WHERE metric = ? AND at <= ?"
                " ORDER BY at DESC LIMIT 1",
                (metric, at),
            ).fetchone()
        return None if row is None else int(row[0])

    def save_blobs(self, table: str, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace rows of ``monitor_alerts`` or ``monitor_channels``."""
        column = {"monitor_alerts": ("rule", "state"), "monitor_channels": ("channel", "status")}
        key, value = column[table]
        with self._lock:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO {table} ({key}, {value}) VALUES (?, ?)", list(items)
            )

    def load_blobs(self, table: str) -> dict[str, bytes]:
        column = {"monitor_alerts": ("rule", "state"), "monitor_channels": ("channel", "status")}
        key, value = column[table]
        with self._lock:
            rows = self._conn.execute(f"SELECT {key}, {value} FROM {table}").fetchall()
        return {str(k): bytes(v) for k, v in rows}

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A read of the store's own tables (quarantine ids, outbox backlog, health)."""
        with self._lock:
            try:
                return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]
            except sqlite3.OperationalError:  # the store's tables do not exist (yet)
                return []

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _has(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def _minute(ts: float) -> int:
    return int(ts // 60)


def _hourly(counts: Mapping[Key, int]) -> list[tuple[int, str, str, str, int]]:
    """The counts summed per (hour, event, kind, name)."""
    rolled: dict[tuple[int, str, str, str], int] = {}
    for (minute, event, _route, _source, kind, name), n in counts.items():
        key = (minute // 60, event, kind, name)
        rolled[key] = rolled.get(key, 0) + n
    return [(*k, n) for k, n in rolled.items()]
