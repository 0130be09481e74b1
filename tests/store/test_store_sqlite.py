"""The Store protocol on SQLite and PostgreSQL (field round trips, leasing order, state
transitions, closing), and SQLiteStore's own schema, pragmas and URLs."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from store_kinds import AnyStore, Opener, lease_case

import trackguard.store
from trackguard.store import (
    OutboxRow,
    OutboxStats,
    QuarantineRecord,
    SQLiteStore,
    StoreClosed,
    StoreError,
    Write,
    open_store,
)
from trackguard.store.sqlite import _LEASE, SCHEMA_VERSION
from trackguard.store.urls import sqlite_path


def row(person: str = "p1", **kw: Any) -> OutboxRow:
    kw.setdefault("received_at", 1000.0)
    kw.setdefault("payload", b'{"v2":{"type":"person","action":"event"}}')
    return OutboxRow(person=person, **kw)


def record(**kw: Any) -> QuarantineRecord:
    kw.setdefault("received_at", 1000.0)
    kw.setdefault("kind", "plan")
    kw.setdefault("method", "POST")
    kw.setdefault("path", "/api/v2/entity")
    return QuarantineRecord(**kw)


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """A SQLite store, then a PostgreSQL one: the protocol tests run on both."""
    return any_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tg.db", lease_seconds=60.0)
    yield s
    s.close()


def add(store: AnyStore, *persons: str) -> None:
    """One outbox row per person given, in order (seq 1, 2, ...)."""
    store.commit([Write(outbox=(row(p),)) for p in persons])


def seqs(rows: list[OutboxRow]) -> list[int]:
    return [r.seq for r in rows]


# -- schema ----------------------------------------------------------------------------------


def test_store_schema_created_with_version_wal_and_indexes(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    con = sqlite3.connect(store.path)
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = {
            (t, n) for t, n in con.execute("SELECT type, name FROM sqlite_master WHERE sql != ''")
        }
    finally:
        con.close()
    assert {
        ("table", "outbox"),
        ("table", "quarantine"),
        ("table", "counts"),
        ("table", "meta"),
        ("index", "outbox_pending_seq"),
        ("index", "outbox_pending_due"),
        ("index", "quarantine_received_at"),
        ("index", "quarantine_event_name"),
        ("index", "quarantine_kind"),
    } <= names
    # synchronous is per connection: FULL (2) unless asked otherwise.
    assert store._writer.execute("PRAGMA synchronous").fetchone() == (2,)


def test_store_synchronous_normal_is_applied(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "n.db", synchronous="NORMAL")
    try:
        assert s._writer.execute("PRAGMA synchronous").fetchone() == (1,)
    finally:
        s.close()
    with pytest.raises(StoreError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]


def test_store_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "tg.db")
    add(s, "a", "b")
    s.close()
    s = SQLiteStore(tmp_path / "tg.db")
    try:
        assert s.outbox_stats().pending == 2
        add(s, "c")
        assert s.outbox_row(3) is not None
    finally:
        s.close()


def test_store_refuses_newer_schema(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "tg.db").close()
    con = sqlite3.connect(tmp_path / "tg.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this trackguard"):
        SQLiteStore(tmp_path / "tg.db")


def test_store_rejects_memory_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="file path"):
        SQLiteStore(":memory:")
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "missing" / "tg.db")


def test_store_public_api_is_pinned() -> None:
    assert sorted(trackguard.store.__all__) == [
        "GroupCommitter",
        "OutboxRow",
        "OutboxStats",
        "QuarantineRecord",
        "SQLiteStore",
        "Store",
        "StoreClosed",
        "StoreError",
        "Write",
        "open_store",
    ]


# -- round trips -----------------------------------------------------------------------------


def test_store_outbox_row_round_trips_every_field(store: AnyStore) -> None:
    full = OutboxRow(
        seq=999,  # ignored: the store assigns seq
        received_at=1712345678.125,
        person="cio_03000001",
        payload=b'{"v1":{"method":"PUT","path":"/api/v1/customers/x","body":"\xc3\xa9"}}\x00',
        dedupe_key="order-42",
        event_name="order_completed",
        source="web",
        state="pending",
        attempts=3,
        next_attempt_at=1712345700.5,
        last_error="429 Too Many Requests",
        delivered_at=None,
    )
    bare = row("p2")
    store.commit([Write(outbox=(full, bare))])
    assert store.outbox_row(1) == msgspec.structs.replace(full, seq=1)
    assert store.outbox_row(2) == OutboxRow(
        seq=2,
        received_at=1000.0,
        person="p2",
        payload=bare.payload,
        dedupe_key=None,
        event_name=None,
        source=None,
        state="pending",
        attempts=0,
        next_attempt_at=0.0,
        last_error=None,
        delivered_at=None,
    )
    assert store.outbox_row(3) is None


def test_store_quarantine_record_round_trips_every_field(store: AnyStore) -> None:
    full = QuarantineRecord(
        id=77,  # ignored: the store assigns id
        received_at=1712345678.25,
        kind="upstream",
        method="PUT",
        path="/api/v1/customers/%C3%A9/events",
        headers=(("Content-Type", "application/json"), ("Authorization", "[redacted]")),
        body=b'{"name":"caf\xc3\xa9"}\x00\xff',
        source="ios",
        plan_version="2024-06-01.3",
        status=400,
        findings='[{"code":"E_TYPE","message":"caf\u00e9"}]'.encode(),
        event_name="order_completed",
        codes=("E_TYPE", "W_NAMING"),
        batch_index=0,
        upstream_error="attribute too long",
        state="still_invalid",
    )
    store.commit([Write(quarantine=(full, record()))])
    newest, oldest = store.quarantine_list()
    assert oldest == msgspec.structs.replace(full, id=1)
    assert newest == QuarantineRecord(
        id=2,
        received_at=1000.0,
        kind="plan",
        method="POST",
        path="/api/v2/entity",
        headers=(),
        body=b"",
        source=None,
        plan_version="",
        status=200,
        findings=b"[]",
        event_name=None,
        codes=(),
        batch_index=None,
        upstream_error=None,
        state="quarantined",
    )
    if isinstance(store, SQLiteStore):
        con = sqlite3.connect(store.path)
        try:  # stored as JSON text so it can be queried with json_each
            assert con.execute(
                "SELECT json_extract(findings, '$[0].code') FROM quarantine WHERE id = 1"
            ).fetchall() == [("E_TYPE",)]
            assert con.execute(
                "SELECT c.value FROM quarantine AS q, json_each(q.codes) AS c WHERE q.id = 1"
            ).fetchall() == [("E_TYPE",), ("W_NAMING",)]
        finally:
            con.close()
    else:  # JSON text too: castable to jsonb
        assert store._read(
            "SELECT findings::jsonb -> 0 ->> 'code', codes::jsonb FROM quarantine WHERE id = 1"
        ) == [("E_TYPE", ["E_TYPE", "W_NAMING"])]


def test_store_commit_many_writes_in_order(store: AnyStore) -> None:
    store.commit(
        [
            Write(outbox=(row("a"), row("b")), quarantine=(record(event_name="x"),)),
            Write(),
            Write(outbox=(row("c"),), quarantine=(record(event_name="y"),)),
        ]
    )
    store.commit([])
    assert [store.outbox_row(s).person for s in (1, 2, 3)] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert [q.event_name for q in store.quarantine_list()] == ["y", "x"]
    assert store.quarantine_count() == 2
    assert store.outbox_stats() == OutboxStats(
        pending=3, delivered=0, failed=0, oldest_pending_at=1000.0
    )


def test_store_commit_is_all_or_nothing(store: AnyStore) -> None:
    add(store, "a")
    bad = row("b", state="bogus")  # msgspec does not validate on construction; SQLite does
    with pytest.raises(StoreError, match=r"(?i)check constraint"):
        store.commit([Write(outbox=(row("ok"),), quarantine=(record(),)), Write(outbox=(bad,))])
    with pytest.raises(StoreError, match="UTF-8"):
        store.commit([Write(outbox=(row("ok"),)), Write(quarantine=(record(findings=b"\xff"),))])
    assert store.outbox_stats().pending == 1
    assert store.quarantine_count() == 0
    assert store.outbox_row(2) is None
    add(store, "c")
    assert store.outbox_row(2).person == "c"  # type: ignore[union-attr]


# -- lease -----------------------------------------------------------------------------------


def test_store_lease_claims_rows_and_keeps_per_person_order(store: AnyStore) -> None:
    add(store, "A", "B", "A", "C", "B", "A")  # seq 1..6
    first = store.lease(2, now=1000.0)
    assert seqs(first) == [1, 2]
    assert [r.next_attempt_at for r in first] == [1060.0, 1060.0]  # claimed for lease_seconds
    assert store.outbox_row(1).next_attempt_at == 1060.0  # type: ignore[union-attr]
    # 1 (A) and 2 (B) are in flight: A's and B's later rows wait; only C is free.
    assert seqs(store.lease(10, now=1000.0)) == [4]
    assert store.lease(10, now=1000.0) == []

    store.mark_delivered([1], now=1001.0)
    store.mark_retry([2], "429 Too Many Requests", next_attempt_at=1100.0)
    assert seqs(store.lease(10, now=1002.0)) == [3, 6]  # B still held back by its retry
    store.mark_delivered([3, 4, 6], now=1003.0)
    assert store.lease(10, now=1099.0) == []
    assert seqs(store.lease(10, now=1100.0)) == [2, 5]  # the retry goes first, then B's next
    retried = store.outbox_row(2)
    assert retried is not None
    assert (retried.attempts, retried.last_error) == (1, "429 Too Many Requests")


def test_store_lease_returns_oldest_first_across_persons(store: AnyStore) -> None:
    add(store, *[f"p{i % 7}" for i in range(30)])
    # seq s belongs to p((s - 1) % 7)
    assert seqs(store.lease(5, now=1.0)) == [1, 2, 3, 4, 5]
    # p0..p4 have a row in flight; p5 and p6 are free, several of their due rows at once.
    assert seqs(store.lease(5, now=1.0)) == [6, 7, 13, 14, 20]
    assert seqs(store.lease(5, now=1.0)) == []  # everyone has a row in flight
    assert store.lease(0, now=1.0) == []


def test_store_lease_comes_back_after_claim_expires(store: AnyStore) -> None:
    add(store, "A", "A", "B")
    assert seqs(store.lease(2, now=0.0)) == [1, 2]  # one person's due rows come together
    assert seqs(store.lease(10, now=0.0)) == [3]
    store.mark_delivered([3], now=1.0)
    assert store.lease(10, now=59.9) == []
    # The worker died: after lease_seconds the rows are due again, in order.
    assert seqs(store.lease(10, now=60.0)) == [1, 2]
    assert store.outbox_row(1).attempts == 0  # type: ignore[union-attr]


def test_store_lease_skips_future_rows_of_other_people(store: AnyStore) -> None:
    store.commit(
        [
            Write(outbox=(row("A", next_attempt_at=50.0),)),
            Write(outbox=(row("B"),)),
            Write(outbox=(row("A"),)),  # due, but A's earlier row is not
            Write(outbox=(row("C", next_attempt_at=20.0),)),
        ]
    )
    assert seqs(store.lease(10, now=10.0)) == [2]
    assert seqs(store.lease(10, now=20.0)) == [4]
    assert seqs(store.lease(10, now=50.0)) == [1, 3]


def test_store_lease_matches_reference_model(tmp_path: Path) -> None:
    """Many random queues against a brute-force reading of the protocol's docstring."""
    import random

    rnd = random.Random(7)
    for case in range(40):
        s = SQLiteStore(tmp_path / f"m{case}.db")
        try:
            leased, expected, context = lease_case(s, rnd)
            assert leased == expected, (case, context)
        finally:
            s.close()


