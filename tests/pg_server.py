"""The test PostgreSQL server (127.0.0.1:5432, database ``test``, trust auth), for every test
folder: its URL, and a schema of a test's own that is dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

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
    """``(server URL, schema name)``: a schema no other test uses, dropped at the end (a
    store's URL is ``f"{url}?schema={schema}"``)."""
    url = pg_url()
    schema = f"tg_{uuid.uuid4().hex[:16]}"
    try:
        yield url, schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
