"""Schema v6: claims remember who claimed them; a v5 file is upgraded in place.

The v5 file is built with the v5 migrations (``_MIGRATIONS[:5]``, which never change) and the
v5 code's own claim statement. A claim of a v5 file has no person: while it lasts, the same key
is a duplicate whoever sends it (as v5 decided); a claim made after the upgrade names its
person, and another person's row with that key is quarantined as ``dedupe_key_conflict``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.quarantine import list_quarantine
from trackguard.store.sqlite import _MIGRATIONS, SCHEMA_VERSION, SQLiteStore

# The statement trackguard claimed keys with at schema v5.
V5_CLAIM = (
    "INSERT INTO claims (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
    " SET expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
)


def _v5_file(path: Path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("BEGIN IMMEDIATE")
        for step in _MIGRATIONS[:5]:
            for statement in step:
                con.execute(statement)
        con.execute("PRAGMA user_version = 5")
        con.execute(V5_CLAIM, ("order_completed:A-1", 2000.0, 1000.0))
        con.execute("UPDATE counts SET n = 3 WHERE name = 'duplicate'")
        con.execute("COMMIT")
    finally:
        con.close()


def _write(person: str, key: str, at: float) -> Write:
    row = OutboxRow(
        received_at=at, person=person, payload=b'{"v2":{}}', dedupe_key=key, claim_until=at + 500
    )
    request = QuarantineRecord(
        received_at=at, kind="plan", method="POST", path="/x", body=b'{"n":1}'
    )
    return Write(outbox=(row,), kept_as=request)


def test_a_v5_file_is_upgraded_and_its_claims_still_hold(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    _v5_file(path)
    store = SQLiteStore(path)
    try:
        assert SCHEMA_VERSION == 6
        assert (store.duplicate_count(), store.conflict_count()) == (3, 0)
        # A v5 claim names nobody: the key is a duplicate for anyone while it lasts.
        assert store.commit([_write("id:b", "order_completed:A-1", 1500.0)]) == [1]
        assert store.quarantine_count() == 0
        # New claims name their person.
        assert store.commit([_write("id:a", "k", 1500.0)]) == [0]
        assert store.commit([_write("id:b", "k", 1600.0)]) == [0]
        assert (store.duplicate_count(), store.conflict_count()) == (4, 1)
        (record,) = store.quarantine_list()
        assert record.codes == ("dedupe_key_conflict",)
        assert json.loads(record.findings)[0]["message"] == (
            "dedupe key 'k' is claimed by id:a; this event of id:b is kept, not delivered"
        )
    finally:
        store.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (6,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute(
            "SELECT key, expires_at, person FROM claims ORDER BY key"
        ).fetchall() == [
            ("k", 2000.0, "id:a"),
            ("order_completed:A-1", 2000.0, None),
        ]
        assert con.execute("SELECT n FROM counts WHERE name = 'dedupe_conflict'").fetchone() == (1,)
    finally:
        con.close()
    SQLiteStore(path).close()  # reopening migrates nothing more


def test_quarantine_commands_upgrade_a_v5_file(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    _v5_file(path)
    assert list_quarantine(path) == []
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (6,)
        assert [r[1] for r in con.execute("PRAGMA table_info(claims)")] == [
            "key",
            "expires_at",
            "person",
        ]
    finally:
        con.close()