def _lease_with_500_blocked(path: Path, pending: int) -> tuple[list[OutboxRow], int, list[str]]:
    """Lease 500 of ``pending`` rows (5000 people, 500 of them held back by a retry).

    Returns the rows, how many SQLite VM instructions the lease ran (the work it did: each row
    it visits costs several), and the lease statement's query plan.
    """
    s = SQLiteStore(path, synchronous="NORMAL")
    try:
        rows = tuple(row(f"p{i % 5000}") for i in range(pending))
        s.commit([Write(outbox=rows)])
        s.mark_retry(list(range(1, 5001, 10)), "503", next_attempt_at=10_000.0)  # 500 blocked
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0  # go on

        s._writer.set_progress_handler(count, 1)  # called at every VM instruction
        try:
            leased = s.lease(500, now=1.0)
        finally:
            s._writer.set_progress_handler(None, 1)
        params = {"until": 1.0 + s.lease_seconds, "now": 1.0, "limit": 500}  # as lease() binds
        plan = [d for *_, d in s._writer.execute("EXPLAIN QUERY PLAN " + _LEASE, params)]
    finally:
        s.close()
    return leased, steps, plan


def test_store_lease_work_does_not_grow_with_100k_pending(tmp_path: Path) -> None:
    leased, steps, plan = _lease_with_500_blocked(tmp_path / "big.db", 100_000)
    assert len(leased) == 500
    assert all(int(r.person[1:]) % 10 != 0 for r in leased)
    # The same head of the queue behind 10x fewer rows: the lease visits the same rows and
    # runs exactly as many instructions (walking all pending rows would cost 10x more).
    small, small_steps, small_plan = _lease_with_500_blocked(tmp_path / "small.db", 10_000)
    assert seqs(small) == seqs(leased)
    assert steps == small_steps
    assert plan == small_plan
    # The blocked set is searched in the not-due index; the one scan walks the pending index
    # in seq order (no sort) and stops at the limit.
    due = r"SEARCH .*USING (COVERING )?INDEX outbox_pending_due \(next_attempt_at>\?\)"
    assert [d for d in plan if re.fullmatch(due, d)], plan
    scans = [d for d in plan if d.startswith("SCAN")]
    assert len(scans) == 1, plan
    assert re.search(r"USING (COVERING )?INDEX outbox_pending_seq$", scans[0]), plan
    assert not [d for d in plan if "FOR ORDER BY" in d], plan


