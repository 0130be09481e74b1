"""``trackguard.store.sql``: one session over SQLite or PostgreSQL, ``?`` placeholders on both.

Each test runs against a SQLite file and a PostgreSQL schema of its own (``target``: a path or
a ``postgresql://...?schema=`` URL naming a store that exists) with the same expectations.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from trackguard.errors import StoreError, StoreNotFound
from trackguard.monitor.db import MonitorDB
from trackguard.store.monitor_schema import MONITOR_SCHEMA
from trackguard.store.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from trackguard.store.postgres import PostgresStore
from trackguard.store.sql import (
    PostgresSession,
    Session,
    SQLiteSession,
    is_postgres_url,
    postgres_sql,
    session,
)
from trackguard.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from trackguard.store.sqlite import SQLiteStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store of each kind: its path or URL."""
    if request.param == "sqlite":
        where = str(tmp_path / "tg.db")
    else:
        url, schema = request.getfixturevalue("pg_schema")
        where = f"{url}?schema={schema}"
    open_store(where).close()
    return where


def _schemas(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    return int(row[0]) if row else -1


def test_the_dialect_and_where(target: str) -> None:
    with session(target) as s:
        assert s.dialect == ("postgresql" if is_postgres_url(target) else "sqlite")
        assert s.where == target


def test_placeholders_beside_a_literal_percent(target: str) -> None:
    with session(target, readonly=False) as s:
        s.run("INSERT INTO meta (key, value) VALUES (?, ?)", ("50%", "half? yes"))
        s.run("INSERT INTO meta (key, value) VALUES (?, ?)", ("5x", "no"))
        assert s.rows("SELECT key, value FROM meta WHERE key LIKE '%\\%' ESCAPE '\\'") == [
            ("50%", "half? yes")
        ]
        assert s.rows("SELECT value FROM meta WHERE key LIKE ? || '%'", ("50",)) == [("half? yes",)]
        assert s.one("SELECT ? || '%'", ("100",)) == ("100%",)


def test_postgres_sql_translates_marks_and_doubles_percents() -> None:
    assert postgres_sql("SELECT '%' || ? WHERE a LIKE '%x' AND b = ?") == (
        "SELECT '%%' || %s WHERE a LIKE '%%x' AND b = %s"
    )


def test_run_counts_changed_rows_and_run_many_writes_each(target: str) -> None:
    with session(target, readonly=False) as s:
        s.run_many("INSERT INTO meta (key, value) VALUES (?, ?)", [("a", "1"), ("b", "2")])
        s.run_many("INSERT INTO meta (key, value) VALUES (?, ?)", [])
        assert s.run("UPDATE meta SET value = ? WHERE key IN (?, ?)", ("3", "a", "b")) == 2
        assert s.rows("SELECT key, value FROM meta WHERE key IN ('a', 'b') ORDER BY key") == [
            ("a", "3"),
            ("b", "3"),
        ]
        assert s.one("SELECT value FROM meta WHERE key = ?", ("nope",)) is None


def test_a_transaction_rolls_back_on_an_error(target: str) -> None:
    with session(target, readonly=False) as s:
        with pytest.raises(RuntimeError, match="boom"), s.transaction():
            s.run("INSERT INTO meta (key, value) VALUES (?, ?)", ("t", "1"))
            raise RuntimeError("boom")
        with s.transaction():
            s.run("INSERT INTO meta (key, value) VALUES (?, ?)", ("u", "2"))
        assert s.rows("SELECT key FROM meta WHERE key IN ('t', 'u')") == [("u",)]


def test_a_readonly_session_refuses_writes(target: str) -> None:
    with session(target) as s:
        if s.dialect == "sqlite":
            message = f"{target}: attempt to write a readonly database"
        else:
            message = f"{target}: cannot execute UPDATE in a read-only transaction"
        with pytest.raises(StoreError) as caught:
            s.run("UPDATE counts SET n = n + 1 WHERE name = 'quarantine'")
        assert str(caught.value) == message
    with session(target) as s:  # the refusal left the connection usable
        assert s.one("SELECT n FROM counts WHERE name = 'quarantine'") == (0,)


def test_a_readonly_postgres_session_gives_its_connection_back_writable(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    store = PostgresStore(url, schema=schema, pool_size=1)
    try:
        with session(store) as s:
            assert s.one("SELECT count(*) FROM meta") is not None
        store.set_meta("after", "a read-only session")  # the same (only) connection
        assert store.meta_value("after") == "a read-only session"
    finally:
        store.close()


def test_has_table(target: str) -> None:
    with session(target) as s:
        assert s.has_table("quarantine") and s.has_table("outbox")
        assert not s.has_table("monitor_checks") and not s.has_table("")


def test_a_store_object_is_a_target_too(target: str) -> None:
    store = open_store(target)
    try:
        assert isinstance(store, SQLiteStore | PostgresStore)
        with session(store) as s:
            assert s.one("SELECT count(*) FROM quarantine") == (0,)
    finally:
        store.close()


def test_errors_name_the_store(target: str) -> None:
    with session(target) as s, pytest.raises(StoreError) as caught:
        s.rows("SELECT nope FROM quarantine")
    assert str(caught.value).startswith(f"{target}: ")
    assert "nope" in str(caught.value)


def test_a_missing_file_is_store_not_found_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(StoreNotFound) as caught, session(path):
        pass
    assert str(caught.value) == f"no store at {path} (trackguard serve creates one)"
    assert not path.exists()


def test_an_empty_schema_is_store_not_found_and_is_not_created(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    with pytest.raises(StoreNotFound) as caught, session(target):
        pass
    assert str(caught.value) == f"no store at {target} (trackguard serve creates one)"
    assert _schemas(url, schema) == 0


def test_a_newer_sqlite_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tg.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError) as caught, session(path):
        pass
    assert str(caught.value) == (
        f"{path}: schema version 99 is newer than this trackguard understands"
        f" ({SQLITE_SCHEMA_VERSION}); upgrade trackguard"
    )


def test_a_newer_postgres_schema_is_refused(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    PostgresStore(target).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'UPDATE "{schema}".schema_version SET version = 99')
    with pytest.raises(StoreError) as caught, session(target):
        pass
    assert str(caught.value) == (
        f"{target}: schema version 99 is newer than this trackguard understands"
        f" ({PG_SCHEMA_VERSION}); upgrade trackguard"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mysql://db/tg", "'mysql://db/tg': unsupported store URL"),
        ("sqlite://tg.db", "write sqlite:///relative/path or sqlite:////abs/path"),
        (":memory:", "a store file path is needed, not ':memory:'"),
        ("", "a store file path is needed, not ''"),
    ],
)
def test_targets_that_name_no_store_file(target: str, message: str) -> None:
    with pytest.raises(StoreError, match=message), session(target):
        pass


def test_a_password_never_reaches_a_message(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    shown = f"{url}?schema={schema}"
    secret = shown.replace("@", ":s3cret-pw@", 1)  # trust auth ignores the password
    with pytest.raises(StoreNotFound) as caught, session(secret):
        pass
    assert str(caught.value) == f"no store at {shown} (trackguard serve creates one)"
    PostgresStore(shown).close()
    with session(secret) as s, pytest.raises(StoreError) as failed:
        s.rows("SELECT nope FROM meta")
    assert str(failed.value).startswith(f"{shown}: ")
    assert "s3cret" not in str(failed.value)


def test_is_postgres_url() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("POSTGRES://u@h/db")
    assert not is_postgres_url("sqlite:///tg.db") and not is_postgres_url("tg.db")
    assert not is_postgres_url(Path("postgresql://x"))


def test_a_session_is_abstract_and_both_dialects_implement_it(target: str) -> None:
    assert Session.__abstractmethods__ == {"rows", "run", "run_many", "transaction", "has_table"}
    with pytest.raises(TypeError, match="abstract"):
        Session()  # type: ignore[abstract]
    assert SQLiteSession.__abstractmethods__ == frozenset()
    assert PostgresSession.__abstractmethods__ == frozenset()
    with session(target) as s:
        assert isinstance(s, PostgresSession if is_postgres_url(target) else SQLiteSession)


def test_the_monitor_tables_are_as_declared_on_both_databases(target: str) -> None:
    MonitorDB(target).close()  # SQLite: made on first use; PostgreSQL: by the migrations
    with session(target) as s:
        for table in MONITOR_SCHEMA:
            if s.dialect == "sqlite":
                found = [(r[1], r[2], r[5]) for r in s.rows(f"PRAGMA table_info({table.name})")]
            else:
                found = [
                    (name, kind, 0)
                    for name, kind in s.rows(
                        "SELECT column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND table_name = ?"
                        " ORDER BY ordinal_position",
                        (table.name,),
                    )
                ]
                keys = s.rows(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                    " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                    " WHERE i.indrelid = ?::regclass AND i.indisprimary",
                    (table.name,),
                )
                assert {k for (k,) in keys} == set(table.key)
                found = [
                    (n, k, table.key.index(n) + 1 if n in table.key else 0) for n, k, _ in found
                ]
            types = {
                "sqlite": {"int": "INTEGER", "text": "TEXT", "real": "REAL", "blob": "BLOB"},
                "postgresql": {
                    "int": "bigint",
                    "text": "text",
                    "real": "double precision",
                    "blob": "bytea",
                },
            }[s.dialect]
            expected = [
                (c, types[k], table.key.index(c) + 1 if c in table.key else 0)
                for c, k in table.columns
            ]
            assert found == expected, table.name
    assert [t.name for t in MONITOR_SCHEMA] == [
        "monitor_counts",
        "monitor_hourly",
        "monitor_health",
        "monitor_alerts",
        "monitor_channels",
    ]
