"""The ``delivery_circuit`` rule: fires while delivery's circuit breaker is open, resolves when
it closes. The state is what the worker saved in the store, so the rule works whether delivery
runs in the gateway or as ``trackguard deliver``; ``trackguard outbox stats`` shows it too."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from click.testing import CliRunner
from monitor_env import NewDB

from trackguard.cli.outbox import outbox_group
from trackguard.delivery.circuit import STATE_KEY, CircuitState
from trackguard.monitor import build_monitor
from trackguard.monitor.loader import RuleError, parse_alerts
from trackguard.store.sqlite import SQLiteStore, open_store

T0 = 1_800_000_000.0
ALERTS = {
    "channels": {"log": {"type": "log"}},
    "rules": [
        {"name": "paused", "kind": "delivery_circuit", "severity": "critical", "channels": ["log"]}
    ],
}
OPEN = CircuitState(
    state="open", opened_at=T0, probe_at=T0 + 160, probes=3, trips=1, reason="Bad Request"
)


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


def _save(db: str | Path, state: CircuitState) -> None:
    store = open_store(db)
    try:
        store.set_meta(STATE_KEY, msgspec.json.encode(state).decode())
    finally:
        store.close()


def test_the_rule_fires_while_the_circuit_is_open_and_resolves_when_it_closes(
    new_db: NewDB,
) -> None:
    db = new_db()
    open_store(db).close()
    clock = Clock()
    monitor = build_monitor(db, None, clock=clock, config=parse_alerts(ALERTS, {}))
    try:
        assert monitor.tick() == []
        assert monitor.measurements["paused"].summary == "delivery circuit closed: delivery runs"
        _save(db, OPEN)
        clock.now = T0 + 120
        (fired,) = monitor.tick()
        assert (fired.rule, fired.event, fired.severity, fired.value) == (
            "paused",
            "firing",
            "critical",
            120.0,
        )
        assert fired.summary == (
            "delivery paused for 2m: Customer.io refuses nearly every item (Bad Request);"
            " pending rows are kept, 3 probes refused, next probe in 40s"
        )
        assert fired.numbers == (("probes refused", "3"), ("trips", "1"))
        _save(db, CircuitState(trips=1))
        clock.now = T0 + 200
        (resolved,) = monitor.tick()
        assert (resolved.rule, resolved.event) == ("paused", "resolved")
    finally:
        monitor.stop()


def test_the_rule_takes_only_the_common_fields() -> None:
    raw = {**ALERTS, "rules": [{**ALERTS["rules"][0], "threshold": 1}]}  # type: ignore[dict-item]
    try:
        parse_alerts(raw, {})
    except RuleError as exc:
        assert "threshold" in str(exc)
    else:
        raise AssertionError("a delivery_circuit rule with a threshold was accepted")


def test_outbox_stats_shows_an_open_circuit(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    SQLiteStore(db).close()
    runner = CliRunner()
    closed = runner.invoke(outbox_group, ["stats", "--db", str(db)])
    assert closed.exit_code == 0 and "circuit" not in closed.output
    closed_json = runner.invoke(outbox_group, ["stats", "--db", str(db), "--format", "json"])
    assert json.loads(closed_json.stdout)["circuit"] == "closed"
    _save(db, OPEN)
    shown = runner.invoke(outbox_group, ["stats", "--db", str(db)])
    assert shown.exit_code == 0
    assert shown.output.splitlines()[1] == (
        "delivery circuit OPEN since 2027-01-15T08:00:00.000Z: Customer.io refuses nearly"
        " everything (Bad Request); 3 probes refused, next at 2027-01-15T08:02:40.000Z;"
        " pending rows are kept"
    )
    as_json = json.loads(
        runner.invoke(outbox_group, ["stats", "--db", str(db), "--format", "json"]).stdout
    )
    assert {k: v for k, v in as_json.items() if k.startswith("circuit")} == {
        "circuit": "open",
        "circuit_opened_at": "2027-01-15T08:00:00.000Z",
        "circuit_next_probe_at": "2027-01-15T08:02:40.000Z",
        "circuit_probes_refused": 3,
        "circuit_reason": "Bad Request",
    }
