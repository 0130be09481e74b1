"""``settings.evaluate_every`` sets when rules are evaluated, whatever the flush interval."""

from __future__ import annotations

from pathlib import Path

import pytest
from monitor_env import T0, FakeClock

from trackguard.errors import StoreError
from trackguard.monitor import build_monitor

RULES = """
settings:
  evaluate_every: {every}
rules:
  - name: invalid-carts
    kind: count
    events: [cart_updated]
    outcomes: [invalid]
    window: 5m
"""


def evaluations(tmp_path: Path, every: str, seconds: float) -> list[float]:
    """Drive the monitor thread's rounds on a fake clock; the times it evaluated the rules."""
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(every=every))
    clock = FakeClock()
    monitor = build_monitor(tmp_path / "tg.db", rules, clock=clock, interval=5.0)
    seen: list[float] = []
    try:
        while clock.now + monitor.next_wait() - T0 <= seconds:
            clock.now += monitor.next_wait()
            if monitor.round():
                seen.append(clock.now - T0)
    finally:
        monitor.stop()
    return seen


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        ("12s", [0, 12, 24, 36]),  # between the 5 s flushes, not on them
        ("2s", [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]),
        ("30s", [0, 30]),
    ],
)
def test_rules_are_evaluated_every_evaluate_every(
    tmp_path: Path, every: str, expected: list[float]
) -> None:
    assert evaluations(tmp_path, every, 40) == expected


def test_counters_are_still_flushed_every_interval(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(every="1m"))
    clock = FakeClock()
    monitor = build_monitor(tmp_path / "tg.db", rules, clock=clock, interval=5.0)
    try:
        monitor.round()
        assert monitor.next_wait() == 5.0
        clock.now += 58
        assert monitor.next_wait() == 2.0
        clock.now += 2
        assert monitor.next_wait() == 0.0
        assert monitor.round() is True
    finally:
        monitor.stop()


def test_a_failed_round_waits_a_whole_interval_before_the_next(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(every="2s"))
    clock = FakeClock()
    monitor = build_monitor(tmp_path / "tg.db", rules, clock=clock, interval=5.0)
    add_counts = monitor.db.add_counts

    def failing(counts: object) -> None:
        raise StoreError("tg.db: no such table: monitor_counts")

    try:
        monitor.db.add_counts = failing  # type: ignore[method-assign]
        monitor.observe_request(None, "other", 401, None, clock())  # a count to flush
        assert monitor.round() is True  # due, and failed before evaluating
        assert monitor.errors == 1
        # The evaluation is still due (it would say 0.0): the store is not retried at once.
        assert monitor.next_wait() == 5.0
        clock.now += 5.0
        monitor.round()
        assert (monitor.errors, monitor.next_wait()) == (2, 5.0)
        monitor.db.add_counts = add_counts  # type: ignore[method-assign]
        clock.now += 5.0
        assert monitor.round() is True
        assert (monitor.errors, monitor.next_wait()) == (2, 2.0)  # back on evaluate_every
    finally:
        monitor.stop()
