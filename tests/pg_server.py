"""The test PostgreSQL server (127.0.0.1:5432, database ``test``, trust auth) and schemas of
its own for a test or a module; tests that need it are skipped where no server answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

#: The monitor's tables as ``monitor/db.py`` makes them on SQLite, for a PostgreSQL store that
#: has none yet (``IF NOT EXISTS``: a store whose schema made them keeps its own).
MONITOR_DDL = (
    """CREATE TABLE IF NOT EXISTS monitor_counts (
        minute bigint NOT NULL, event text NOT NULL, route text NOT NULL, source text NOT NULL,
        kind text NOT NULL, name text NOT NULL, n bigint NOT NULL,
        PRIMARY KEY (minute, event, route, source, kind, name))""",
    """CREATE TABLE IF NOT EXISTS monitor_hourly (
        hour bigint NOT NULL, event text NOT NULL, kind text NOT NULL, name text NOT NULL,
        n bigint NOT NULL, PRIMARY KEY (hour, event, kind, name))""",
    """CREATE TABLE IF NOT EXISTS monitor_health (
        at double precision NOT NULL, metric text NOT NULL, value bigint NOT NULL,
        PRIMARY KEY (metric, at))""",
    "CREATE TABLE IF NOT EXISTS monitor_alerts (rule text PRIMARY KEY, state bytea NOT NULL)",
)

#: The users tried, in order (CI runs as ``postgres``, some machines as ``root``).
PG_USERS = ("postgres", "root")


def _server_url() -> str | None:
    for user in PG_USERS:
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.Error:
            continue
        return url
    return None


_URL: list[str | None] = []


def pg_url() -> str:
    """The test server's URL; skips the test when no server answers."""
    if not _URL:
        _URL.append(_server_url())
    if _URL[0] is None:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (database test, user postgres or root)")
    return _URL[0]


@contextmanager
def fresh_schema() -> Iterator[tuple[str, str]]:
    """``(server URL, schema name)``: a schema no one else uses, dropped afterwards."""
    url = pg_url()
    schema = f"tg_{uuid.uuid4().hex[:16]}"
    try:
        yield url, schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
