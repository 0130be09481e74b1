"""The console's aggregate reads (``store/reads.py``) on SQLite and PostgreSQL: the same rows
in, the same figures out; the monitor's tables missing read as nothing."""

from __future__ import annotations

import pytest
from store_kinds import AnyStore
from store_sql import run

from trackguard.monitor.db import MonitorDB
from trackguard.store import reads
from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.monitor_schema import create_statements
from trackguard.store.reads import Counts, OutboxGroup, Point, UpstreamError
from trackguard.store.sqlite import SQLiteStore

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z, a whole hour
M0 = int(T0 // 60)
H0 = int(T0 // 3600)


def _row(person: str, at: float, event: str | None) -> OutboxRow:
    return OutboxRow(received_at=at, person=person, payload=b"{}", event_name=event)


def _outbox(store: AnyStore) -> None:
    """Six rows: 1 delivered, 2 and 3 retrying with an error, 4 failed (its second attempt),
    5 and 6 pending."""
    rows = [
        _row("ann", T0, "order_completed"),
        _row("bob", T0 + 1, "order_completed"),
        _row("bob", T0 + 2, None),
        _row("cid", T0 + 3, "product_viewed"),
        _row("Zed", T0 + 4, "product_viewed"),
        _row("ann", T0 + 5, "product_viewed"),
    ]
    store.commit([Write(outbox=tuple(rows))])
    store.mark_delivered([1], now=T0 + 10)
    store.mark_retry([2, 3], "503 Service Unavailable", next_attempt_at=T0 + 60)
    store.mark_retry([4], "400 Bad Request", next_attempt_at=T0 + 60)
    record = QuarantineRecord(received_at=T0, kind="upstream", method="POST", path="/x")
    store.mark_failed([(4, record)], now=T0 + 20)


def _monitor(store: AnyStore) -> None:
    """Counters of three minutes and two hours, health snapshots and one alert state."""
    if isinstance(store, SQLiteStore):
        MonitorDB(store.path).close()  # the monitor's own tables
    else:
        for ddl in create_statements("postgresql"):
            run(store, ddl)
    counts = [
        (M0, "order_completed", "accepted", 5),
        (M0, "order_completed", "rejected", 2),
        (M0 + 1, "order_completed", "invalid", 1),
        (M0 + 1, "Order Completed", "accepted", 3),
        (M0 + 61, "product_viewed", "accepted", 4),
        (M0, "(delivery)", "upstream_request", 9),
        (M0, "(delivery)", "delivered", 7),
        (M0 + 1, "(delivery)", "upstream_error", 2),
    ]
    run(
        store,
        "INSERT INTO monitor_counts VALUES (?, ?, 'r', 's', 'outcome', ?, ?)",
        *counts,
    )
    run(
        store,
        "INSERT INTO monitor_counts VALUES (?, ?, 'r', 's', 'code', ?, ?)",
        (M0, "order_completed", "property_missing", 2),
        (M0, "order_completed", "event_name_drift", 3),
        (M0 + 61, "product_viewed", "property_type", 3),
    )
    hourly: dict[tuple[int, str, str, str], int] = {}
    for minute, event, name, n in counts:
        key = (minute // 60, event, "outcome", name)
        hourly[key] = hourly.get(key, 0) + n
    hourly[(H0, "order_completed", "code", "property_missing")] = 2
    hourly[(H0, "order_completed", "code", "event_name_drift")] = 3
    hourly[(H0 + 1, "product_viewed", "code", "property_type")] = 3
    run(
        store,
        "INSERT INTO monitor_hourly VALUES (?, ?, ?, ?, ?)",
        *((*k, n) for k, n in hourly.items()),
    )
    run(
        store,
        "INSERT INTO monitor_health VALUES (?, ?, ?)",
        (T0, "anonymous_unlinked", 4),
        (T0 + 300, "anonymous_unlinked", 6),
        (T0, "identity_conflicts", 0),
    )
    run(store, "INSERT INTO monitor_alerts VALUES (?, ?)", ("orders", b'{"state":"firing"}'))


def test_outbox_reads_give_the_same_figures_on_every_store(any_store: AnyStore) -> None:
    _outbox(any_store)
    assert reads.outbox_counts(any_store) == Counts(
        pending=4, delivered=1, failed=1, quarantine=1, duplicate=0, oldest_pending_at=T0 + 1
    )
    # the largest groups first, ties in byte order ("Zed" before "ann")
    assert reads.pending_by(any_store, "person") == [
        OutboxGroup("bob", 2, T0 + 1),
        OutboxGroup("Zed", 1, T0 + 4),
        OutboxGroup("ann", 1, T0 + 5),
    ]
    assert reads.pending_by(any_store, "event_name", limit=2) == [
        OutboxGroup("product_viewed", 2, T0 + 4),
        OutboxGroup("(none)", 1, T0 + 2),
    ]
    assert reads.upstream_errors(any_store) == [
        UpstreamError(4, "cid", "product_viewed", 2, "failed", "400 Bad Request", T0 + 3),
        UpstreamError(3, "bob", None, 1, "pending", "503 Service Unavailable", T0 + 2),
        UpstreamError(2, "bob", "order_completed", 1, "pending", "503 Service Unavailable", T0 + 1),
    ]
    assert reads.quarantine_max_id(any_store) == 1
    with pytest.raises(ValueError, match="cannot group the outbox by 'seq'"):
        reads.pending_by(any_store, "seq")


def test_a_store_without_the_monitors_tables_reads_as_nothing(any_store: AnyStore) -> None:
    assert reads.event_series(any_store, T0, T0 + 3600, 60) == {}
    assert reads.delivery_series(any_store, T0, T0 + 3600, 60) == {}
    assert reads.event_usage(any_store, T0) == {}
    assert reads.code_counts(any_store, T0) == []
    assert reads.health_latest(any_store) == {}
    assert reads.alert_states(any_store) == {}
    assert reads.quarantine_max_id(any_store) == 0


def test_monitor_reads_give_the_same_figures_on_every_store(any_store: AnyStore) -> None:
    _monitor(any_store)
    assert reads.event_series(any_store, T0, T0 + 7200, 60) == {
        "Order Completed": [Point(int(T0) + 60, 3, 0)],
        "order_completed": [Point(int(T0), 7, 2), Point(int(T0) + 60, 1, 1)],
        "product_viewed": [Point(int(T0) + 3660, 4, 0)],
    }
    # 15-minute buckets; the range's end is rounded up to whole minutes
    assert reads.event_series(any_store, T0, T0 + 61, 900) == {
        "Order Completed": [Point(int(T0), 3, 0)],
        "order_completed": [Point(int(T0), 8, 3)],
    }
    # hour buckets read the hourly rollup
    assert reads.event_series(any_store, T0, T0 + 7200, 3600) == {
        "Order Completed": [Point(int(T0), 3, 0)],
        "order_completed": [Point(int(T0), 8, 3)],
        "product_viewed": [Point(int(T0) + 3600, 4, 0)],
    }
    assert reads.delivery_series(any_store, T0, T0 + 3600, 60) == {
        "delivered": [(int(T0), 7)],
        "upstream_error": [(int(T0) + 60, 2)],
        "upstream_request": [(int(T0), 9)],
    }
    # the last hour seen comes to the minute from the per-minute counters
    assert reads.event_usage(any_store, T0) == {
        "Order Completed": (3, T0 + 60, 0),
        "order_completed": (8, T0 + 60, 3),
        "product_viewed": (4, T0 + 3660, 0),
    }
    assert reads.code_counts(any_store, T0) == [
        ("order_completed", "event_name_drift", 3),
        ("product_viewed", "property_type", 3),
        ("order_completed", "property_missing", 2),
    ]
    assert reads.code_counts(any_store, T0 + 3600, limit=1) == [
        ("product_viewed", "property_type", 3)
    ]
    assert reads.health_latest(any_store) == {
        "anonymous_unlinked": (T0 + 300, 6),
        "identity_conflicts": (T0, 0),
    }
    assert reads.alert_states(any_store) == {"orders": b'{"state":"firing"}'}


def test_a_url_reads_like_the_store_it_names(
    any_store: AnyStore, request: pytest.FixtureRequest
) -> None:
    _outbox(any_store)
    if isinstance(any_store, SQLiteStore):
        target = f"sqlite:///{any_store.path}"
    else:
        url, schema = request.getfixturevalue("pg_schema")
        target = f"{url}?schema={schema}"
    assert reads.outbox_counts(target) == reads.outbox_counts(any_store)
    assert reads.pending_by(target, "person") == reads.pending_by(any_store, "person")
