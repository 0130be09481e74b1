"""Retention: what a prune deletes and keeps, in batches, on SQLite and PostgreSQL (the same
figures); pruners on several hosts at once; a simulated week stays bounded."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from store_kinds import AnyStore
from store_sql import count, rows, run

from trackguard.monitor.db import MonitorDB
from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.monitor_schema import create_statements
from trackguard.store.postgres import PostgresStore
from trackguard.store.retention import (
    CLAIMS,
    OUTBOX,
    Pruner,
    Retention,
    alongside,
    delete_batches,
    prune,
    session_transaction,
)
from trackguard.store.sql import Session, session
from trackguard.store.sqlite import SQLiteStore

DAY = 86_400.0
T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z
PAYLOAD = b'{"v2":{"type":"person","action":"event","name":"x"}}'
#: The default retention without the monitor's tables (which a store may or may not have):
#: the store's own rules, the same on every store.
STORE_ONLY = Retention(monitor=None)


def _row(person: str, at: float, **kw: Any) -> OutboxRow:
    return OutboxRow(received_at=at, person=person, payload=PAYLOAD, **kw)


def _record(at: float) -> QuarantineRecord:
    return QuarantineRecord(received_at=at, kind="plan", method="POST", path="/api/v2/entity")


def _count(path: Path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tg.db", synchronous="NORMAL")
    yield s
    s.close()


@pytest.fixture
def any_kind(any_store: AnyStore) -> AnyStore:
    """A store of each kind (SQLite file, PostgreSQL schema)."""
    return any_store


def _aged_store(store: AnyStore) -> float:
    """Rows on both sides of every cutoff; returns ``now``."""
    now = T0 + 40 * DAY
    old, recent = now - 8 * DAY, now - 6 * DAY
    store.commit(
        [
            Write(outbox=(_row("p1", old, dedupe_key="k-old", claim_until=now - 1),)),
            Write(outbox=(_row("p2", old, dedupe_key="k-now", claim_until=now),)),
            Write(outbox=(_row("p3", old, dedupe_key="k-new", claim_until=now + 1),)),
            Write(outbox=(_row("p4", old),), anonymous=(("a-old", "viewed"),)),
            Write(outbox=(_row("p5", recent),), anonymous=(("a-new", "viewed"),)),
            Write(outbox=(_row("p6", old),), links=(("ana@example.com", "cus_1"),)),
            Write(quarantine=(_record(now - 90 * DAY),)),
        ]
    )
    # seq 1..3 delivered 8 days ago, 4 failed 8 days ago, 5 delivered 6 days ago, 6 pending.
    store.mark_delivered([1, 2, 3], now=old + 1)
    store.mark_failed([(4, _record(old))], now=old + 1)
    store.mark_delivered([5], now=recent + 1)
    # first_seen of the anonymous rows: "a-old" 40 days ago, "a-new" 6 days ago.
    run(
        store, "UPDATE anonymous SET first_seen = ? WHERE anonymous_id = 'a-old'", (now - 40 * DAY,)
    )
    return now


def test_prune_deletes_what_aged_out_and_keeps_everything_else(any_kind: AnyStore) -> None:
    store = any_kind
    now = _aged_store(store)
    report = prune(store, STORE_ONLY, now)
    assert report == {"outbox": 4, "claims": 2, "anonymous": 1}
    assert [(r.seq, r.state) for r in store.outbox_list()] == [(6, "pending"), (5, "delivered")]
    # counts follow the rows they count, in the same transactions
    stats = store.outbox_stats()
    assert (stats.pending, stats.delivered, stats.failed) == (1, 1, 0)
    assert rows(store, "SELECT key FROM claims") == [("k-new",)]
    assert rows(store, "SELECT anonymous_id FROM anonymous") == [("a-new",)]
    # never pruned: quarantine records (their own purge), bindings, profiles
    assert store.quarantine_count() == 2
    assert len(store.quarantine_list()) == 2
    assert store.identities() == [("ana@example.com", "cus_1")]
    # idempotent
    assert prune(store, STORE_ONLY, now) == {"outbox": 0, "claims": 0, "anonymous": 0}


def test_a_pruned_claim_frees_its_key_and_a_kept_one_still_names_its_person(
    any_kind: AnyStore,
) -> None:
    store = any_kind
    now = _aged_store(store)
    assert rows(store, "SELECT key, person FROM claims ORDER BY key") == [
        ("k-new", "p3"),
        ("k-now", "p2"),
        ("k-old", "p1"),
    ]
    prune(store, STORE_ONLY, now)
    assert rows(store, "SELECT key, person FROM claims") == [("k-new", "p3")]
    request = _record(now)
    # The pruned key is anyone's again; the kept one is still p3's: another person's row with
    # it is a conflict, kept in the quarantine, not a duplicate.
    reused = _row("q1", now, dedupe_key="k-old", claim_until=now + DAY)
    clash = _row("q2", now, dedupe_key="k-new", claim_until=now + DAY)
    assert store.commit(
        [Write(outbox=(reused,), kept_as=request), Write(outbox=(clash,), kept_as=request)]
    ) == [0, 0]
    assert rows(store, "SELECT key, person FROM claims ORDER BY key") == [
        ("k-new", "p3"),
        ("k-old", "q1"),
    ]
    assert (store.duplicate_count(), store.conflict_count()) == (0, 1)
    codes = sorted(r.codes for r in store.quarantine_list())
    assert codes == [(), (), ("dedupe_key_conflict",)]


def test_a_pending_row_is_never_pruned_however_old(any_kind: AnyStore) -> None:
    store = any_kind
    store.commit([Write(outbox=(_row("p", T0),))])
    store.mark_retry([1], "503", next_attempt_at=T0 + 1)
    assert prune(store, Retention(outbox=0), T0 + 365 * DAY)["outbox"] == 0
    assert store.outbox_stats().pending == 1


def test_dry_run_counts_and_deletes_nothing(any_kind: AnyStore) -> None:
    store = any_kind
    now = _aged_store(store)
    assert prune(store, STORE_ONLY, now, dry_run=True) == {
        "outbox": 4,
        "claims": 2,
        "anonymous": 1,
    }
    assert len(store.outbox_list()) == 6
    assert store.outbox_stats().delivered == 4


def test_monitor_tables_a_store_lacks_are_skipped(store: SQLiteStore) -> None:
    assert prune(store, Retention(monitor=DAY), T0) == {"outbox": 0, "claims": 0, "anonymous": 0}


def test_monitor_tables_are_pruned_when_they_exist(tmp_path: Path) -> None:
    path = tmp_path / "tg.db"
    store = SQLiteStore(path)
    db = MonitorDB(path)
    try:
        now = T0 + 10 * DAY
        minutes = [int((now - d * DAY) // 60) for d in (9, 8.5, 7.9, 1)]
        db.add_counts({(m, "x", "r", "s", "outcome", "accepted"): 1 for m in minutes})
        db.add_health(now - 9 * DAY, {"m": 1})
        db.add_health(now - 1 * DAY, {"m": 2})
        report = prune(store, Retention(monitor=8 * DAY), now)
        assert (report["monitor_counts"], report["monitor_health"]) == (2, 1)
        assert _count(path, "monitor_counts") == 2
        assert db.health_at("m", now) == 2
        # the monitor's own prune, in batches of 1
        assert db.prune(now - 2 * DAY, batch=1) == 1
        assert _count(path, "monitor_counts") == 1
    finally:
        db.close()
        store.close()


def _pg(url_schema: tuple[str, str]) -> PostgresStore:
    url, schema = url_schema
    return PostgresStore(url, schema=schema)


@pytest.fixture
def pg_store(pg_schema: tuple[str, str]) -> Iterator[PostgresStore]:
    """A PostgreSQL store only (the monitor's tables there, several pruners at once)."""
    store = _pg(pg_schema)
    yield store
    store.close()


def test_monitor_tables_in_a_postgresql_store_are_pruned_when_they_exist(
    pg_store: PostgresStore,
) -> None:
    now = T0 + 10 * DAY
    for ddl in create_statements("postgresql"):
        run(pg_store, ddl)
    minutes = [int((now - d * DAY) // 60) for d in (9, 8.5, 7.9, 1)]
    run(
        pg_store,
        "INSERT INTO monitor_counts VALUES (?, 'x', 'r', 's', 'outcome', 'accepted', 1)",
        *((m,) for m in minutes),
    )
    run(pg_store, "INSERT INTO monitor_hourly VALUES (?, 'x', 'outcome', 'accepted', 1)", (0,))
    run(
        pg_store,
        "INSERT INTO monitor_health VALUES (?, 'm', ?)",
        (now - 9 * DAY, 1),
        (now - DAY, 2),
    )
    assert prune(pg_store, Retention(monitor=8 * DAY), now, dry_run=True) == {
        "outbox": 0,
        "claims": 0,
        "anonymous": 0,
        "monitor_counts": 2,
        "monitor_hourly": 1,
        "monitor_health": 1,
    }
    report = prune(pg_store, Retention(monitor=8 * DAY), now, batch=1)
    assert (report["monitor_counts"], report["monitor_hourly"], report["monitor_health"]) == (
        2,
        1,
        1,
    )
    assert rows(pg_store, "SELECT minute FROM monitor_counts ORDER BY minute") == [
        (m,) for m in minutes[2:]
    ]
    assert rows(pg_store, "SELECT metric, value FROM monitor_health") == [("m", 2)]


def test_a_prune_goes_in_transactions_of_at_most_batch_rows(any_kind: AnyStore) -> None:
    store = any_kind
    store.commit([Write(outbox=tuple(_row(f"p{i}", T0) for i in range(10)))])
    store.mark_delivered(list(range(1, 11)), now=T0)
    seen: list[tuple[int, int]] = []

    with session(store, readonly=False) as s:
        batches = session_transaction(s)

        @contextmanager
        def watched() -> Iterator[Session]:
            with batches() as conn:
                yield conn
                # inside the transaction: the rows gone so far and the count agree
                left = conn.one("SELECT count(*) FROM outbox")
                counted = conn.one("SELECT n FROM counts WHERE name = 'delivered'")
                assert left is not None and counted is not None
                seen.append((int(left[0]), int(counted[0])))

        assert delete_batches(watched, OUTBOX, T0 + 1, batch=3) == 10
    assert seen == [(7, 7), (4, 4), (1, 1), (0, 0)]
    assert store.outbox_stats().delivered == 0


def test_a_prune_batch_of_the_sqlite_writer_changes_its_rows_and_one_count(
    store: SQLiteStore,
) -> None:
    store.commit([Write(outbox=tuple(_row(f"p{i}", T0) for i in range(10)))])
    store.mark_delivered(list(range(1, 11)), now=T0)
    sizes: list[int] = []

    @contextmanager
    def counting() -> Iterator[sqlite3.Connection]:
        with store.transaction() as conn:
            before = conn.total_changes
            yield conn
            sizes.append(conn.total_changes - before)

    assert delete_batches(counting, OUTBOX, T0 + 1, batch=3) == 10
    # each batch: its deletes plus the one counts update (all rows were delivered)
    assert sizes == [3 + 1, 3 + 1, 3 + 1, 1 + 1]


def test_a_prune_ends_after_the_batch_in_hand_once_stopped(any_kind: AnyStore) -> None:
    store = any_kind
    store.commit([Write(outbox=tuple(_row(f"p{i}", T0) for i in range(10)))])
    store.mark_delivered(list(range(1, 11)), now=T0)
    stop = threading.Event()
    stop.set()
    assert prune(store, Retention(outbox=0), T0 + 1, batch=4, stop=stop)["outbox"] == 4
    assert prune(store, Retention(outbox=0), T0 + 1, batch=4)["outbox"] == 6


def test_pruner_counts_what_it_pruned(any_kind: AnyStore) -> None:
    store = any_kind
    clock = [T0]
    pruner = Pruner(store, Retention(outbox=DAY, monitor=None), every=3600, clock=lambda: clock[0])
    store.commit([Write(outbox=(_row("p", T0),))])
    store.mark_delivered([1], now=T0)
    assert pruner.prune_now() == {"outbox": 0, "claims": 0, "anonymous": 0}
    clock[0] = T0 + DAY + 1
    assert pruner.prune_now() == {"outbox": 1, "claims": 0, "anonymous": 0}
    samples = {
        (m.name, tuple(s.labels.items())): s.value
        for m in pruner.collector().collect()
        for s in m.samples
    }
    assert samples[("trackguard_store_pruned_rows", (("table", "outbox"),))] == 1
    assert samples[("trackguard_store_prune_failures", ())] == 0
    assert samples[("trackguard_store_last_prune_timestamp_seconds", ())] == T0 + DAY + 1
    assert (pruner.runs, store.outbox_stats().delivered) == (2, 0)


def test_pruner_counts_and_logs_a_failure_and_goes_on(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    readonly = SQLiteStore(store.path, readonly=True)
    failing = Pruner(readonly, Retention(), clock=lambda: T0)
    with caplog.at_level(logging.ERROR, logger="trackguard.store.retention"):
        assert failing.prune_now() is None
    readonly.close()
    assert failing.failures == 1
    assert caplog.messages == [
        f"retention prune failed, retried in 600 s: {store.path}: opened read-only;"
        " this needs a writable store"
    ]


def test_a_postgresql_pruner_that_loses_the_database_logs_it_and_goes_on(
    pg_store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = Pruner(pg_store, Retention(), clock=lambda: T0)
    pg_store.close()
    with caplog.at_level(logging.ERROR, logger="trackguard.store.retention"):
        assert pruner.prune_now() is None
    assert pruner.failures == 1
    assert caplog.messages == ["retention prune failed, retried in 600 s: the store is closed"]


# -- several pruners on one PostgreSQL database --------------------------------------------


def test_pruners_on_several_hosts_at_once_delete_each_row_once_and_keep_counts_exact(
    pg_store: PostgresStore, pg_schema: tuple[str, str]
) -> None:
    n = 600
    pg_store.commit([Write(outbox=tuple(_row(f"p{i}", T0) for i in range(n)))])
    pg_store.mark_delivered(list(range(1, n // 2 + 1)), now=T0)
    failed = [(seq, _record(T0)) for seq in range(n // 2 + 1, n - 9)]
    pg_store.mark_failed(failed, now=T0)
    # three processes, each with its own store (connections), pruning at the same moment
    hosts = [_pg(pg_schema) for _ in range(3)]
    start = threading.Barrier(len(hosts))
    reports: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def host(store: AnyStore) -> None:
        try:
            start.wait()
            reports.append(prune(store, Retention(outbox=0, monitor=None), T0 + 1, batch=7))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=host, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in hosts:
        h.close()
    assert errors == []
    assert sum(r["outbox"] for r in reports) == n - 10
    stats = pg_store.outbox_stats()
    assert (stats.pending, stats.delivered, stats.failed) == (10, 0, 0)
    assert count(pg_store, "outbox") == 10
    assert prune(pg_store, Retention(outbox=0, monitor=None), T0 + 1) == {
        "outbox": 0,
        "claims": 0,
        "anonymous": 0,
    }


def test_a_claim_a_commit_holds_is_skipped_and_kept(
    pg_store: PostgresStore, pg_schema: tuple[str, str]
) -> None:
    now = T0 + DAY
    pg_store.commit(
        [
            Write(outbox=(_row("p1", T0, dedupe_key="k1", claim_until=T0),)),
            Write(outbox=(_row("p2", T0, dedupe_key="k2", claim_until=T0),)),
        ]
    )
    url, schema = pg_schema
    with psycopg.connect(url) as renewing:
        # another transaction renews k1 (as a commit re-claiming an expired key does) and has
        # not committed yet: the prune leaves the row it holds instead of waiting for it
        renewing.execute(f'SET search_path TO "{schema}"')
        renewing.execute("UPDATE claims SET expires_at = %s WHERE key = 'k1'", (now + DAY,))
        assert prune(pg_store, Retention(), now)["claims"] == 1
        renewing.commit()
    assert rows(pg_store, "SELECT key, expires_at FROM claims") == [("k1", now + DAY)]
    with session(pg_store, readonly=False) as s:
        assert delete_batches(session_transaction(s), CLAIMS, now, batch=10) == 0


def test_alongside_runs_the_pruner_until_the_same_stop(store: SQLiteStore) -> None:
    pruner = Pruner(store, Retention(), every=3600, clock=lambda: T0)
    pruned = threading.Event()
    original = pruner.prune_now

    def prune_now(stop: threading.Event | None = None) -> dict[str, int] | None:
        result = original(stop)
        pruned.set()
        return result

    pruner.prune_now = prune_now  # type: ignore[method-assign]

    def worker(stop: threading.Event) -> None:
        assert pruned.wait(10)  # the pruner ran once at start, beside the worker
        stop.wait(0.01)

    stop = threading.Event()
    alongside(worker, pruner)(stop)  # returns: the pruner thread ended with the worker
    assert stop.is_set() and pruner.runs == 1


def test_retention_refuses_negative_and_non_finite() -> None:
    with pytest.raises(ValueError, match="outbox retention must be a number of seconds >= 0"):
        Retention(outbox=-1)
    with pytest.raises(ValueError, match="the prune interval must be a number of seconds > 0"):
        Pruner(None, Retention(), every=0)  # type: ignore[arg-type]


# -- a simulated week ------------------------------------------------------------------------

STEP = 600.0  # traffic arrives every 10 minutes of simulated time...
PER_STEP = 6  # ...six operations at a time, each with its own dedupe key
EVERY = 3600.0  # retention runs hourly
WINDOW = 3600.0  # dedupe window: claims expire an hour after the request
KEEP = Retention(outbox=1 * DAY, anonymous=2 * DAY, monitor=3 * DAY)


def _bound(retention: float, per_step: int) -> int:
    """Most rows a table holds: everything younger than the retention at the last prune, plus
    what arrived since (one prune interval less one step), including both ends."""
    return (int((retention + EVERY - STEP) // STEP) + 1) * per_step


def test_a_week_of_traffic_stays_bounded_by_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "tg.db"
    store = SQLiteStore(path, synchronous="NORMAL")
    monitor = MonitorDB(path)
    clock = [T0]
    pruner = Pruner(store, KEEP, every=EVERY, clock=lambda: clock[0], batch=100, pause=0)
    peak: dict[str, int] = {}
    pages: dict[int, int] = {}
    steps = int(7 * DAY // STEP)
    try:
        for k in range(steps + 1):
            t = clock[0] = T0 + k * STEP
            rows = tuple(
                _row(f"p{i}", t, dedupe_key=f"k{k}.{i}", claim_until=t + WINDOW)
                for i in range(PER_STEP)
            )
            extra: dict[str, Any] = {}
            if k < 10:  # a few records and bindings on day one: never pruned
                extra = {"quarantine": (_record(t),), "links": ((f"e{k}@x.io", f"c{k}"),)}
            store.commit([Write(outbox=rows, anonymous=((f"anon-{k}", "viewed"),), **extra)])
            leased = store.lease(100, now=t)
            store.mark_delivered([r.seq for r in leased], now=t)
            monitor.add_counts({(int(t // 60), "x", "r", "s", "outcome", n): 1 for n in "ab"})
            if k % int(EVERY // STEP) == 0:
                assert pruner.prune_now() is not None
            for table in ("outbox", "claims", "anonymous", "monitor_counts"):
                peak[table] = max(peak.get(table, 0), _count(path, table))
            if k % int(DAY // STEP) == 0:
                pages[k // int(DAY // STEP)] = store.read("PRAGMA page_count")[0][0]
        assert store.outbox_stats().pending == 0
        assert peak == {
            "outbox": _bound(KEEP.outbox, PER_STEP),  # 150 steps of 6: 900
            # a claim goes at its expiry (inclusive): one step fewer, 11 steps of 6: 66
            "claims": _bound(WINDOW, PER_STEP) - PER_STEP,
            "anonymous": _bound(KEEP.anonymous, 1),  # 293
            "monitor_counts": _bound(3 * DAY, 2),  # 876
        }
        assert peak["outbox"] == 900
        # a week of rows went through; the day-one records and bindings are all still there
        assert store.read("SELECT max(seq) FROM outbox")[0][0] == (steps + 1) * PER_STEP
        assert store.quarantine_count() == 10
        assert len(store.identities()) == 10
        # once every retention has been in force for a while, freed pages are reused and the
        # file stops growing (days 5 to 7 end at the same size; 14 simulated days do too)
        assert pages[5] == pages[6] == pages[7] < pages[4] + 2, pages
        assert sum(pruner.pruned.values()) > 0 and pruner.failures == 0
    finally:
        monitor.close()
        store.close()