# -- marks and stats -------------------------------------------------------------------------


def test_store_mark_delivered_retry_failed_and_stats(store: AnyStore) -> None:
    store.commit([Write(outbox=(row("a", received_at=10.0 + i),)) for i in range(5)])
    store.mark_delivered([1, 1, 99], now=500.0)  # duplicates once, unknown seqs ignored
    store.mark_retry([2], "timeout", next_attempt_at=600.0)
    store.mark_retry([2], "502", next_attempt_at=700.0)
    upstream = record(kind="upstream", upstream_error="invalid email", event_name="signup")
    store.mark_failed([(3, upstream), (1, upstream)], now=800.0)  # 1 is delivered: untouched

    assert store.outbox_row(1) == row(
        "a", seq=1, received_at=10.0, state="delivered", attempts=1, delivered_at=500.0
    )
    assert store.outbox_row(2) == row(
        "a", seq=2, received_at=11.0, attempts=2, last_error="502", next_attempt_at=700.0
    )
    assert store.outbox_row(3) == row(
        "a", seq=3, received_at=12.0, state="failed", attempts=1, last_error="invalid email"
    )
    assert store.quarantine_list() == [msgspec.structs.replace(upstream, id=1)]
    assert store.quarantine_count() == 1
    assert store.outbox_stats() == OutboxStats(
        pending=3, delivered=1, failed=1, oldest_pending_at=11.0
    )
    # Terminal states stay terminal.
    store.mark_delivered([3], now=900.0)
    store.mark_retry([1, 3], "late", next_attempt_at=1.0)
    assert store.outbox_row(3).state == "failed"  # type: ignore[union-attr]
    assert store.outbox_row(1).attempts == 1  # type: ignore[union-attr]
    store.mark_delivered([2, 4, 5], now=950.0)
    assert store.outbox_stats() == OutboxStats(
        pending=0, delivered=4, failed=1, oldest_pending_at=None
    )
    store.mark_delivered([], now=1.0)
    store.mark_retry([], "x", 1.0)
    store.mark_failed([], now=1.0)


