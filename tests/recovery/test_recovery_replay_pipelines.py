"""Replay of Pipelines API calls end to end: a shop's calls quarantined by the real gateway over
loopback (money as a string, a missing property, a timestamp that is not ISO-8601, a call the
upstream refused), fixed and replayed, and received by the emulator once each via
``/v1/batch`` with their own messageIds; on a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from recovery_env import ORDERS_MAP, WRITE_KEY, query

from outbox_wait import drain
from trackguard.cli import main
from trackguard.durations import iso_time
from trackguard.emulator.app import Emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.plan.loader import load_plan
from trackguard.recovery import parse_fixes, replay
from trackguard.store.sql import session

AT = "2024-06-01T12:00:00.000Z"
PLAN_TEXT = """\
version: 1
name: shop
plan_version: "p1"
dedupe: {window: 7d}
events:
  order_completed:
    dedupe_key: data.order_id
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true, action: reject}
      currency: {type: string, required: true}
  product_viewed:
    properties:
      product_id: {type: string, required: true}
"""
FIXES = """\
fixes:
  - coerce: {field: properties.total, to: number}
  - default: {field: data.currency, value: USD}
    event: order_completed
  - drop: timestamp
    event: product_viewed
"""


def order(mid: str, order_id: str, **props: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "cust-1", "event": "order_completed", "messageId": mid,
            "timestamp": AT, "properties": {"order_id": order_id, **props}}  # fmt: skip


VIEW_BAD_TIME = {"type": "track", "userId": "cust-1", "event": "product_viewed",
                 "messageId": "m-3", "timestamp": "yesterday",
                 "properties": {"product_id": "P-1"}}  # fmt: skip
BATCH = [
    order("m-1", "A-1", total="49.90", currency="USD"),  # money as a string: rejected
    order("m-2", "A-2", total=20),  # no currency: rejected
    VIEW_BAD_TIME,  # dropped by the contract
    order("m-4", "A-4", total=5, currency="EUR"),  # good
]


@pytest.fixture
def gateway(
    db: str, tmp_path: Path, upstream: tuple[Emulator, RunningServer]
) -> Iterator[tuple[Emulator, str]]:
    emulator, server = upstream
    emulator.reset()
    emulator.faults.set(FaultConfig())
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_TEXT)
    opts = GatewayOptions(plan=plan, db=db, upstream=server.url, pipelines_upstream=server.url)
    auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=WRITE_KEY)
    with start_in_thread(create_gateway(opts, auth)) as gw:
        yield emulator, gw.url


def _post(url: str, batch: list[dict[str, Any]]) -> None:
    response = httpx.post(url + "/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert (response.status_code, response.content) == (200, b"{}")


def _write(db: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with session(db, readonly=False) as s:
        s.run(sql, params)


def _delivered(emulator: Emulator) -> list[dict[str, Any]]:
    return [c["call"] for c in emulator.pipelines.calls_view()]


def _states(db: str) -> list[tuple[str, str, str]]:
    return [
        (kind, state, codes)
        for kind, state, codes in query(db, "SELECT kind, state, codes FROM quarantine ORDER BY id")
    ]


def test_fixed_calls_reach_the_emulator_once_each_with_their_message_ids(
    db: str, gateway: tuple[Emulator, str], tmp_path: Path
) -> None:
    emulator, url = gateway
    _post(url, BATCH)
    drain(db)
    assert [c["messageId"] for c in _delivered(emulator)] == ["m-4"]
    assert _states(db) == [
        ("contract", "quarantined", '["timestamp_invalid"]'),
        ("plan", "quarantined", '["property_type"]'),
        ("plan", "quarantined", '["property_missing"]'),
    ]
    received = {mid: at for mid, at in query(db, "SELECT body, received_at FROM quarantine")}
    plan = load_plan(tmp_path / "plan.yaml")
    fixes = parse_fixes(FIXES)

    dry = replay(db, plan, None, fixes, dry_run=True)
    assert [(i.outcome, i.new_path) for i in dry.items] == [("replayed", "/v1/track")] * 3
    assert [s for _, s, _ in _states(db)] == ["quarantined"] * 3  # a dry run changes nothing

    report = replay(db, plan, None, fixes)
    assert (report.replayed, report.duplicates, report.still_invalid) == (3, 0, 0)
    assert report.unreadable == []
    ids = [i.id for i in report.items]
    assert report.warnings == [  # m-3 was re-timed to when it was received: not late
        f"2 replayed event(s) are older than 72h (records {ids[1]}, {ids[2]}): Customer.io"
        " records them but does not trigger campaigns on them; use --now to re-time them"
    ]
    assert [i.applied for i in report.items] == [
        ('drop {"field":"timestamp"} (event product_viewed)',),
        ('coerce {"field":"properties.total","to":"number"}',),
        ('default {"field":"data.currency","value":"USD"} (event order_completed)',),
    ]
    assert [s for _, s, _ in _states(db)] == ["replayed"] * 3
    drain(db)
    calls = {c["messageId"]: c for c in _delivered(emulator)}
    assert sorted(calls) == ["m-1", "m-2", "m-3", "m-4"]
    assert calls["m-1"]["properties"] == {"order_id": "A-1", "total": 49.9, "currency": "USD"}
    assert calls["m-2"]["properties"] == {"order_id": "A-2", "total": 20, "currency": "USD"}
    (view_at,) = [at for body, at in received.items() if b'"m-3"' in body]
    assert calls["m-3"]["timestamp"] == iso_time(view_at)  # when the gateway received it
    assert calls["m-1"]["timestamp"] == AT

    # Selected again by hand, every call is a duplicate: nothing new reaches the emulator.
    _write(db, "UPDATE quarantine SET state = 'quarantined'")
    again = replay(db, plan, None, fixes)
    assert (again.replayed, again.duplicates) == (0, 3)
    drain(db)
    assert len(_delivered(emulator)) == 4
    assert emulator.pipelines.duplicates == 0
    paths = {r["path"] for r in emulator.log.snapshot()}
    assert paths == {"/v1/batch"}


def test_unfixed_calls_stay_invalid_with_the_reason(
    db: str, gateway: tuple[Emulator, str], tmp_path: Path
) -> None:
    emulator, url = gateway
    _post(url, BATCH[:3])
    drain(db)
    report = replay(db, load_plan(tmp_path / "plan.yaml"))
    assert [(i.outcome, i.codes, i.reason) for i in report.items] == [
        ("still_invalid", ("timestamp_invalid",), "must be an ISO-8601 date-time string"),
        ("still_invalid", ("property_type",), "'total' should be number, got string '49.90'"),
        ("still_invalid", ("property_missing",), "required property 'currency' is missing"),
    ]
    assert [s for _, s, _ in _states(db)] == ["still_invalid"] * 3
    assert _delivered(emulator) == []


def test_a_call_the_upstream_refused_is_replayed_once(
    db: str, gateway: tuple[Emulator, str], tmp_path: Path
) -> None:
    emulator, url = gateway
    emulator.faults.set(FaultConfig(status=400, rate=1.0, routes=("/v1/batch",)))
    _post(url, [BATCH[3]])
    drain(db)
    assert _states(db) == [("upstream", "quarantined", '["upstream_rejected"]')]
    emulator.faults.set(FaultConfig())
    plan = load_plan(tmp_path / "plan.yaml")
    dry = replay(db, plan, dry_run=True)
    assert [(i.kind, i.outcome) for i in dry.items] == [("upstream", "replayed")]
    assert query(db, "SELECT count(*) FROM claims") == [(1,)]  # the dry run kept the claim
    report = replay(db, plan)
    assert [(i.kind, i.outcome, i.new_path) for i in report.items] == [
        ("upstream", "replayed", "/v1/track")
    ]
    drain(db)
    assert _delivered(emulator) == [BATCH[3]]
    _write(db, "UPDATE quarantine SET state = 'quarantined'")
    assert replay(db, plan).duplicates == 1  # the replayed row holds the key now
    drain(db)
    assert len(_delivered(emulator)) == 1


def test_a_record_holding_no_call_is_left_alone_and_counted(
    db: str, gateway: tuple[Emulator, str], tmp_path: Path
) -> None:
    _, url = gateway
    _post(url, [BATCH[2]])
    drain(db)
    _write(db, "UPDATE quarantine SET body = ?", (b"not json",))
    report = replay(db, load_plan(tmp_path / "plan.yaml"))
    ((record_id,),) = query(db, "SELECT id FROM quarantine")
    assert (report.items, report.unreadable) == ([], [record_id])
    assert report.warnings == [
        f"1 Pipelines API record(s) left as they are (records {record_id}): they hold no call"
        " to resend"
    ]
    assert json.loads(json.dumps(_states(db))) == [
        ["contract", "quarantined", '["timestamp_invalid"]']
    ]


ORDERS_CSV = """\
customer_id,ordered_at,order_id,total,currency
cust-1,2026-01-02T03:04:05Z,B-1,12.50,USD
cust-2,2026-01-03T03:04:05Z,B-2,7,EUR
cust-3,2026-01-04T03:04:05Z,B-3,9.99,USD
"""


def test_backfill_sends_pipelines_track_calls_and_a_rerun_sends_nothing_new(
    db: str, gateway: tuple[Emulator, str], tmp_path: Path
) -> None:
    emulator, _ = gateway
    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    (tmp_path / "orders.map.yaml").write_text(ORDERS_MAP)
    args = [
        "backfill", str(tmp_path / "orders.csv"), "--as", "pipelines:track:order_completed",
        "--map", str(tmp_path / "orders.map.yaml"), "--plan", str(tmp_path / "plan.yaml"),
        "--db", db, "--batch", "2",
    ]  # fmt: skip
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert _flat(first.output).startswith(
        "3 rows read: 3 accepted, 0 fixed, 0 warned, 0 rejected (quarantined), 0 duplicates,"
    )
    drain(db)
    calls = _delivered(emulator)
    assert [(c["userId"], c["event"], c["timestamp"], c["properties"]) for c in calls] == [
        ("cust-1", "order_completed", "2026-01-02T03:04:05.000Z",
         {"order_id": "B-1", "total": 12.5, "currency": "USD"}),
        ("cust-2", "order_completed", "2026-01-03T03:04:05.000Z",
         {"order_id": "B-2", "total": 7, "currency": "EUR"}),
        ("cust-3", "order_completed", "2026-01-04T03:04:05.000Z",
         {"order_id": "B-3", "total": 9.99, "currency": "USD"}),
    ]  # fmt: skip
    ids = [c["messageId"] for c in calls]
    assert len(set(ids)) == 3 and all(i.startswith("backfill-") for i in ids)
    again = CliRunner().invoke(main, args)  # resumes after the checkpoint: nothing to read
    assert _flat(again.output).startswith("resumed after row 3 0 rows read")
    restarted = CliRunner().invoke(main, [*args, "--restart"])
    assert "3 rows read: 0 accepted, 0 fixed, 0 warned, 0 rejected (quarantined), 3 dupli" in (
        _flat(restarted.output)
    )
    drain(db)
    assert [c["messageId"] for c in _delivered(emulator)] == ids
    bad = CliRunner().invoke(main, [*args[:3], "pipelines:group:Acme", *args[4:]])
    assert bad.exit_code == 2
    assert _flat(bad.output).endswith(
        "Error: Invalid value for --as: use event:NAME, identify, pipelines:track:NAME,"
        " pipelines:page:NAME, pipelines:screen:NAME, pipelines:identify, pipelines:group or"
        " pipelines:alias"
    )


def _flat(output: str) -> str:
    """The CLI's output with the terminal's line wrapping undone."""
    return " ".join(output.split())
