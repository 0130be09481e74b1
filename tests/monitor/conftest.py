"""The stores the monitor's database tests run against: a SQLite file, and a PostgreSQL schema
of its own (127.0.0.1:5432, database ``test``; see ``tests/store/store_kinds.py``).

``new_db`` makes a fresh store (a SQLite file, or a ``postgresql://...?schema=`` URL whose
schema the first writer fills) each call, so a Hypothesis example or a second store gets its
own; opening one target twice is two gateways on one database. Every schema made is dropped
after the test.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from monitor_env import NewDB
from store_kinds import pg_url

from trackguard.store.sqlite import SQLiteStore


@contextmanager
def _schemas() -> Iterator[NewDB]:
    """Fresh PostgreSQL schemas on the test server (the test skips without one)."""
    url = pg_url()
    schemas: list[str] = []

    def make() -> str:
        schemas.append(f"tg_{uuid.uuid4().hex[:16]}")
        return f"{url}?schema={schemas[-1]}"

    try:
        yield make
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDB]:
    if request.param == "sqlite":
        numbers = itertools.count()

        def make() -> str:
            # A store file, as the gateway creates before its monitor opens it.
            path = tmp_path / f"tg{next(numbers)}.db"
            SQLiteStore(path).close()
            return str(path)

        yield make
        return
    with _schemas() as make:
        yield make


@pytest.fixture
def new_pg_db() -> Iterator[NewDB]:
    """``new_db`` on PostgreSQL only (what several hosts share)."""
    with _schemas() as make:
        yield make
