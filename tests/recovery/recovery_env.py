"""Where the replay and backfill tests keep their store: once in a SQLite file and once in a
PostgreSQL schema of its own, with the same expected results (``conftest`` offers ``db``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pg_server import fresh_schema
from trackguard.store.sql import session


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store location with no store yet: a SQLite path, or a ``postgresql://`` URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "tg.db")
        return
    with fresh_schema() as (url, schema):
        yield f"{url}?schema={schema}"


def query(db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` (``?`` placeholders, SQL both databases speak) returns from ``db``."""
    with session(db) as s:
        return s.rows(sql, params)
