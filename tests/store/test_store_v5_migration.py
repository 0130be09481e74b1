"""Schema v5: a v4 file is upgraded in place; its rows keep every value, new columns are NULL.

The v4 file is built with the v4 migrations (``_MIGRATIONS[:4]``, which never change) and the
v4 code's own INSERT statements, then opened by today's store and by the quarantine commands.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store_schema_env import schema_file

from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.quarantine import QuarantineFilter, count_quarantine, list_quarantine
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore

# The statements trackguard wrote rows with at schema v4.
V4_INSERT_OUTBOX = (
    "INSERT INTO outbox (received_at, person, payload, dedupe_key, event_name, source, state,"
    " attempts, next_attempt_at, last_error, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
V4_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
    " plan_version, status, findings, event_name, codes, batch_index, upstream_error, state,"
    " outbox_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
PAYLOAD = (
    b'{"v2":{"type":"person","action":"event","identifiers":{"id":"cus_1"},'
    b'"name":"signup","id":"01J0000000000000000000000A","timestamp":1700000000}}'
)
V1_EVENTS = "POST /api/v1/customers/{identifier}/events"


def _v4_file(path: Path) -> None:
    """A store file exactly as trackguard with schema v4 wrote it, with data in it."""
    with schema_file(path, 4) as con:
        con.executemany(
            V4_INSERT_OUTBOX,
            [
                (
                    1700000000.0,
                    "id:cus_1",
                    PAYLOAD,
                    "k1",
                    "signup",
                    "web",
                    "pending",
                    0,
                    0.0,
                    None,
                    None,
                ),
                (
                    1700000001.0,
                    "id:cus_2",
                    PAYLOAD,
                    None,
                    None,
                    "app",
                    "delivered",
                    1,
                    0.0,
                    None,
                    1700000005.0,
                ),
            ],
        )
        con.execute("UPDATE counts SET n = 1 WHERE name IN ('pending', 'delivered')")
        con.execute(
            V4_INSERT_QUARANTINE,
            (
                1700000002.0,
                "plan",
                "POST",
                "/api/v1/customers/cus_3/events",
                '[["authorization","[redacted]"]]',
                b'{"name":"x"}',
                "web",
                "2026-10-01",
                200,
                "[]",
                "x",
                '["property_type"]',
                None,
                None,
                "quarantined",
                None,
            ),
        )
        con.execute("UPDATE counts SET n = 1 WHERE name = 'quarantine'")


def _columns(path: Path, table: str) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


def test_a_v4_file_is_upgraded_in_place_with_rows_intact(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    _v4_file(path)
    assert "route" not in _columns(path, "outbox")
    store = SQLiteStore(path)
    try:
        assert SCHEMA_VERSION >= 5
        assert store.outbox_row(1) == OutboxRow(
            seq=1,
            received_at=1700000000.0,
            person="id:cus_1",
            payload=PAYLOAD,
            dedupe_key="k1",
            event_name="signup",
            source="web",
            route=None,
            plan_version=None,
        )
        assert store.outbox_row(2) == OutboxRow(
            seq=2,
            received_at=1700000001.0,
            person="id:cus_2",
            payload=PAYLOAD,
            source="app",
            state="delivered",
            attempts=1,
            delivered_at=1700000005.0,
        )
        (record,) = store.quarantine_list()
        assert record == QuarantineRecord(
            id=1,
            received_at=1700000002.0,
            kind="plan",
            method="POST",
            path="/api/v1/customers/cus_3/events",
            headers=(("authorization", "[redacted]"),),
            body=b'{"name":"x"}',
            source="web",
            plan_version="2026-10-01",
            status=200,
            event_name="x",
            codes=("property_type",),
            route=None,
        )
        stats = store.outbox_stats()
        assert (stats.pending, stats.delivered, store.quarantine_count()) == (1, 1, 1)

        # A v4 row Customer.io refuses later: its record has no route and an empty version.
        (leased,) = store.lease(10, now=1700000100.0)
        assert (leased.seq, leased.route, leased.plan_version) == (1, None, None)
    finally:
        store.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        nulls = con.execute("SELECT seq, route, plan_version FROM outbox ORDER BY seq").fetchall()
        assert nulls == [(1, None, None), (2, None, None)]
        assert con.execute("SELECT id, route FROM quarantine").fetchall() == [(1, None)]
        indexes = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"quarantine_plan_version", "quarantine_route"} <= indexes
    finally:
        con.close()
    assert _columns(path, "outbox")[-2:] == ["route", "plan_version"]
    assert _columns(path, "quarantine")[-1] == "route"
    SQLiteStore(path).close()  # reopening migrates nothing more


def test_new_rows_of_an_upgraded_file_carry_route_and_plan_version(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    _v4_file(path)
    store = SQLiteStore(path)
    try:
        row = OutboxRow(
            received_at=1700000200.0,
            person="id:cus_9",
            payload=PAYLOAD,
            route=V1_EVENTS,
            plan_version="2026-11-01",
        )
        store.commit([Write(outbox=(row,))])
        assert store.outbox_row(3) == OutboxRow(
            seq=3,
            received_at=1700000200.0,
            person="id:cus_9",
            payload=PAYLOAD,
            route=V1_EVENTS,
            plan_version="2026-11-01",
        )
        refused = QuarantineRecord(
            received_at=row.received_at,
            kind="upstream",
            method="POST",
            path="/api/v2/entity",
            plan_version="2026-11-01",
            route=V1_EVENTS,
            upstream_error="bad",
        )
        store.mark_failed([(3, refused)], now=1700000300.0)
        assert store.quarantine_list(limit=1)[0].route == V1_EVENTS
    finally:
        store.close()


def test_quarantine_commands_upgrade_a_v4_file_and_read_it(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    _v4_file(path)
    (record,) = list_quarantine(path)  # never opened by a v5 store before
    assert (record.id, record.plan_version, record.route) == (1, "2026-10-01", None)
    assert count_quarantine(path, QuarantineFilter(plan_version="2026-10-01")) == 1
    assert count_quarantine(path, QuarantineFilter(route=V1_EVENTS)) == 0
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        con.close()