def test_store_mark_failed_is_atomic(store: AnyStore) -> None:
    add(store, "a", "b")
    bad = record(kind="nonsense")
    with pytest.raises(StoreError, match=r"(?i)check constraint"):
        store.mark_failed([(1, record(kind="upstream")), (2, bad)], now=5.0)
    assert store.outbox_row(1).state == "pending"  # type: ignore[union-attr]
    assert store.quarantine_count() == 0
    assert store.outbox_stats().failed == 0


def test_store_quarantine_list_newest_first_with_paging(store: AnyStore) -> None:
    store.commit([Write(quarantine=(record(event_name=f"e{i}"),)) for i in range(1, 8)])
    assert [q.id for q in store.quarantine_list()] == [7, 6, 5, 4, 3, 2, 1]
    assert [q.id for q in store.quarantine_list(limit=3)] == [7, 6, 5]
    assert [q.id for q in store.quarantine_list(limit=3, offset=3)] == [4, 3, 2]
    assert [q.id for q in store.quarantine_list(limit=3, offset=6)] == [1]
    assert store.quarantine_list(limit=0) == []
    assert store.quarantine_count() == 7


# -- health, threads, closing ----------------------------------------------------------------


def test_store_healthy_reflects_the_write_lock(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "h.db", busy_timeout=0.05)
    try:
        assert s.healthy() is True
        other = sqlite3.connect(s.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        assert s.healthy() is False
        with pytest.raises(StoreError, match="locked"):
            add(s, "a")
        other.execute("ROLLBACK")
        other.close()
        assert s.healthy() is True
    finally:
        s.close()
    assert s.healthy() is False


def test_store_reads_from_threads_see_commits(store: AnyStore) -> None:
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(4)]

    def reader(mine: list[int]) -> None:
        try:
            for _ in range(50):
                mine.append(store.outbox_stats().pending)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def writer() -> None:
        for _ in range(50):
            add(store, "a")

    threads = [threading.Thread(target=reader, args=(mine,)) for mine in seen]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for mine in seen:  # each reader sees commits in order, never a half-made one
        assert mine == sorted(mine)
        assert all(0 <= n <= 50 for n in mine)
    assert store.outbox_stats().pending == 50
    assert seqs(store.lease(100, now=1.0)) == list(range(1, 51))


