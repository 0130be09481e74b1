"""Dedupe keys belong to one person: another person's event with the same key is kept.

The plan's business key (``order_completed:<order_id>``) is global. A retry of the same order
by the same person is answered 2xx and delivered once; an order of *another* person reusing the
order id is not a retry: it is answered 2xx too (its data is kept), held in the quarantine under
``dedupe_key_conflict`` with both persons named, and replayed once fixed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from abuse_data_env import PLAN, Gateway, serve

from trackguard.plan.loader import load_plan
from trackguard.recovery.fixes import parse_fixes
from trackguard.recovery.replay import replay
from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.quarantine import list_quarantine
from trackguard.store.sqlite import SQLiteStore

T = 1_764_000_000
ORDER = {"order_id": "A-1001", "total": 10.5, "currency": "USD"}


@pytest.fixture
def gw(tmp_path: Path, emu: Any) -> Iterator[Gateway]:
    yield from serve(tmp_path, emu.url, (emu.site_id, emu.api_key))


def _message(claimer: str, newcomer: str) -> str:
    return (
        f"dedupe key 'order_completed:A-1001' is claimed by {claimer}; this event of"
        f" {newcomer} is kept, not delivered"
    )


def test_another_persons_order_with_the_same_id_is_kept_and_replayed_once_fixed(
    gw: Gateway, emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = gw.track("cus_1", "order_completed", ORDER, T)
    other = gw.track("cus_2", "order_completed", ORDER, T + 5)
    retry = gw.track("cus_1", "order_completed", ORDER, T)
    assert [r.status_code for r in (first, other, retry)] == [200, 200, 200]
    assert [r.content for r in (first, other, retry)] == [b"{}\n"] * 3
    gw.drain()

    orders = emu.events(name="order_completed")
    assert [(o["identifier"]["id"], o["data"]["order_id"]) for o in orders] == [("cus_1", "A-1001")]
    (record,) = list_quarantine(gw.db)
    assert (record.kind, record.codes, record.method, record.path, record.status) == (
        "plan",
        ("dedupe_key_conflict",),
        "POST",
        "/api/v1/customers/cus_2/events",
        200,
    )
    assert json.loads(record.body) == {"name": "order_completed", "data": ORDER, "timestamp": T + 5}
    assert record.event_name == "order_completed"
    assert record.route == "POST /api/v1/customers/{identifier}/events"
    assert json.loads(record.findings) == [
        {
            "kind": "plan",
            "code": "dedupe_key_conflict",
            "rule": "dedupe",
            "path": "",
            "message": _message("id:cus_1", "id:cus_2"),
            "action": "reject",
            "batch_index": None,
        }
    ]
    assert b"trackguard_dedupe_conflicts_total 1.0\n" in gw.metrics()
    assert [r.getMessage() for r in caplog.records if r.name == "trackguard.store"] == [
        "dedupe key 'order_completed:A-1001' is claimed by id:cus_1: the event of id:cus_2 is"
        " kept in the quarantine (dedupe_key_conflict)"
    ]
    store = SQLiteStore(gw.db)
    try:
        assert (store.duplicate_count(), store.conflict_count()) == (1, 1)
        assert store.outbox_stats().dedupe_conflicts == 1
        assert store.profile("id:cus_2") is None  # no order counted for the newcomer
        assert store.profile("id:cus_1") is not None
        assert store.profile("id:cus_1")["order_count"] == 1  # type: ignore[index]
    finally:
        store.close()

    # Unfixed, the key is still cus_1's: the record stays, still_invalid, nothing is queued.
    (unfixed,) = replay(gw.db, load_plan(PLAN), now=T + 30).items
    assert (unfixed.outcome, unfixed.codes, unfixed.reason) == (
        "still_invalid",
        ("dedupe_key_conflict",),
        _message("id:cus_1", "id:cus_2"),
    )
    (kept,) = list_quarantine(gw.db)
    assert (kept.id, kept.state, kept.codes) == (record.id, "still_invalid", record.codes)
    # A new order id makes it a new order: replayed, delivered, the record marked replayed.
    fixes = parse_fixes(
        "- map: {field: data.order_id, values: {A-1001: A-1001-B}}\n  event: order_completed\n"
    )
    report = replay(gw.db, load_plan(PLAN), fixes=fixes, now=T + 60)
    assert [(i.id, i.outcome) for i in report.items] == [(record.id, "replayed")]
    gw.drain()
    orders = emu.events(name="order_completed")
    assert sorted((o["identifier"]["id"], o["data"]["order_id"]) for o in orders) == [
        ("cus_1", "A-1001"),
        ("cus_2", "A-1001-B"),
    ]
    (after,) = list_quarantine(gw.db)
    assert after.state == "replayed"


def test_a_batch_item_reusing_another_persons_key_is_kept_alone(gw: Gateway, emu: Any) -> None:
    def item(person: str, order_id: str) -> dict[str, Any]:
        return {
            "type": "person",
            "action": "event",
            "identifiers": {"id": person},
            "name": "order_completed",
            "timestamp": T,
            "attributes": {**ORDER, "order_id": order_id},
        }

    batch = {"batch": [item("cus_1", "A-1001"), item("cus_2", "A-1001"), item("cus_2", "B-7")]}
    response = gw.client.post("/api/v2/batch", json=batch)
    assert (response.status_code, response.content) == (200, b"{}\n")
    gw.drain()
    orders = emu.events(name="order_completed")
    assert sorted((o["identifier"]["id"], o["data"]["order_id"]) for o in orders) == [
        ("cus_1", "A-1001"),
        ("cus_2", "B-7"),
    ]
    (record,) = list_quarantine(gw.db)
    assert (record.codes, record.batch_index, record.path) == (
        ("dedupe_key_conflict",),
        1,
        "/api/v2/batch",
    )
    assert json.loads(record.body) == item("cus_2", "A-1001")
    assert json.loads(record.findings)[0]["message"] == _message("id:cus_1", "id:cus_2")
    assert json.loads(record.findings)[0]["batch_index"] == 1


def _write(*rows: tuple[str, str, float]) -> Write:
    """One request's write: rows ``(person, key, at)``, kept as ``/p/<first person>``."""
    person, _, at = rows[0]
    request = QuarantineRecord(
        received_at=at, kind="plan", method="POST", path=f"/p/{person}", body=b"{}"
    )
    outbox = tuple(
        OutboxRow(received_at=t, person=p, payload=b'{"v2":{}}', dedupe_key=k, claim_until=t + 100)
        for p, k, t in rows
    )
    return Write(outbox=outbox, kept_as=request)


