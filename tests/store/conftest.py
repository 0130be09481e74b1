"""The store implementations the protocol tests run against: a SQLite file, and a PostgreSQL
schema of its own per test (127.0.0.1:5432, database ``test``, trust auth).

``open_store`` (the fixture) opens a store of the test's kind; called again it opens a second
store on the same file or schema, as a second gateway or worker process would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_kinds import AnyStore, Opener

from pg_server import fresh_schema
from trackguard.store import SQLiteStore
from trackguard.store.postgres import PostgresStore


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(server URL, schema name)``: a fresh schema, dropped after the test."""
    with fresh_schema() as where:
        yield where


@pytest.fixture
def pg_stores(pg_schema: tuple[str, str]) -> Iterator[Callable[[int], list[PostgresStore]]]:
    """``pg_stores(n)``: ``n`` stores on the test's schema, as ``n`` processes open it; all
    closed after the test."""
    url, schema = pg_schema
    opened: list[PostgresStore] = []

    def open_stores(n: int) -> list[PostgresStore]:
        stores = [PostgresStore(url, schema=schema) for _ in range(n)]
        opened.extend(stores)
        return stores

    yield open_stores
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[AnyStore] = []
    if request.param == "postgres":
        url, schema = request.getfixturevalue("pg_schema")

        def opener(**kw: Any) -> AnyStore:
            store = PostgresStore(url, schema=schema, **kw)
            opened.append(store)
            return store

    else:

        def opener(**kw: Any) -> AnyStore:
            store = SQLiteStore(tmp_path / "tg.db", **kw)
            opened.append(store)
            return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def any_store(open_store: Opener) -> AnyStore:
    """A store of each implementation, leasing for 60 s."""
    return open_store(lease_seconds=60.0)
