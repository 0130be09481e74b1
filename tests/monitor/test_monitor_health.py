"""The data-health figures: exact counts on both stores, and no query that grows with the
square of the outbox (the outbox has no index on ``person``)."""

from __future__ import annotations

import sqlite3
import time

from monitor_env import NewDB, commit_requests

from trackguard.monitor import health
from trackguard.monitor.db import MonitorDB
from trackguard.monitor.health import MULTIPLE_IDENTIFIERS, OutboxHealth
from trackguard.monitor.monitor import Monitor
from trackguard.monitor.rules import AlertConfig


def test_people_with_several_identifiers_are_counted_once_each(new_db: NewDB) -> None:
    db = new_db()
    commit_requests(
        db,
        [
            # ana: by id with her email, and by that email (another case) elsewhere: counted.
            ("/api/v1/customers/1", b'{"email": "Ana@Example.com"}'),
            ("/api/v1/customers/ANA@example.com/events", b'{"name": "cart_updated"}'),
            ("/api/v1/customers/1", b'{"email": "ana@example.com", "plan": "gold"}'),
            # bo: two ids carry his email, and the email addresses him too: two people.
            ("/api/v1/customers/2", b'{"email": "bo@example.com"}'),
            ("/api/v1/customers/3", b'{"email": "bo@example.com"}'),
            ("/api/v1/customers/bo@example.com/events", b'{"name": "cart_updated"}'),
            # cy: only by id; dee: only by email. Neither is counted.
            ("/api/v1/customers/4", b'{"email": "cy@example.com"}'),
            ("/api/v1/customers/dee@example.com/events", b'{"name": "cart_updated"}'),
        ],
    )
    monitor_db = MonitorDB(db)
    try:
        assert OutboxHealth(monitor_db, clock=time.time).measure()[MULTIPLE_IDENTIFIERS] == 3
    finally:
        monitor_db.close()


def test_no_health_query_scans_the_outbox_once_per_row(tmp_path: object) -> None:
    db = f"{tmp_path}/tg.db"
    commit_requests(db, [("/api/v1/customers/1", b'{"email": "ana@example.com"}')])
    multiple = health._MULTIPLE.format(
        email=health._field("sqlite", "v2", "attributes", "email"),
        payload=health._PAYLOAD["sqlite"],
    )
    with sqlite3.connect(db) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {multiple}")]
    assert not [step for step in plan if "CORRELATED" in step], plan
    assert plan.count("SCAN outbox") == 2, plan


def test_how_long_the_last_measurement_took_is_a_gauge(tmp_path: object) -> None:
    db = f"{tmp_path}/tg.db"
    commit_requests(db, [("/api/v1/customers/1", b'{"email": "ana@example.com"}')])
    readings = iter([100.0, 102.5])  # the timer around the measurement

    class Measured:
        def measure(self) -> dict[str, int | None]:
            return {MULTIPLE_IDENTIFIERS: 3}

    def gauges() -> dict[str, float]:
        return {
            f.name: f.samples[0].value
            for f in monitor.collector().collect()
            if f.name == "trackguard_data_health_seconds"
        }

    monitor_db = MonitorDB(db)
    try:
        monitor = Monitor(
            monitor_db,
            AlertConfig(),
            clock=lambda: 1_764_000_000.0,
            health=Measured(),
            timer=lambda: next(readings),
        )
        assert (monitor.health_seconds, gauges()) == (None, {})  # nothing measured yet
        monitor.tick()
        assert monitor.health_seconds == 2.5
        assert gauges() == {"trackguard_data_health_seconds": 2.5}
    finally:
        monitor_db.close()
