"""SQL on a test's store of either kind, for what the Store protocol does not read or set."""

from __future__ import annotations

from typing import Any

from store_kinds import AnyStore

from trackguard.store.sql import session

__all__ = ["count", "rows", "run"]


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
