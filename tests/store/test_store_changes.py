"""Reading what other writers committed: ``identities_since`` and ``last_orders_since`` read on
from a high-water mark (the change numbers schema v4 adds), in commit order, never repeating a
row and never skipping one, even while another connection commits; and a v3 file is upgraded in
place."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest
from store_kinds import AnyStore, Opener
from store_schema_env import schema_file

from trackguard.store import OutboxRow, SQLiteStore, Write
from trackguard.store.sqlite import SCHEMA_VERSION


def order(person: str, ts: int, key: str, total: float = 10.0) -> OutboxRow:
    derive = {"identifiers": {"id": person.removeprefix("id:")}, "total": total, "ts": ts}
    return OutboxRow(
        received_at=1000.0,
        person=person,
        payload=b'{"v2":{"type":"person","action":"event"}}',
        dedupe_key=key,
        claim_until=10_000.0,
        derive=msgspec.json.encode(derive),
    )


def bind(*pairs: tuple[str, str]) -> Write:
    return Write(links=pairs)


@pytest.fixture
def stores(open_store: Opener) -> tuple[AnyStore, AnyStore]:
    """Two stores on one file or PostgreSQL schema: two writers, as two gateway replicas are."""
    return open_store(), open_store()


def test_bindings_are_read_on_from_the_mark_in_commit_order(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    assert b.identities_since(0) == []
    a.commit([bind(("zoe@x.com", "cus_z"), ("amy@x.com", "cus_a"))])
    b.commit([bind(("bo@x.com", "cus_b"))])
    assert b.identities_since(0) == [
        (1, "zoe@x.com", "cus_z"),
        (2, "amy@x.com", "cus_a"),
        (3, "bo@x.com", "cus_b"),
    ]
    assert b.identities_since(3) == []  # nothing is read twice
    assert a.identities_since(1) == [(2, "amy@x.com", "cus_a"), (3, "bo@x.com", "cus_b")]
    # Pages: the limit, and reading on from the last seq of a page.
    assert a.identities_since(0, limit=2) == [(1, "zoe@x.com", "cus_z"), (2, "amy@x.com", "cus_a")]
    assert a.identities_since(2, limit=2) == [(3, "bo@x.com", "cus_b")]


def test_a_bound_email_keeps_its_id_and_number_and_imports_are_numbered_too(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    a.commit([bind(("ana@x.com", "cus_1"))])
    b.commit([bind(("ana@x.com", "cus_2"), ("cy@x.com", "cus_3"))])  # the race's loser
    assert b.import_identities([(" Dee@X.com ", "cus_4"), ("ana@x.com", "cus_5")]) == 1
    assert a.identities_since(0) == [
        (1, "ana@x.com", "cus_1"),
        (2, "cy@x.com", "cus_3"),
        (3, "dee@x.com", "cus_4"),
    ]


def test_latest_orders_are_read_on_from_the_mark_and_an_update_is_read_again(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    a.commit([Write(outbox=(order("id:p1", 500, "o1"), order("id:p2", 400, "o2")))])
    assert b.last_orders_since(0) == [(1, "id:p1", 500), (2, "id:p2", 400)]
    b.commit([Write(outbox=(order("id:p1", 700, "o3"),))])
    assert a.last_orders_since(2) == [(3, "id:p1", 700)]  # p1 changed: read once more
    a.commit([Write(outbox=(order("id:p2", 100, "o4"),))])  # an older order: still a change
    assert b.last_orders_since(3) == [(4, "id:p2", 400)]
    b.commit([Write(outbox=(order("id:p2", 900, "o4"),))])  # a duplicate key: no change
    assert a.last_orders_since(4) == []
    assert a.last_orders_since(0) == [(3, "id:p1", 700), (4, "id:p2", 400)]


def test_rows_committed_between_pages_are_read_once(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    a, b = stores
    a.commit([bind(*[(f"u{i}@x.com", f"cus_{i}") for i in range(5)])])
    seen: list[tuple[int, str, str]] = []
    mark = 0
    page = b.identities_since(mark, limit=2)
    seen += page
    mark = page[-1][0]
    a.commit([bind(("late@x.com", "cus_late"), ("u0@x.com", "cus_other"))])  # meanwhile
    while page := b.identities_since(mark, limit=2):
        seen += page
        mark = page[-1][0]
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [(e, i) for _, e, i in seen][-1] == ("late@x.com", "cus_late")
    assert sorted((e, i) for _, e, i in seen) == sorted(b.identities())


def test_a_reader_racing_a_writer_misses_nothing_and_repeats_nothing(
    stores: tuple[AnyStore, AnyStore],
) -> None:
    writer, reader = stores
    commits = 200
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(commits):
                writer.commit(
                    [
                        bind((f"a{n}@x.com", f"cus_{n}"), (f"b{n}@x.com", f"cus_{n}")),
                        Write(outbox=(order(f"id:p{n % 7}", n, f"o{n}"),)),
                    ]
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    bindings: list[tuple[int, str, str]] = []
    orders: list[tuple[int, str, int]] = []
    id_mark = order_mark = 0
    while True:
        finished = done.is_set()  # read once more after the writer is done
        while page := reader.identities_since(id_mark, limit=3):
            bindings += page
            id_mark = page[-1][0]
        while opage := reader.last_orders_since(order_mark, limit=3):
            orders += opage
            order_mark = opage[-1][0]
        if finished:
            break
    thread.join()
    assert errors == []
    seqs = [s for s, _, _ in bindings]
    assert seqs == list(range(1, 2 * commits + 1))  # every binding once, in commit order
    assert sorted((e, i) for _, e, i in bindings) == sorted(reader.identities())
    # Each profile's latest state was read; earlier states of it at most once each.
    order_seqs = [s for s, _, _ in orders]
    assert order_seqs == sorted(set(order_seqs))
    latest: dict[str, int] = {}
    for _, person, ts in orders:
        latest[person] = ts
    assert latest == dict(reader.last_orders())
    assert latest == {f"id:p{k}": max(n for n in range(commits) if n % 7 == k) for k in range(7)}


def _v3_file(path: Path) -> None:
    """A store file exactly as trackguard with schema v3 wrote it, with data in it."""
    with schema_file(path, 3) as con:
        # v3's own writes: INSERT OR IGNORE of bindings, INSERT OR REPLACE of profiles.
        con.executemany(
            "INSERT OR IGNORE INTO identities (email, id) VALUES (?, ?)",
            [("zed@x.com", "cus_z"), ("amy@x.com", "cus_a")],
        )
        con.executemany(
            "INSERT OR REPLACE INTO profiles"
            " (person, first_order_date, last_order_date, order_count, lifetime_value)"
            " VALUES (?, ?, ?, ?, ?)",
            [("id:cus_z", 100, 300, 2, 30.0), ("id:cus_a", 200, 200, 1, 5.0)],
        )


def test_a_v3_file_is_upgraded_in_place_and_its_rows_are_numbered(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    _v3_file(path)
    store = SQLiteStore(path)
    try:
        assert SCHEMA_VERSION >= 5
        assert store.identities_since(0) == [(1, "amy@x.com", "cus_a"), (2, "zed@x.com", "cus_z")]
        assert store.last_orders_since(0) == [(1, "id:cus_a", 200), (2, "id:cus_z", 300)]
        assert store.profile("id:cus_z") == {
            "first_order_date": 100,
            "last_order_date": 300,
            "order_count": 2,
            "lifetime_value": 30.0,
        }
        store.commit(
            [bind(("amy@x.com", "cus_other"), ("new@x.com", "cus_n"))],
        )
        store.commit([Write(outbox=(order("id:cus_a", 400, "o1"),))])
        assert store.identities_since(2) == [(3, "new@x.com", "cus_n")]
        assert store.last_orders_since(2) == [(3, "id:cus_a", 400)]
    finally:
        store.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        indexes = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"identities_seq", "profiles_seq"} <= indexes
    finally:
        con.close()
    SQLiteStore(path).close()  # reopening migrates nothing more
