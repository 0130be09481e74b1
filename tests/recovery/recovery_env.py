"""Where the replay and backfill tests keep their store: once in a SQLite file and once in a
PostgreSQL schema of its own, with the same expected results (``conftest`` offers ``db``); the
emulator a module's gateway delivers to (``upstream``), and the order mapping the tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from pg_server import fresh_schema
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.sql import session

#: The Pipelines write key the emulator and the gateways in front of it share.
WRITE_KEY: Final = "wk-recovery"
#: A mapping of the order rows (``customer_id,ordered_at,order_id,total,currency``).
ORDERS_MAP: Final = """\
person: {id: customer_id}
timestamp: {column: ordered_at, format: iso8601}
data:
  order_id: order_id
  total: {column: total, type: number}
  currency: currency
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store location with no store yet: a SQLite path, or a ``postgresql://`` URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "tg.db")
        return
    with fresh_schema() as (url, schema):
        yield f"{url}?schema={schema}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Emulator, RunningServer]]:
    """An emulator accepting :data:`WRITE_KEY`, served over loopback for a test module."""
    emulator = create_emulator("emu-site", "emu-key", write_key=WRITE_KEY)
    with start_in_thread(emulator) as server:
        yield emulator, server
    emulator.close()


def query(db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` (``?`` placeholders, SQL both databases speak) returns from ``db``."""
    with session(db) as s:
        return s.rows(sql, params)
