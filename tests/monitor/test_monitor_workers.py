"""``serve --workers`` and several gateways on one PostgreSQL database: every process's monitor
flushes its counts into the shared store, where they add up, and only the one with the
store-wide duties measures health and evaluates rules."""

from __future__ import annotations

from pathlib import Path

from monitor_env import T0, FakeClock, NewDB

from trackguard.monitor import build_monitor
from trackguard.monitor.db import CountRow

RULES = """
rules:
  - name: any-order
    kind: count
    events: [order_completed]
    outcomes: [accepted]
    window: 5m
"""


def test_counts_of_two_workers_add_up_and_only_one_evaluates(tmp_path: Path, new_db: NewDB) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    clock = FakeClock()
    db = new_db()
    singleton = build_monitor(db, rules, clock=clock)
    counting = build_monitor(db, None, clock=clock, counts_only=True)
    key = (int(T0 // 60), "order_completed", "track", "sdk", "outcome", "accepted")
    try:
        singleton.tally.add([key, key])
        counting.tally.add([key, key, key])
        assert counting.tick() == []
        singleton.tick()
        assert singleton.db.counts(T0 - 60, T0 + 60) == [
            CountRow("order_completed", "track", "sdk", "outcome", "accepted", 5)
        ]
        assert singleton.states["any-order"].state == "firing"
        assert singleton.health_values != {}
        assert counting.health_values == {}
        measured = [v for v in singleton.health_values.values() if v is not None]
        assert counting.db.query("SELECT count(*) FROM monitor_health") == [(len(measured),)]
    finally:
        singleton.stop()
        counting.stop()


def test_a_counting_monitor_waits_the_flush_interval_and_never_evaluates(tmp_path: Path) -> None:
    clock = FakeClock()
    counting = build_monitor(tmp_path / "tg.db", None, clock=clock, interval=5.0, counts_only=True)
    try:
        for _ in range(3):
            assert counting.next_wait() == 5.0
            clock.now += counting.next_wait()
            assert counting.round() is False
    finally:
        counting.stop()
