"""A volume rule judges only windows the monitor watched: no false alarm after a restart."""

from __future__ import annotations

from pathlib import Path

from monitor_env import FakeClock

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


def test_no_orders_fires_only_after_a_whole_watched_window(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    clock = FakeClock()
    monitor = build_monitor(tmp_path / "tg.db", rules, clock=clock)
    monitor.tick()
    assert monitor.states["orders-missing"].state == "ok"  # just started: nothing judged yet
    clock.now += 29 * 60
    monitor.tick()
    assert monitor.states["orders-missing"].state == "ok"
    clock.now += 2 * 60
    monitor.tick()
    assert monitor.states["orders-missing"].state == "firing"
