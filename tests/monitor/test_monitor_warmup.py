"""A volume rule judges only windows the monitor watched: no false alarm after a restart."""

from __future__ import annotations

from pathlib import Path

from monitor_env import FakeClock, NewDB

from trackguard.monitor import build_monitor

RULES = """
rules:
  - name: orders-missing
    kind: volume
    events: [order_completed]
    window: 30m
    below: 1
    severity: critical
"""


def test_no_orders_fires_only_after_a_whole_watched_window(tmp_path: Path, new_db: NewDB) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    clock = FakeClock()
    monitor = build_monitor(new_db(), rules, clock=clock)
    try:
        monitor.tick()
        assert monitor.states["orders-missing"].state == "ok"  # just started: nothing judged
        clock.now += 29 * 60
        monitor.tick()
        assert monitor.states["orders-missing"].state == "ok"
        clock.now += 2 * 60
        monitor.tick()
        assert monitor.states["orders-missing"].state == "firing"
    finally:
        monitor.stop()


def test_duplicates_are_counted_under_their_event(new_db: NewDB) -> None:
    from trackguard.contract.operations import Request
    from trackguard.core.pipeline import Checker

    clock = FakeClock()
    monitor = build_monitor(new_db(), None, clock=clock)
    body = b'{"name": "order_completed", "data": {"order_id": "A"}}'
    verdict = Checker().check(Request(method="POST", path="/api/v1/customers/1/events", body=body))
    monitor.observe_duplicates(
        verdict, "POST /api/v1/customers/{identifier}/events", "web", 2, clock()
    )
    monitor.tick()
    rows = monitor.db.counts(clock() - 60, clock() + 60)
    monitor.stop()
    assert [(r.event, r.kind, r.name, r.n) for r in rows] == [
        ("order_completed", "code", "duplicate", 2)
    ]
