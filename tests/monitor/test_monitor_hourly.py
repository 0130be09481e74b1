"""The hourly rollup of the monitor's counters: written with the minutes, backfilled, pruned;
on a SQLite file and on a PostgreSQL schema alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor_env import NewDB

from trackguard.monitor.db import MonitorDB
from trackguard.store.sqlite import SQLiteStore

ROUTE = "POST /api/v1/customers/{identifier}/events"


def _hourly(target: str | Path) -> dict[tuple[object, ...], object]:
    db = MonitorDB(target, readonly=True)
    try:
        rows = db.query("SELECT hour, event, kind, name, n FROM monitor_hourly")
    finally:
        db.close()
    return {(h, e, k, n): c for h, e, k, n, c in rows}


def test_counts_are_rolled_up_per_hour_in_the_same_flush(new_db: NewDB) -> None:
    target = new_db()
    db = MonitorDB(target)
    db.add_counts(
        {
            (60, "order_completed", ROUTE, "web", "outcome", "accepted"): 3,
            (61, "order_completed", ROUTE, "ios", "outcome", "accepted"): 4,
            (119, "order_completed", ROUTE, "web", "outcome", "accepted"): 1,
            (120, "order_completed", ROUTE, "web", "outcome", "accepted"): 2,
            (61, "order_completed", ROUTE, "web", "code", "property_missing"): 5,
        }
    )
    db.add_counts({(62, "order_completed", "other", "web", "outcome", "accepted"): 10})
    db.close()
    assert _hourly(target) == {
        (1, "order_completed", "outcome", "accepted"): 18,
        (2, "order_completed", "outcome", "accepted"): 2,
        (1, "order_completed", "code", "property_missing"): 5,
    }


def test_an_older_store_is_backfilled_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)  # its monitor's table from before the hourly rollup
    conn.execute(
        "CREATE TABLE monitor_counts (minute INTEGER NOT NULL, event TEXT NOT NULL,"
        " route TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
        " n INTEGER NOT NULL, PRIMARY KEY (minute, event, route, source, kind, name))"
        " WITHOUT ROWID"
    )
    conn.executemany(
        "INSERT INTO monitor_counts VALUES (?,?,?,?,?,?,?)",
        [(m, "cart_updated", ROUTE, "web", "outcome", "accepted", 2) for m in range(180)],
    )
    conn.commit()
    conn.close()
    MonitorDB(path).close()
    MonitorDB(path).close()  # opening again adds nothing
    assert _hourly(path) == {(h, "cart_updated", "outcome", "accepted"): 120 for h in range(3)}


def test_prune_drops_the_hours_before_the_cut(new_db: NewDB) -> None:
    target = new_db()
    db = MonitorDB(target)
    db.add_counts({(m, "e", ROUTE, "web", "outcome", "accepted"): 1 for m in range(0, 300, 30)})
    assert db.prune(2 * 3600) == 4  # minutes 0..90 go; the rollup keeps hours 2 and later
    db.close()
    assert sorted(h for h, *_ in _hourly(target)) == [2, 3, 4]


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.dictionaries(
        st.tuples(st.integers(0, 600), st.sampled_from(["a", "b"]), st.sampled_from(["r1", "r2"])),
        st.integers(1, 50),
        max_size=40,
    )
)
def test_hourly_sums_equal_minute_sums(
    new_db: NewDB, counts: dict[tuple[int, str, str], int]
) -> None:
    target = new_db()  # one store per example
    db = MonitorDB(target)
    db.add_counts({(m, e, r, "web", "outcome", "ok"): n for (m, e, r), n in counts.items()})
    db.close()
    expected: dict[tuple[int, str, str, str], int] = {}
    for (m, e, _), n in counts.items():
        key = (m // 60, e, "outcome", "ok")
        expected[key] = expected.get(key, 0) + n
    assert _hourly(target) == expected
