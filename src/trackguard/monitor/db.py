"""The monitor's tables in the store's database: a SQLite file or a PostgreSQL schema.

Tables: ``monitor_counts`` (per-minute buckets), ``monitor_hourly`` (the same counts per hour
and event, without route and source, written in the same transaction: a week is ~170 rows per
event and name instead of ~10,000, so week-long views stay cheap), ``monitor_health``
(data-health snapshots), ``monitor_alerts`` (the state of every rule, so a restart never
re-notifies a firing it already sent) and ``monitor_channels`` (notifier health, for
``alerts status``).

Every statement is ``?``-placeholder SQL run through a :class:`~trackguard.store.sql.Session`,
the same text on both databases. Counters are **added** (``n = n + excluded.n``), never
replaced: every gateway process flushes its own counts into the same rows, so two gateways on
one database (or ``serve --workers``) sum. Rows are written in key order, so two flushes on
PostgreSQL lock shared rows in the same order and never deadlock.

On SQLite the tables appear on first use, on a connection of the monitor's own (WAL lets it
write beside the store's writer; each flush is one short transaction). On PostgreSQL the
store's migrations create them, and the monitor borrows a connection of a small
:class:`~trackguard.store.postgres.PostgresStore` of its own per call. Both read the tables'
one declaration, :data:`~trackguard.store.monitor_schema.MONITOR_SCHEMA`.

``readonly=True`` (``stats``, ``health``, ``alerts status``) never creates or writes the store
and opens a SQLite file on a read-only mount; monitor tables a SQLite store does not have yet
read as empty, but a SQLite file that is no trackguard store is refused.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Final

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.monitor.tally import Key
from trackguard.store.base import StoreError
from trackguard.store.files import cannot_open, connect, readonly_uri, schema_version
from trackguard.store.monitor_schema import HOURLY_FROM_COUNTS, MONITOR_SCHEMA, create_statements
from trackguard.store.retention import MONITOR_TABLES, delete_batches
from trackguard.store.sql import Dialect, Session, SQLiteSession, session
from trackguard.store.urls import (
    is_postgres_url,
    postgres_store_class,
    sqlite_path,
    unsupported_url,
)

# Both dialects: PostgreSQL needs the conflict target and the table-qualified old value.
_UPSERT: Final = (
    "INSERT INTO monitor_counts (minute, event, route, source, kind, name, n)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (minute, event, route, source, kind, name)"
    " DO UPDATE SET n = monitor_counts.n + excluded.n"
)
_UPSERT_HOURLY: Final = (
    "INSERT INTO monitor_hourly (hour, event, kind, name, n) VALUES (?,?,?,?,?)"
    " ON CONFLICT (hour, event, kind, name) DO UPDATE SET n = monitor_hourly.n + excluded.n"
)
_UPSERT_HEALTH: Final = (
    "INSERT INTO monitor_health (at, metric, value) VALUES (?,?,?)"
    " ON CONFLICT (metric, at) DO UPDATE SET value = excluded.value"
)
#: ``save_blobs``' tables: (key column, value column).
_BLOBS: Final = {"monitor_alerts": ("rule", "state"), "monitor_channels": ("channel", "status")}
_BACKFILL_HOURLY: Final = (
    f"INSERT INTO monitor_hourly (hour, event, kind, name, n) {HOURLY_FROM_COUNTS}"
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
    """Counters, health snapshots and alert state; every method is thread-safe.

    ``target`` is a SQLite path, ``sqlite:///path`` or a ``postgresql://`` URL.
    """

    dialect: Dialect

    def __init__(
        self, target: str | os.PathLike[str], *, busy_timeout: float = 5.0, readonly: bool = False
    ) -> None:
        self.path = os.fspath(target)
        self._lock = threading.Lock()
        self._close: Callable[[], None]
        self._open: Callable[[], AbstractContextManager[Session]]
        if is_postgres_url(self.path):
            self._open_postgres(readonly)
        else:
            self._open_sqlite(busy_timeout, readonly)

    def _open_postgres(self, readonly: bool) -> None:
        # One connection: the monitor's calls are serial (the lock), and a pool of the
        # monitor's own never takes a connection the gateway's commits are waiting for.
        store = postgres_store_class()(self.path, create=not readonly, pool_size=1)
        self.dialect = "postgresql"
        self._open = lambda: session(store, readonly=readonly)
        self._close = store.close

    def _open_sqlite(self, busy_timeout: float, readonly: bool) -> None:
        path = sqlite_path(self.path)
        if path is None:
            raise unsupported_url(self.path)
        if readonly and not os.path.exists(path):
            raise StoreNotFound(path)
        conn = connect(
            path,
            readonly_uri(path) if readonly else path,
            uri=readonly,
            timeout=busy_timeout,
            check_same_thread=False,
        )
        if readonly:
            try:
                schema_version(conn, path)  # refuses a SQLite file that holds no store
            except StoreError:
                conn.close()
                raise
        self.dialect = "sqlite"
        own = SQLiteSession(conn, path)
        self._open = lambda: nullcontext(own)  # the one session, lent per call
        self._close = conn.close
        try:
            if readonly:
                _shadow_missing_tables(own)
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                with own.transaction():
                    had_hourly = own.has_table("monitor_hourly")
                    for statement in create_statements("sqlite"):
                        own.run(statement)
                    if not had_hourly:
                        own.run(_BACKFILL_HOURLY)
        except (sqlite3.Error, StoreError) as e:
            conn.close()
            reason = e.__cause__ if isinstance(e, StoreError) and e.__cause__ else e
            raise cannot_open(path, reason) from e

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._lock, self._open() as s:
            yield s

    def add_counts(self, counts: Mapping[Key, int]) -> None:
        """Add ``counts`` to the minute and hour buckets, in one transaction."""
        if not counts:
            return
        with self._session() as s, s.transaction():
            s.run_many(_UPSERT, [(*k, n) for k, n in sorted(counts.items())])
            s.run_many(_UPSERT_HOURLY, _hourly(counts))

    def counts(self, since: float, until: float) -> list[CountRow]:
        """Counts of the minutes that start in ``[since, until)``, summed per key."""
        with self._session() as s:
            rows = s.rows(
                "SELECT event, route, source, kind, name, CAST(sum(n) AS BIGINT)"
                " FROM monitor_counts WHERE minute >= ? AND minute < ?"
                " GROUP BY event, route, source, kind, name",
                (_minute(since), _minute(until)),
            )
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
    def _transaction(self) -> Iterator[Session]:
        with self._session() as s, s.transaction():
            yield s

    def add_health(self, at: float, values: Mapping[str, int]) -> None:
        with self._session() as s, s.transaction():
            s.run_many(_UPSERT_HEALTH, [(at, k, v) for k, v in sorted(values.items())])

    def health_at(self, metric: str, at: float) -> int | None:
        """The latest snapshot of ``metric`` taken at or before ``at``."""
        with self._session() as s:
            row = s.one(
                "SELECT value FROM monitor_health WHERE metric = ? AND at <= ?"
                " ORDER BY at DESC LIMIT 1",
                (metric, at),
            )
        return None if row is None else int(row[0])

    def save_blobs(self, table: str, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace rows of ``monitor_alerts`` or ``monitor_channels``."""
        key, value = _BLOBS[table]
        with self._session() as s:
            s.run_many(
                f"INSERT INTO {table} ({key}, {value}) VALUES (?, ?)"
                f" ON CONFLICT ({key}) DO UPDATE SET {value} = excluded.{value}",
                sorted(items),
            )

    def load_blobs(self, table: str) -> dict[str, bytes]:
        key, value = _BLOBS[table]
        with self._session() as s:
            rows = s.rows(f"SELECT {key}, {value} FROM {table}")
        return {str(k): bytes(v) for k, v in rows}

    def has_table(self, name: str) -> bool:
        """Whether the store has table ``name`` (a SQLite file may lack the store's own)."""
        with self._session() as s:
            return s.has_table(name)

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A read of the store's own tables (quarantine ids, outbox backlog, health).

        On SQLite a table the file does not have (yet) reads as no rows; on PostgreSQL the
        store's migrations made every table, so an error there is a real one and raises.
        """
        with self._session() as s:
            try:
                return s.rows(sql, params)
            except StoreError as e:
                if isinstance(e.__cause__, sqlite3.OperationalError):
                    return []
                raise

    def close(self) -> None:
        with self._lock:
            self._close()


def _shadow_missing_tables(s: Session) -> None:
    """Empty in-memory stand-ins for the monitor tables a SQLite file lacks (a store no
    gateway has monitored yet), so reads answer "nothing" without writing the file."""
    s.run("PRAGMA temp_store = MEMORY")
    for table in MONITOR_SCHEMA:
        if not s.has_table(table.name):
            s.run(table.create("sqlite", temp=True))


def _minute(ts: float) -> int:
    return int(ts // 60)


def _hourly(counts: Mapping[Key, int]) -> list[tuple[int, str, str, str, int]]:
    """The counts summed per (hour, event, kind, name), in key order."""
    rolled: dict[tuple[int, str, str, str], int] = {}
    for (minute, event, _route, _source, kind, name), n in counts.items():
        key = (minute // 60, event, kind, name)
        rolled[key] = rolled.get(key, 0) + n
    return [(*k, n) for k, n in sorted(rolled.items())]