def test_one_commit_of_two_persons_keeps_the_second_and_counts_exactly(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tg.db")
    try:
        writes = [
            _write(("id:a", "k", 1000.0)),
            _write(("id:b", "k", 1000.0), ("id:b", "k2", 1000.0)),
            _write(("id:a", "k", 1001.0)),
        ]
        assert store.commit(writes) == [0, 0, 1]
        assert store.outbox_stats().pending == 2
        assert [r.person for r in store.outbox_list()] == ["id:b", "id:a"]
        (record,) = store.quarantine_list()
        assert (record.path, record.codes, store.quarantine_count()) == (
            "/p/id:b",
            ("dedupe_key_conflict",),
            1,
        )
        assert json.loads(record.findings)[0]["message"] == (
            "dedupe key 'k' is claimed by id:a; this event of id:b is kept, not delivered"
        )
        assert (store.duplicate_count(), store.conflict_count()) == (1, 1)
        # Once the claim expired, the key is anyone's: the newcomer claims it.
        assert store.commit([_write(("id:b", "k", 1100.0))]) == [0]
        assert store.outbox_stats().pending == 3
    finally:
        store.close()
    con = sqlite3.connect(tmp_path / "tg.db")
    try:
        assert con.execute("SELECT key, person FROM claims ORDER BY key").fetchall() == [
            ("k", "id:b"),
            ("k2", "id:b"),
        ]
    finally:
        con.close()
