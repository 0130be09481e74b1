"""Store files as an older trackguard wrote them, for the upgrade tests.

A module of its own (not ``conftest``) so the tests import it by name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trackguard.store.sqlite import _MIGRATIONS


@contextmanager
def schema_file(path: Path, version: int) -> Iterator[sqlite3.Connection]:
    """A new store file at schema ``version``, built by that version's migrations (the first
    ``version`` steps, which never change), and its connection inside the same transaction:
    the caller adds what that version's own code wrote, and it is committed together."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("BEGIN IMMEDIATE")
        for step in _MIGRATIONS[:version]:
            for statement in step:
                con.execute(statement)
        con.execute(f"PRAGMA user_version = {version}")
        yield con
        con.execute("COMMIT")
    finally:
        con.close()
