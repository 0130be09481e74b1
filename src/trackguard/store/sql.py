"""One way to run SQL on either store, for the queries beyond the Store protocol.

The quarantine queries, the console's aggregates, retention, the monitor's tables and replay
read and write more than the protocol's calls; they write their SQL once, with ``?``
placeholders, and run it through a :class:`Session` that speaks SQLite or PostgreSQL. Where the
two dialects differ (JSON functions, table listings, date formatting) the caller branches on
:attr:`Session.dialect`; everything else is shared text.

A session is short-lived: :func:`session` opens one on a store object, a path, a
``sqlite:///`` URL or a ``postgresql://`` URL, and closes it when the block ends. On SQLite it is
its own connection to the file (WAL readers never block the gateway's writer); on PostgreSQL it
borrows a connection of a :class:`~trackguard.store.postgres.PostgresStore` (which checks and
migrates the schema first). A target that holds no store is :class:`StoreNotFound`, never a new
empty store: a typo in ``--db`` must not look like an empty quarantine. Database errors surface
as :class:`StoreError` with the store named.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

from trackguard.errors import StoreError, StoreNotFound, first_line
from trackguard.store.files import connect, readonly_uri, readwrite_uri, schema_version
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore, newer_schema
from trackguard.store.urls import (
    is_postgres_url,
    postgres_store_class,
    sqlite_path,
    unsupported_url,
)

if TYPE_CHECKING:
    import psycopg

    from trackguard.store.postgres import PostgresStore

__all__ = [
    "Dialect",
    "PostgresSession",
    "SQLiteSession",
    "Session",
    "is_postgres_url",
    "postgres_sql",
    "session",
    "snapshot",
]

Dialect = Literal["sqlite", "postgresql"]

#: How long a SQLite session waits for the gateway's write lock before failing (ms).
_BUSY_TIMEOUT_MS: Final = 5000


class Session(ABC):
    """A connection to a store's database; SQL is written with ``?`` placeholders."""

    dialect: Dialect
    #: The store in messages (a path, or a URL without its password).
    where: str

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` returns."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row ``sql`` returns, or None."""
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement; the number of rows it changed."""

    @abstractmethod
    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each parameter tuple."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction: committed when the block ends, rolled back on an error."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the store has table ``name`` (the monitor's appear on first use)."""


class SQLiteSession(Session):
    """A session on a SQLite connection the caller opened (and closes)."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self.where = where

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]
        except sqlite3.Error as e:
            raise StoreError(f"{self.where}: {e}") from e

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as e:
            raise StoreError(f"{self.where}: {e}") from e

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"{self.where}: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.run("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.run("COMMIT")

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self.one(sql, (name,)) is not None


def postgres_sql(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresSession(Session):
    """A session on a psycopg connection borrowed from a store, its ``search_path`` set."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: Any, schema: str, where: str) -> None:
        self._conn = conn
        self._schema = schema
        self.where = where

    def _error(self, e: psycopg.Error) -> StoreError:
        return StoreError(f"{self.where}: {first_line(e)}")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            cur = self._conn.execute(postgres_sql(sql), list(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        except psycopg.Error as e:
            raise self._error(e) from None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        import psycopg

        try:
            rowcount: int = self._conn.execute(postgres_sql(sql), list(params)).rowcount
        except psycopg.Error as e:
            raise self._error(e) from None
        return rowcount

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        import psycopg

        if not params:
            return
        try:
            with self._conn.cursor() as cur:
                cur.executemany(postgres_sql(sql), [list(p) for p in params])
        except psycopg.Error as e:
            raise self._error(e) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        import psycopg

        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as e:
            raise self._error(e) from None

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
        return self.one(sql, (self._schema, name)) is not None


@contextmanager
def snapshot(s: Session) -> Iterator[None]:
    """One read snapshot for several statements (SQLite's deferred transaction; PostgreSQL's
    REPEATABLE READ), so figures read one after another describe the same rows."""
    if s.dialect == "postgresql":
        with s.transaction():
            s.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield
        return
    s.run("BEGIN")
    try:
        yield
    finally:
        s.run("COMMIT")


@contextmanager
def session(
    target: SQLiteStore | PostgresStore | str | os.PathLike[str], *, readonly: bool = True
) -> Iterator[Session]:
    """A session on the store ``target`` names (module docstring).

    ``readonly`` sessions cannot write: SQLite opens the file read-only (so a store on a
    read-only mount can be queried), PostgreSQL runs the session's transactions read-only.
    """
    if isinstance(target, SQLiteStore):
        with _sqlite_session(target.path, readonly) as s:
            yield s
        return
    if isinstance(target, str) and is_postgres_url(target):
        store = postgres_store_class()(target, create=False, pool_size=1)
        try:
            with _postgres_session(store, readonly) as s:
                yield s
        finally:
            store.close()
        return
    if not isinstance(target, str | os.PathLike):
        with _postgres_session(target, readonly) as s:
            yield s
        return
    path = sqlite_path(target)
    if path is None:
        raise unsupported_url(target)
    with _sqlite_session(path, readonly) as s:
        yield s


@contextmanager
def _postgres_session(store: PostgresStore, readonly: bool) -> Iterator[Session]:
    import psycopg

    with store.connection() as conn:
        if readonly:
            conn.execute("SET default_transaction_read_only = on")
        try:
            yield PostgresSession(conn, store.schema, store.where)
        finally:
            if readonly and not conn.closed and not conn.broken:
                try:
                    conn.execute("SET default_transaction_read_only = off")
                except psycopg.Error:
                    conn.close()


@contextmanager
def _sqlite_session(path: str, readonly: bool) -> Iterator[Session]:
    """A connection to an existing SQLite store of a schema this code reads."""
    if path in ("", ":memory:") or path.startswith("file:"):
        raise StoreError(f"a store file path is needed, not {path!r}")
    if not os.path.exists(path):
        raise StoreNotFound(str(path))
    # mode=rw/ro: never create a file, even if it disappears between the check and here.
    uri = readonly_uri(path) if readonly else readwrite_uri(path)
    conn = connect(path, uri, uri=True, timeout=0)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        version = schema_version(conn, path)
        if version > SCHEMA_VERSION:
            raise newer_schema(path, version)
        if version < SCHEMA_VERSION:
            # An older file is upgraded in place, as the gateway would on start (the same
            # migrations, in one transaction, after a backup), so every query sees today's
            # columns; on a read-only location SQLiteStore refuses with the reason.
            SQLiteStore(path, readonly=readonly).close()
        if readonly:
            conn.execute("PRAGMA query_only = 1")
        yield SQLiteSession(conn, path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from exc
    finally:
        conn.close()
