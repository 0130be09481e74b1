"""SQL on a test's store of either kind, for what the Store protocol does not read or set."""

from __future__ import annotations

from typing import Any

from store_kinds import AnyStore

from trackguard.store.sql import session

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
    """CREATE TABLE IF NOT EXISTS monitor_alerts (rule text PRIMARY KEY, state bytea NOT NULL)""",
)


def rows(store: AnyStore | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` (``?`` placeholders) on ``store``'s database."""
    with session(store) as s:
        return s.rows(sql, params)


def run(store: AnyStore | str, sql: str, *params: tuple[Any, ...]) -> None:
    """``sql`` once per parameter tuple (once without parameters), in one transaction."""
    with session(store, readonly=False) as s, s.transaction():
        for p in params or ((),):
            s.run(sql, p)


def count(store: AnyStore | str, table: str) -> int:
    return int(rows(store, f"SELECT count(*) FROM {table}")[0][0])
