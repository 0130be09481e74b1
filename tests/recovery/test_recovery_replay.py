"""Replay end to end: a broken client's orders are quarantined through the real path, fixed,
replayed and delivered over loopback to the emulator, each exactly once; on a SQLite file and
on a PostgreSQL schema (the ``db`` fixture), with the same expected results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from recovery_env import query

from trackguard.cli.replay import replay_command
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.ingest import to_write
from trackguard.plan.loader import load_plan
from trackguard.recovery import load_fixes, parse_fixes, replay
from trackguard.store.base import Store, StoreError
from trackguard.store.quarantine import QuarantineFilter, list_quarantine
from trackguard.store.sql import session
from trackguard.store.sqlite import open_store

PLAN_PATH = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
PLAN = load_plan(PLAN_PATH)
SITE, KEY = "replay-site", "replay-key"
FIXES = """\
fixes:
  - rename: {from: "Order Placed", to: order_completed}
  - move: {from: data.amount, to: data.total}
    event: order_completed
  - coerce: {field: data.total, to: number}
  - map: {field: data.currency, values: {usd: USD}}
  - default: {field: data.currency, value: USD}
  - rekey: {from: email, using: identity_map}
"""


def _send(store: Store, method: str, path: str, body: Any, at: float) -> None:
    request = Request(method=method, path=path, body=json.dumps(body).encode(), source="shop")
    verdict = Checker(PLAN).check(request, now=at)
    store.commit([to_write(request, verdict, at, PLAN.dedupe)])


def _broken_client(db: str) -> None:
    at = time.time() - 3600
    store = open_store(db, synchronous="NORMAL")
    try:
        _send(store, "PUT", "/api/v1/customers/cus_9", {"email": "jane@example.com"}, at)
        for n, extra in ((1, {}), (2, {"currency": "usd"}), (3, {})):
            data: dict[str, Any] = {"order_id": f"A-{n}", "amount": "49.90", **extra}
            body = {"name": "Order Placed", "data": data}
            _send(store, "POST", "/api/v1/customers/jane@example.com/events", body, at + n)
    finally:
        store.close()


def _states(db: str) -> list[str]:
    return sorted(r.state for r in list_quarantine(db, QuarantineFilter()))


def test_replay_delivers_each_order_exactly_once(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    assert _states(db) == ["quarantined"] * 3
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    fixes = load_fixes(fix_file)

    dry = replay(db, PLAN, None, fixes, dry_run=True)
    assert [i.outcome for i in dry.items] == ["replayed"] * 3
    assert all(i.new_path == "/api/v1/customers/cus_9/events" for i in dry.items)
    assert _states(db) == ["quarantined"] * 3  # dry run changed nothing

    report = replay(db, PLAN, None, fixes)
    assert (report.replayed, report.still_invalid, report.warnings) == (3, 0, [])
    assert _states(db) == ["replayed"] * 3

    emulator = create_emulator(SITE, KEY)
    with start_in_thread(emulator) as server, httpx.Client(base_url=server.url) as control:
        store = open_store(db, synchronous="NORMAL")
        transport = HttpxTransport(server.url, SITE, KEY)
        try:
            worker = DeliveryWorker(store, transport, linger=0.0)
            worker.run_once()
            assert replay(db, PLAN, None, fixes).items == []  # nothing left to replay
            # Re-selected by hand, the dedupe claims still drop them.
            with session(db, readonly=False) as s:
                s.run("UPDATE quarantine SET state = 'quarantined'")
            again = replay(db, PLAN, None, fixes)
            assert (again.replayed, again.duplicates) == (0, 3)
            worker.run_once()
            assert store.outbox_stats().pending == 0
        finally:
            transport.close()
            store.close()
        events = control.get("/_emulator/events").json()
    orders = [e for e in events if e["name"] == "order_completed"]
    assert len(orders) == 3
    assert sorted(e["data"]["order_id"] for e in orders) == ["A-1", "A-2", "A-3"]
    assert {e["data"]["total"] for e in orders} == {49.9}
    assert {e["data"]["currency"] for e in orders} == {"USD"}


def test_unfixed_records_become_still_invalid_and_cli_dry_run(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    report = replay(db, PLAN)
    assert (report.replayed, report.still_invalid) == (0, 3)
    assert all("property_missing" in i.codes for i in report.items)
    assert _states(db) == ["still_invalid"] * 3
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    runner = CliRunner()
    args = ["--db", db, "--plan", str(PLAN_PATH), "--fix", str(fix_file), "--dry-run"]
    result = runner.invoke(replay_command, args)
    assert result.exit_code == 0, result.output
    assert '"total": 49.9' in result.output
    assert "would replay 3" in result.output
    assert _states(db) == ["still_invalid"] * 3
    old = replay(db, PLAN, None, load_fixes(fix_file), now=time.time() + 5 * 86400)
    assert old.replayed == 3 and "older than 72h" in old.warnings[0]
    assert [i.late for i in old.items] == [True] * 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("fixes:\n  - drop: data.x\n  - explode: {}\n")
    result = runner.invoke(
        replay_command, ["--db", db, "--plan", str(PLAN_PATH), "--fix", str(bad)]
    )
    assert result.exit_code == 2
    assert f"{bad}:3:5" in result.output


def test_only_events_are_late(db: str) -> None:
    """A week-old identify is replayed without the 72h warning: campaigns trigger on events."""
    at = time.time() - 3600
    store = open_store(db, synchronous="NORMAL")
    try:
        identify = {"type": "person", "identifiers": {"id": "cus_9"}, "action": "identify",
                    "timestamp": int(at), "attributes": {"country": "USA"}}  # fmt: skip
        _send(store, "POST", "/api/v2/entity", identify, at)  # country: 2 letters at most
    finally:
        store.close()
    fixes = parse_fixes("fixes:\n  - drop: attributes.country\n")
    report = replay(db, PLAN, None, fixes, now=at + 7 * 86400)
    assert [(i.outcome, i.late) for i in report.items] == [("replayed", False)]
    assert report.warnings == []


#: A trigger that refuses to mark a quarantine record ``replayed``, in each dialect.
NO_MARK = {
    "sqlite": [
        "CREATE TRIGGER no_mark BEFORE UPDATE OF state ON quarantine"
        " WHEN NEW.state = 'replayed' BEGIN SELECT RAISE(ABORT, 'mark refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION no_mark() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'mark refused'; END $$",
        "CREATE TRIGGER no_mark BEFORE UPDATE OF state ON quarantine FOR EACH ROW"
        " WHEN (NEW.state = 'replayed') EXECUTE FUNCTION no_mark()",
    ],
}


def test_replay_write_and_mark_are_one_transaction(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    fixes = load_fixes(fix_file)
    outbox_before = query(db, "SELECT COUNT(*) FROM outbox")
    # Marking a record replayed fails: the write it came with must roll back too.
    with session(db, readonly=False) as s:
        for statement in NO_MARK[s.dialect]:
            s.run(statement)
    with pytest.raises(StoreError, match="mark refused"):
        replay(db, PLAN, None, fixes)
    assert _states(db) == ["quarantined"] * 3
    assert query(db, "SELECT COUNT(*) FROM outbox") == outbox_before
    assert query(db, "SELECT COUNT(*) FROM claims") == [(0,)]
    with session(db, readonly=False) as s:
        s.run("DROP TRIGGER no_mark" + (" ON quarantine" if s.dialect == "postgresql" else ""))
    report = replay(db, PLAN, None, fixes)
    assert (report.replayed, report.duplicates) == (3, 0)
    assert _states(db) == ["replayed"] * 3


def test_rate_paces_the_replay(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    fixes = load_fixes(fix_file)
    waits: list[float] = []
    # A clock that stands still: each record waits its turn behind the ones before it.
    report = replay(db, PLAN, None, fixes, rate=2.0, sleep=waits.append, clock=lambda: 0.0)
    assert report.replayed == 3
    assert waits == [0.5, 1.0]  # the first record goes at once; the next two wait their turn


def test_cli_selects_records_by_plan_version_and_route(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    base = ["--db", db, "--plan", str(PLAN_PATH), "--fix", str(fix_file), "--dry-run"]
    orders = "POST /api/v1/customers/{identifier}/events"
    runner = CliRunner()

    def selected(*extra: str) -> str:
        result = runner.invoke(replay_command, [*base, *extra])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()[-1]

    assert PLAN.version == "2026-11-01"
    assert selected("--plan-version", "2026-11-01", "--route", orders) == (
        "3 records: would replay 3, would drop 0 as duplicates (sent "
        "before, or earlier in this replay), 0 still invalid "
        "(dry run: nothing changed)"
    )
    assert selected("--plan-version", "2026-10-01") == (
        "0 records: would replay 0, would drop 0 as duplicates (sent "
        "before, or earlier in this replay), 0 still invalid "
        "(dry run: nothing changed)"
    )
    assert selected("--route", "PUT /api/v1/customers/{identifier}") == (
        "0 records: would replay 0, would drop 0 as duplicates (sent "
        "before, or earlier in this replay), 0 still invalid "
        "(dry run: nothing changed)"
    )
    assert _states(db) == ["quarantined"] * 3


def test_dry_run_previews_retries_the_real_run_drops(db: str, tmp_path: Path) -> None:
    """30 quarantined orders, 5 of them exact retries of others: the dry run says what the real
    run then does, 25 replayed and 5 dropped, and neither counts a duplicate as replayed."""
    at = time.time() - 3600
    store = open_store(db, synchronous="NORMAL")
    try:
        for n in range(25):
            body = {"name": "Order Placed", "data": {"order_id": f"B-{n}", "amount": "10.00"}}
            for _ in range(2 if n % 5 == 0 else 1):  # B-0, B-5, ... retried by the SDK
                _send(store, "POST", f"/api/v1/customers/cus_{n}/events", body, at + n)
    finally:
        store.close()
    assert _states(db) == ["quarantined"] * 30
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    fixes = load_fixes(fix_file)

    dry = replay(db, PLAN, None, fixes, dry_run=True)
    assert (len(dry.items), dry.replayed, dry.duplicates, dry.still_invalid) == (30, 25, 5, 0)
    retries = [2, 8, 14, 20, 26]  # the second copy of B-0, B-5, B-10, B-15, B-20
    assert [i.id for i in dry.items if i.outcome == "duplicate"] == retries
    runner = CliRunner()
    args = ["--db", db, "--plan", str(PLAN_PATH), "--fix", str(fix_file)]
    result = runner.invoke(replay_command, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "30 records: would replay 25, would drop 5 as duplicates (sent before, or earlier in"
        " this replay), 0 still invalid (dry run: nothing changed)"
    )
    assert _states(db) == ["quarantined"] * 30

    real = replay(db, PLAN, None, fixes)
    assert [(i.id, i.outcome) for i in real.items] == [(i.id, i.outcome) for i in dry.items]
    assert (real.replayed, real.duplicates, real.still_invalid) == (25, 5, 0)
    assert _states(db) == ["replayed"] * 30
    sent = query(
        db,
        "SELECT count(*), count(DISTINCT dedupe_key) FROM outbox"
        " WHERE event_name = 'order_completed'",
    )
    assert sent == [(25, 25)]


def test_cli_reports_replayed_and_dropped_apart(db: str, tmp_path: Path) -> None:
    _broken_client(db)
    _broken_client(db)  # the same three orders quarantined again
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    args = ["--db", db, "--plan", str(PLAN_PATH), "--fix", str(fix_file)]
    result = CliRunner().invoke(replay_command, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "6 records: replayed 3, dropped 3 as duplicates (sent before, or earlier in this"
        " replay), 0 still invalid"
    )


def test_dry_run_previews_a_key_another_person_claims_earlier_in_the_run(
    db: str, tmp_path: Path
) -> None:
    """Three quarantined orders with one order id: cus_1's, cus_2's and cus_1's retry. Nothing
    holds the key before the replay; the first record claims it, so the second is a
    dedupe_key_conflict (still invalid, not queued) and the third a duplicate, in the dry run
    exactly as in the real run."""
    at = time.time() - 3600
    store = open_store(db, synchronous="NORMAL")
    try:
        body = {"name": "Order Placed", "data": {"order_id": "C-1", "amount": "10.00"}}
        for n, person in enumerate(("cus_1", "cus_2", "cus_1")):
            _send(store, "POST", f"/api/v1/customers/{person}/events", body, at + n)
    finally:
        store.close()
    fix_file = tmp_path / "fixes.yaml"
    fix_file.write_text(FIXES)
    fixes = load_fixes(fix_file)
    message = (
        "dedupe key 'order_completed:C-1' is claimed by id:cus_1; this event of id:cus_2 is"
        " kept, not delivered"
    )

    dry = replay(db, PLAN, None, fixes, dry_run=True)
    outcomes = [(i.id, i.outcome, i.codes) for i in dry.items]
    assert outcomes == [
        (1, "replayed", ()),
        (2, "still_invalid", ("dedupe_key_conflict",)),
        (3, "duplicate", ()),
    ]
    assert dry.items[1].reason == message
    assert (dry.replayed, dry.duplicates, dry.still_invalid) == (1, 1, 1)
    assert _states(db) == ["quarantined"] * 3

    real = replay(db, PLAN, None, fixes)
    assert [(i.id, i.outcome, i.codes) for i in real.items] == outcomes
    assert sorted(_states(db)) == ["replayed", "replayed", "still_invalid"]
    assert query(
        db, "SELECT person, dedupe_key FROM outbox WHERE event_name = 'order_completed'"
    ) == [("id:cus_1", "order_completed:C-1")]
    assert query(db, "SELECT key, person FROM claims") == [("order_completed:C-1", "id:cus_1")]
