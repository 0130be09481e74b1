"""Schema v7: claims remember who claimed them; a v6 file is upgraded in place.

The v6 file is built with the v6 migrations (``_MIGRATIONS[:6]``, which never change) and the
v6 code's own claim statement. A claim of a v6 file has no person: while it lasts, the same key
is a duplicate whoever sends it (as v6 decided); a claim made after the upgrade names its
person, and another person's row with that key is quarantined as ``dedupe_key_conflict``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from store_schema_env import schema_file

from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.quarantine import list_quarantine
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore

# The statement trackguard claimed keys with at schema v6 (and every version before).
V6_CLAIM = (
    "INSERT INTO claims (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
    " SET expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
)


def _v6_file(path: Path) -> None:
    with schema_file(path, 6) as con:
        con.execute(V6_CLAIM, ("order_completed:A-1", 2000.0, 1000.0))
        con.execute("UPDATE counts SET n = 3 WHERE name = 'duplicate'")


def _write(person: str, key: str, at: float) -> Write:
    row = OutboxRow(
        received_at=at, person=person, payload=b'{"v2":{}}', dedupe_key=key, claim_until=at + 500
    )
    request = QuarantineRecord(
        received_at=at, kind="plan", method="POST", path="/x", body=b'{"n":1}'
    )
    return Write(outbox=(row,), kept_as=request)


def test_a_v6_file_is_upgraded_and_its_claims_still_hold(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    _v6_file(path)
    store = SQLiteStore(path)
    try:
        assert SCHEMA_VERSION >= 7
        assert store.upgrade_backup is not None
        assert store.upgrade_backup.name.startswith("v6.db.v6-")
        assert (store.duplicate_count(), store.conflict_count()) == (3, 0)
        # A v6 claim names nobody: the key is a duplicate for anyone while it lasts.
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
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
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


def test_quarantine_commands_upgrade_a_v6_file(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    _v6_file(path)
    assert list_quarantine(path) == []
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert [r[1] for r in con.execute("PRAGMA table_info(claims)")] == [
            "key",
            "expires_at",
            "person",
        ]
    finally:
        con.close()
