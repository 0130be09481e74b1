"""One alert evaluator at a time on a PostgreSQL schema: a session advisory lock that a second
contender cannot take while the holder lives, and takes at its next try once the holder closed,
lost its session, or was killed with ``kill -9``."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest

from trackguard.monitor import AlertConfig, Monitor, MonitorDB
from trackguard.monitor.leader import Leadership, leadership_for
from trackguard.store.postgres import PostgresStore

HANG_GUARD = 30.0


@pytest.fixture
def stores(pg_stores: Callable[[int], list[PostgresStore]]) -> list[PostgresStore]:
    return pg_stores(2)


def _contenders(stores: list[PostgresStore]) -> list[Leadership]:
    found = [leadership_for(store) for store in stores]
    assert all(isinstance(f, Leadership) for f in found)
    return [f for f in found if f is not None]


def _eventually_held(lead: Leadership) -> None:
    """Ask until ``lead`` holds the lock (a closed session's lock goes a moment later)."""
    deadline = time.monotonic() + HANG_GUARD
    while not lead.held():
        assert time.monotonic() < deadline, "the lock was never released"
        time.sleep(0.01)


def test_one_holder_at_a_time_and_the_other_takes_over_when_it_closes(
    stores: list[PostgresStore],
) -> None:
    a, b = _contenders(stores)
    assert a.held() is True
    assert b.held() is False
    assert a.held() is True  # still alive, still held
    a.close()
    _eventually_held(b)
    assert a.held() is False
    a.close()
    b.close()


def test_a_holder_whose_session_ends_loses_it_and_says_so(
    stores: list[PostgresStore], pg_schema: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _contenders(stores)
    assert a.held() is True
    caplog.set_level(logging.WARNING, logger="trackguard.monitor")
    url, _ = pg_schema
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s AND objid = 4 AND objsubid = 2 AND granted",
            (stores[0].lock_key & 0xFFFFFFFF,),
        )
    _eventually_held(b)  # the lock went with the session
    assert a.held() is False
    assert any(r.getMessage().startswith("lost alert evaluation") for r in caplog.records)
    a.close()
    b.close()


HOLDER = """
import sys, time
from trackguard.monitor.leader import leadership_for
from trackguard.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], schema=sys.argv[2])
lead = leadership_for(store)
assert lead is not None and lead.held()
print("held", flush=True)
time.sleep(600)
"""


def test_a_holder_killed_with_kill_9_is_taken_over(
    stores: list[PostgresStore], pg_schema: tuple[str, str]
) -> None:
    url, schema = pg_schema
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, schema], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        (b,) = _contenders(stores[:1])
        assert b.held() is False
        holder.kill()
        holder.wait()
        _eventually_held(b)  # PostgreSQL ends the dead session as its socket closes
        b.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_only_the_holders_monitor_evaluates(stores: list[PostgresStore]) -> None:
    clock = [1000.0]
    monitors = [
        Monitor(MonitorDB(":memory:"), AlertConfig(), clock=lambda: clock[0], leader=lead)
        for lead in _contenders(stores)
    ]
    try:
        assert [m.round() for m in monitors] == [True, False]
        clock[0] += 3600.0
        assert [m.round() for m in monitors] == [True, False]
        monitors[0].stop()  # releases the lock (PostgreSQL ends the session right after)
        deadline = time.monotonic() + HANG_GUARD
        while True:
            clock[0] += 3600.0  # the next evaluation is due
            if monitors[1].round():
                break
            assert time.monotonic() < deadline, "the other monitor never took over"
            time.sleep(0.01)
    finally:
        for m in monitors:
            if m.leader is not None:
                m.leader.close()
        monitors[1].stop()