def test_store_two_stores_on_one_file(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    add(a, "x")
    add(b, "y")
    add(a, "z")
    assert [r.person for r in b.lease(10, now=1.0)] == ["x", "y", "z"]
    assert a.lease(10, now=1.0) == []


CALLS: dict[str, Callable[[AnyStore], object]] = {
    "commit": lambda s: s.commit([Write(outbox=(row(),))]),
    "commit_empty": lambda s: s.commit([]),
    "lease": lambda s: s.lease(10, 1.0),
    "lease_zero": lambda s: s.lease(0, 1.0),
    "mark_delivered": lambda s: s.mark_delivered([1], 1.0),
    "mark_delivered_empty": lambda s: s.mark_delivered([], 1.0),
    "mark_retry": lambda s: s.mark_retry([1], "e", 2.0),
    "mark_failed": lambda s: s.mark_failed([(1, record(kind="upstream"))], 1.0),
    "outbox_row": lambda s: s.outbox_row(1),
    "outbox_stats": lambda s: s.outbox_stats(),
    "quarantine_count": lambda s: s.quarantine_count(),
    "quarantine_list": lambda s: s.quarantine_list(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_store_methods_after_close_raise_store_closed(
    store: AnyStore, call: Callable[[AnyStore], object]
) -> None:
    add(store, "a")
    store.outbox_stats()  # this thread now has a read connection, which close() must close
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        call(store)
    assert store.healthy() is False


def test_store_close_closes_other_threads_readers(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    t = threading.Thread(target=store.outbox_stats)
    t.start()
    t.join()
    store.close()
    results: list[BaseException] = []

    def after() -> None:
        try:
            store.quarantine_count()
        except StoreClosed as e:
            results.append(e)

    t = threading.Thread(target=after)
    t.start()
    t.join()
    assert len(results) == 1


# -- open_store ------------------------------------------------------------------------------


def test_store_open_store_paths_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for target in (tmp_path / "a.db", str(tmp_path / "b.db"), f"sqlite:///{tmp_path}/c.db"):
        s = open_store(target)
        assert isinstance(s, SQLiteStore)
        s.close()
    assert {p.name for p in tmp_path.glob("*.db")} == {"a.db", "b.db", "c.db"}
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///rel.db", synchronous="NORMAL")
    assert isinstance(s, SQLiteStore)
    assert (s.path, s.synchronous) == ("rel.db", "NORMAL")
    s.close()
    assert (tmp_path / "rel.db").exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("postgresql+psycopg://db/tg", "unsupported store URL"),
        ("mysql://db/tg", "unsupported store URL"),
        ("sqlite://", "sqlite:///relative/path"),
        ("sqlite:///", "sqlite:///relative/path"),
        ("sqlite:tg.db", "sqlite:///relative/path"),
        ("SQLite:/tg.db", "sqlite:///relative/path"),
        ("postgresql:/db", "unsupported store URL"),
        (":memory:", "needs a file path"),
    ],
)
def test_store_open_store_rejects(target: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(target)


def test_a_scheme_without_slashes_is_a_typo_but_other_colons_name_files(tmp_path: Path) -> None:
    assert sqlite_path("./sqlite:tg.db") == "./sqlite:tg.db"  # the way to name such a file
    assert sqlite_path("backup:2026.db") == "backup:2026.db"
    assert sqlite_path("postgres:db") is None
    with pytest.raises(StoreError, match=r"^'sqlite:tg\.db': write sqlite:///relative/path"):
        sqlite_path("sqlite:tg.db")


def test_store_dedupe_key_of_the_same_person_is_a_duplicate_of_another_a_conflict(
    store: AnyStore,
) -> None:
    def claiming(person: str, at: float) -> OutboxRow:
        return row(person, received_at=at, dedupe_key="order:A-1", claim_until=at + 100)

    request = record(method="POST", path="/api/v1/customers/2/events", body=b'{"name":"o"}')
    assert store.commit([Write(outbox=(claiming("id:1", 1.0),))]) == [0]
    assert store.commit([Write(outbox=(claiming("id:1", 2.0),))]) == [1]  # a retry
    assert store.commit([Write(outbox=(claiming("id:2", 3.0),), kept_as=request)]) == [0]
    (kept,) = store.quarantine_list()
    assert (kept.kind, kept.codes, kept.path, kept.body) == (
        "plan",
        ("dedupe_key_conflict",),
        "/api/v1/customers/2/events",
        b'{"name":"o"}',
    )
    assert msgspec.json.decode(kept.findings)[0]["message"] == (
        "dedupe key 'order:A-1' is claimed by id:1; this event of id:2 is kept, not delivered"
    )
    stats = store.outbox_stats()
    assert (stats.pending, stats.dedupe_conflicts) == (1, 1)
    assert (store.duplicate_count(), store.conflict_count(), store.quarantine_count()) == (1, 1, 1)
    # Once the claim expired, the key is anyone's again.
    assert store.commit([Write(outbox=(claiming("id:2", 101.0),))]) == [0]
    assert [r.person for r in store.outbox_list()] == ["id:2", "id:1"]


def test_store_meta_values_are_shared_by_every_store_on_it(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    assert b.meta_value("delivery_circuit") is None
    a.set_meta("delivery_circuit", '{"state":"open"}')
    a.set_meta("delivery_circuit", '{"state":"half_open"}')
    assert b.meta_value("delivery_circuit") == '{"state":"half_open"}'


def test_store_sqlite_commit_keeps_none_empty_and_zero_apart(sqlite_store: SQLiteStore) -> None:
    """A commit's quarantine records bind None as a stand-in that NULLIF turns back into
    NULL: every None (of records and rows) reads back as None, and no real value ('', 0, '0')
    is taken for one."""
    blank = row("p1", dedupe_key=None, event_name=None, source=None, route=None)
    empty = row("p2", dedupe_key="", event_name="", source="", route="", plan_version="")
    zero = row("p3", dedupe_key="0", event_name="0", source="0", route="0", plan_version="0")
    nothing = record(source=None, event_name=None, batch_index=None, route=None)
    something = record(source="", event_name="0", batch_index=0, upstream_error="", route="")
    sqlite_store.commit([Write(outbox=(blank, empty, zero), quarantine=(nothing, something))])
    got = sqlite_store.outbox_list()[::-1]
    fields = ("dedupe_key", "event_name", "source", "route", "plan_version")
    assert [tuple(getattr(r, f) for f in fields) for r in got] == [
        (None, None, None, None, None),
        ("", "", "", "", ""),
        ("0", "0", "0", "0", "0"),
    ]
    fields = ("source", "event_name", "batch_index", "upstream_error", "route", "body")
    assert [tuple(getattr(q, f) for f in fields) for q in sqlite_store.quarantine_list()] == [
        ("", "0", 0, "", "", b""),
        (None, None, None, None, None, b""),
    ]
    conn = sqlite3.connect(sqlite_store.path)
    try:
        assert conn.execute(
            "SELECT typeof(dedupe_key), typeof(payload) FROM outbox ORDER BY seq"
        ).fetchall() == [("null", "blob"), ("text", "blob"), ("text", "blob")]
        assert conn.execute(
            "SELECT typeof(batch_index), typeof(outbox_seq), typeof(body) FROM quarantine"
            " ORDER BY id"
        ).fetchall() == [("null", "null", "blob"), ("integer", "null", "blob")]
    finally:
        conn.close()
