"""One commit's rows beyond the outbox, exactly, on both stores: profiles of several orders of
one person (one read before, one row after, numbered in order), identity bindings where an
email comes twice or is bound already, anonymous activity seen and linked twice, and counts."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
from store_kinds import AnyStore

from trackguard.store import OutboxRow, Write
from trackguard.store.postgres import PostgresStore


def event(person: str, at: float, key: str | None = None, **kw: Any) -> OutboxRow:
    return OutboxRow(
        received_at=at,
        person=person,
        payload=b'{"v2":{"type":"person","action":"event"}}',
        dedupe_key=key,
        claim_until=None if key is None else at + 100.0,
        **kw,
    )


def order(person: str, at: float, key: str, ts: int, total: float) -> OutboxRow:
    derive = {"identifiers": {"id": person.removeprefix("id:")}, "total": total, "ts": ts}
    return event(person, at, key, derive=msgspec.json.encode(derive))


QUERIES = {
    "profiles": "SELECT person, first_order_date, last_order_date, order_count, lifetime_value,"
    " seq FROM profiles ORDER BY seq",
    "identities": "SELECT seq, email, id FROM identities ORDER BY seq",
    "anonymous": "SELECT anonymous_id, first_seen, event, person, linked_at FROM anonymous"
    " ORDER BY anonymous_id",
    "outbox": "SELECT seq, person, dedupe_key FROM outbox ORDER BY seq",
    "counts": "SELECT name, n FROM counts ORDER BY name",
}


def rows(store: AnyStore) -> dict[str, list[tuple[Any, ...]]]:
    if isinstance(store, PostgresStore):
        with store.connection() as conn:
            return {name: [tuple(r) for r in conn.execute(q)] for name, q in QUERIES.items()}
    db = sqlite3.connect(store.path)
    try:
        return {name: db.execute(q).fetchall() for name, q in QUERIES.items()}
    finally:
        db.close()


def test_a_commits_profiles_bindings_anonymous_rows_and_counts_are_exact(
    any_store: AnyStore,
) -> None:
    store = any_store
    assert store.commit(
        [
            Write(outbox=(order("id:p1", 10.0, "o1", ts=500, total=10.0),)),
            Write(links=(("ana@x.com", "cus_1"),)),
            Write(outbox=(event("id:p9", 11.0),), anonymous=(("a-1", "viewed"),)),
        ]
    ) == [0, 0, 0]
    assert store.commit(
        [
            # Two more orders of p1 (one older, one newer), one of p2, and p1's first again.
            Write(outbox=(order("id:p1", 20.0, "o2", ts=400, total=2.5),)),
            Write(outbox=(order("id:p2", 20.0, "o3", ts=600, total=1.0),)),
            Write(outbox=(order("id:p1", 21.0, "o4", ts=900, total=0.25),)),
            Write(outbox=(order("id:p1", 21.0, "o1", ts=500, total=10.0),)),  # a retry
            # ana is bound already; bo comes twice (the first stays); cy after him.
            Write(links=(("bo@x.com", "cus_2"), ("ana@x.com", "cus_9"))),
            Write(links=(("bo@x.com", "cus_8"), ("cy@x.com", "cus_3"))),
            # a-1 seen before: kept; a-2 seen twice: the first stays; both linked twice.
            Write(outbox=(event("id:p9", 22.0),), anonymous=(("a-2", "added"),)),
            Write(
                outbox=(event("id:p9", 23.0),),
                anonymous=(("a-2", "paid"), ("a-1", "paid")),
                anonymous_links=(("a-1", "id:p1"), ("a-2", "id:p2")),
            ),
            Write(outbox=(event("id:p9", 24.0),), anonymous_links=(("a-1", "id:p3"),)),
        ]
    ) == [0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert rows(store) == {
        "profiles": [
            ("id:p1", 400, 900, 3, 12.75, 2),
            ("id:p2", 600, 600, 1, 1.0, 3),
        ],
        "identities": [
            (1, "ana@x.com", "cus_1"),
            (2, "bo@x.com", "cus_2"),
            (3, "cy@x.com", "cus_3"),
        ],
        "anonymous": [
            ("a-1", 11.0, "viewed", "id:p1", 23.0),
            ("a-2", 22.0, "added", "id:p2", 23.0),
        ],
        "outbox": [
            (1, "id:p1", "o1"),
            (2, "id:p1", None),  # each order's derived identify follows it
            (3, "id:p9", None),
            (4, "id:p1", "o2"),
            (5, "id:p1", None),
            (6, "id:p2", "o3"),
            (7, "id:p2", None),
            (8, "id:p1", "o4"),
            (9, "id:p1", None),
            (10, "id:p9", None),
            (11, "id:p9", None),
            (12, "id:p9", None),
        ],
        "counts": [
            ("dedupe_conflict", 0),
            ("delivered", 0),
            ("duplicate", 1),
            ("failed", 0),
            ("pending", 12),
            ("quarantine", 0),
        ],
    }
