"""``trackguard stats``, ``health`` and ``alerts test|status`` over a real store: a SQLite file
and a PostgreSQL schema give the same output."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from monitor_env import T0, FakeClock, NewDB, Receiver, commit_requests, start_receiver
from store_schema_env import schema_file

from trackguard.cli import main as cli
from trackguard.cli.monitor import alerts_group, health_command, stats_command
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.monitor import build_monitor

RULES = """
channels:
  hook: {type: webhook, url: "${HOOK_URL}", backoff: 0.01, max_attempts: 2}
  pd: {type: pagerduty, routing_key: "${PD_KEY}", url: "${PD_URL}"}
rules:
  - {name: blank-names, kind: count, codes: [event_name_blank], window: 15m, threshold: 2,
     severity: critical, channels: [hook]}
  - {name: quiet, kind: rate, events: [x], window: 15m, threshold: 1%}
"""


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = start_receiver()
    monkeypatch.setenv("HOOK_URL", r.url)
    monkeypatch.setenv("PD_KEY", "rk")
    monkeypatch.setenv("PD_URL", r.url)
    yield r
    r.close()


def _observe(db: str, rules: Path | None, clock: FakeClock) -> None:
    checker, monitor = Checker(None), build_monitor(db, rules, clock=clock, interval=3600)
    monitor.start()
    for path, body in [
        ("/api/v1/customers/1/events", b'{"name": "cart_updated"}'),
        ("/api/v1/customers/2/events", b'{"name": "cart_updated"}'),
        ("/api/v1/customers/3/events", b'{"data": {}}'),
        ("/api/v1/customers/4/events", b'{"name": " "}'),
    ]:
        verdict = checker.check(Request(method="POST", path=path, body=body))
        monitor.observe_request(verdict, verdict.route or "other", 200, "app", clock())
    monitor.tick()
    assert monitor.wait_notified()
    monitor.stop()


def test_stats_by_event_and_code(new_db: NewDB) -> None:
    db = new_db()
    clock = FakeClock(T0 - 120)
    _observe(db, None, clock)
    runner = CliRunner()
    by_event = runner.invoke(stats_command, ["--db", db, "--since", "36500d"])
    assert by_event.exit_code == 0, by_event.output
    lines = by_event.output.splitlines()
    assert lines[0].split() == [
        "event",
        "accepted",
        "fixed",
        "warned",
        "rejected",
        "invalid",
        "refused",
        "invalid%",
    ]
    assert lines[1].split() == ["(unknown)", "0", "0", "0", "0", "2", "0", "100.00"]
    assert lines[2].split() == ["cart_updated", "2", "0", "0", "0", "0", "0", "0.00"]
    by_code = runner.invoke(stats_command, ["--db", db, "--since", "36500d", "--by", "code"])
    assert by_code.output.splitlines()[1].split() == ["event_name_blank", "2"]
    recent = runner.invoke(stats_command, ["--db", db, "--since", "1m"])
    assert len(recent.output.splitlines()) == 1  # nothing in the last minute: header only


def test_health_counts_from_the_identity_state(new_db: NewDB) -> None:
    db = new_db()
    commit_requests(
        db,
        [
            ("/api/v1/customers/42", b'{"email": "ana@example.com"}'),
            ("/api/v1/customers/ana@example.com/events", b'{"name": "cart_updated"}'),
            ("/api/v1/customers/43", b'{"email": "bo@example.com"}'),
            ("/api/v1/events", b'{"name": "cart_updated", "anonymous_id": "a1"}'),
            ("/api/v1/events", b'{"name": "cart_updated", "anonymous_id": "a2"}'),
            ("/api/v1/events", b'{"name": "product_viewed", "anonymous_id": "a3"}'),
            ("/api/v1/customers/44", b'{"anonymous_id": "a2"}'),
        ],
    )
    result = CliRunner().invoke(health_command, ["--db", db])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()] == [
        ["metric", "value"],
        ["people_multiple_identifiers", "1"],
        ["anonymous_carts_unlinked", "1"],
        ["emails_without_recent_order", "2"],  # ana and bo: bound emails, no order
    ]


def test_alerts_test_sends_to_every_channel(tmp_path: Path, receiver: Receiver) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    result = CliRunner().invoke(alerts_group, ["test", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.output.splitlines()] == [
        ["hook", "webhook", "ok"],
        ["pd", "pagerduty", "ok"],
    ]
    hook, trigger, resolve = receiver.take()
    assert (
        hook["event"] == "test"
        and hook["summary"] == "test notification from trackguard to channel hook"
    )
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == "trackguard/test"
    assert resolve == {
        "routing_key": "rk",
        "event_action": "resolve",
        "dedup_key": "trackguard/test",
    }


def test_alerts_test_reports_a_failing_channel(tmp_path: Path, receiver: Receiver) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    receiver.statuses[:] = [503, 503]
    result = CliRunner().invoke(alerts_group, ["test", "--rules", str(rules)])
    assert result.exit_code == 1
    assert result.output.splitlines()[0].split() == ["hook", "webhook", "FAILED", "(HTTP", "503)"]


def test_alerts_status_shows_rules_and_channels(
    tmp_path: Path, receiver: Receiver, new_db: NewDB
) -> None:
    db, rules = new_db(), tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    _observe(db, rules, FakeClock(T0))
    (fired,) = receiver.take()
    assert (fired["rule"], fired["event"], fired["summary"]) == (
        "blank-names",
        "firing",
        "2 over 15m (threshold 2)",
    )
    result = CliRunner().invoke(alerts_group, ["status", "--rules", str(rules), "--db", db])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:4] == ["blank-names", "critical", "firing", "2026-11-04T12:00:00Z"]
    assert lines[2].split()[:3] == ["quiet", "warning", "ok"]
    assert lines[5].split() == ["hook", "yes", "1", "0", "0", "-"]
    assert lines[6].split() == ["pd", "yes", "0", "0", "0", "-"]


def test_invalid_rule_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules:\n  - {name: r, kind: rate, window: soon, threshold: 1%}\n")
    result = CliRunner().invoke(alerts_group, ["test", "--rules", str(rules)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"Error: {rules}:2:35: rules[0] (r).window: 'soon' is not a duration"
    )


def test_health_on_a_store_without_identity_tables_says_so(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with schema_file(db, 2):  # identity tables came with schema 3
        pass
    result = CliRunner().invoke(health_command, ["--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [r[:2] for r in rows] == [
        ["people_multiple_identifiers", "0"],
        ["anonymous_carts_unlinked", "0"],
        ["emails_without_recent_order", "n/a"],
    ]
    assert result.stderr == (
        f"n/a: {db} has no identity tables (a store from before them: trackguard serve adds"
        " them when it opens the store)\n"
    )


@pytest.mark.parametrize("command", [stats_command, health_command])
def test_an_unreachable_postgresql_is_one_error_line(command: click.Command) -> None:
    url = "postgresql://tg:s3cret@127.0.0.1:1/test?connect_timeout=1"
    result = CliRunner().invoke(command, ["--db", url])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "Error: postgresql://tg@127.0.0.1:1/test?connect_timeout=1: cannot connect to PostgreSQL: "
    )
    assert line.endswith("Connection refused")
    assert result.stdout == ""


@pytest.mark.parametrize("argv", [["stats"], ["health"], ["alerts", "status", "--rules", "R"]])
def test_the_monitor_commands_never_create_a_postgresql_store(
    new_pg_db: NewDB, tmp_path: Path, argv: list[str]
) -> None:
    target, rules = new_pg_db(), tmp_path / "alerts.yaml"
    rules.write_text("rules: []\n")
    argv = [str(rules) if a == "R" else a for a in argv]
    result = CliRunner().invoke(cli, [*argv, "--db", target])
    assert result.exit_code == 2
    assert result.stderr == f"Error: no store at {target} (trackguard serve creates one)\n"


@pytest.mark.parametrize("command", [["stats"], ["health"]])
def test_a_store_url_of_another_kind_is_one_error_line(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--db", "mysql://tg@db/tg"])
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: 'mysql://tg@db/tg': unsupported store URL (use a path, sqlite:///path or"
        " postgresql://user@host/db[?schema=NAME])\n",
    )


@pytest.mark.parametrize("argv", [["stats"], ["health"], ["alerts", "status", "--rules", "R"]])
def test_a_sqlite_file_that_is_no_store_is_one_error_line(tmp_path: Path, argv: list[str]) -> None:
    other, rules = tmp_path / "other.db", tmp_path / "alerts.yaml"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    rules.write_text("rules: []\n")
    argv = [str(rules) if a == "R" else a for a in argv]
    result = CliRunner().invoke(cli, [*argv, "--db", str(other)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: {other}: not a trackguard store (no schema)\n"
    with sqlite3.connect(other) as conn:  # read only: nothing was added to the file
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert names == ["notes"]
