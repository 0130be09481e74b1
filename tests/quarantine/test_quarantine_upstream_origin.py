"""Upstream quarantine records carry the route and plan version that accepted the operation.

Requests go through the real checker, the example plan and ``to_write`` into a SQLite file;
delivery sends them over loopback HTTP to the emulator, whose fault injection answers 400, so
the worker splits the batch and quarantines each item alone (kind ``upstream``). The CLI then
finds them by ``--plan-version`` and ``--route``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from quarantine_env import EXAMPLES, T0, Invoke

from trackguard.cli.quarantine import quarantine_group
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.http.runner import start_in_thread
from trackguard.ingest import to_write
from trackguard.plan.loader import load_plan
from trackguard.store.quarantine import QuarantineFilter, list_quarantine
from trackguard.store.sqlite import SQLiteStore

SITE, KEY = "site-q", "key-q"
PLAN_VERSION = "2026-11-01"
V1_EVENTS = "POST /api/v1/customers/{identifier}/events"
V2_BATCH = "POST /api/v2/batch"
ORDER = {"name": "order_completed", "data": {"order_id": "O-9", "currency": "USD", "total": 5}}
ITEM = {
    "type": "person",
    "action": "identify",
    "identifiers": {"id": "cus_8"},
    "attributes": {"plan": "pro"},
}
SECRET = "Basic c2l0ZS1xOmtleS1x"


@pytest.fixture(name="refused")
def _refused(tmp_path: Path) -> Iterator[Path]:
    """A store whose two accepted operations the emulator refused (400) at delivery."""
    path = tmp_path / "tg.db"
    plan = load_plan(EXAMPLES / "d2c-plan.yaml")
    assert plan.version == PLAN_VERSION
    checker = Checker(plan)
    requests = [
        Request(
            method="POST",
            path="/api/v1/customers/cus_9/events",
            headers=(("authorization", SECRET), ("content-type", "application/json")),
            body=json.dumps(ORDER).encode(),
            source="storefront",
        ),
        Request(
            method="POST",
            path="/api/v2/batch",
            headers=(("authorization", SECRET),),
            body=json.dumps({"batch": [ITEM]}).encode(),
            source="backend",
        ),
    ]
    store = SQLiteStore(path, synchronous="NORMAL")
    try:
        for i, request in enumerate(requests):
            verdict = checker.check(request)
            assert (verdict.outcome, len(verdict.operations)) == ("accepted", 1)
            store.commit([to_write(request, verdict, T0 + i)])
        first, second = store.outbox_row(1), store.outbox_row(2)
        assert first is not None and second is not None
        assert (first.route, first.plan_version) == (V1_EVENTS, PLAN_VERSION)
        assert (second.route, second.plan_version) == (V2_BATCH, PLAN_VERSION)

        emulator = create_emulator(SITE, KEY)
        emulator.faults.set(FaultConfig(status=400))
        with start_in_thread(emulator) as server:
            transport = HttpxTransport(server.url, SITE, KEY)
            try:
                report = DeliveryWorker(store, transport, linger=0.0).run_once()
            finally:
                transport.close()
        assert (report.leased, report.failed, report.delivered) == (2, 2, 0)
        assert [r.state for r in store.outbox_list()] == ["failed", "failed"]
    finally:
        store.close()
    yield path


def test_a_refused_item_is_quarantined_with_its_route_and_plan_version(refused: Path) -> None:
    records = sorted(list_quarantine(refused), key=lambda r: r.received_at)
    assert [r.kind for r in records] == ["upstream", "upstream"]
    order, identify = records
    assert order.route == V1_EVENTS
    assert order.plan_version == PLAN_VERSION
    assert order.source == "storefront"
    assert order.event_name == "order_completed"
    assert order.status == 400
    assert order.codes == ("upstream_rejected",)
    assert order.headers == ()  # the outbox never held them, least of all the credentials
    assert (identify.route, identify.plan_version, identify.source) == (
        V2_BATCH,
        PLAN_VERSION,
        "backend",
    )
    assert identify.headers == ()
    store = SQLiteStore(refused, synchronous="NORMAL")
    try:
        failed = store.outbox_list(state="failed")
    finally:
        store.close()
    assert sorted((r.route, r.plan_version) for r in failed) == [
        (V1_EVENTS, PLAN_VERSION),
        (V2_BATCH, PLAN_VERSION),
    ]


def test_library_filters_select_upstream_records_by_plan_version_and_route(
    refused: Path,
) -> None:
    def routes(flt: QuarantineFilter) -> list[str | None]:
        return [r.route for r in list_quarantine(refused, flt)]

    both = QuarantineFilter(kind="upstream", plan_version=PLAN_VERSION)
    assert routes(both) == [V2_BATCH, V1_EVENTS]
    assert routes(QuarantineFilter(route=V1_EVENTS)) == [V1_EVENTS]
    assert routes(QuarantineFilter(route=V2_BATCH, plan_version=PLAN_VERSION)) == [V2_BATCH]
    assert routes(QuarantineFilter(plan_version="2026-10-01")) == []
    assert routes(QuarantineFilter(route="POST /api/v1/customers/cus_9/events")) == []


def test_cli_list_finds_them_by_plan_version_and_route(invoke: Invoke, refused: Path) -> None:
    result = invoke(
        quarantine_group,
        "list",
        "--db",
        refused,
        "--kind",
        "upstream",
        "--plan-version",
        PLAN_VERSION,
        "--route",
        V1_EVENTS,
    )
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert result.stderr == "showing 1-1 of 1 matching record\n"
    (row,) = lines[1:]
    assert row.split()[3:7] == ["upstream", "quarantined", "storefront", "order_completed"]

    result = invoke(quarantine_group, "list", "--db", refused, "--plan-version", "nope")
    assert result.stdout == "no quarantined records match\n"


def test_cli_show_export_and_stats_carry_them(invoke: Invoke, refused: Path) -> None:
    shown = invoke(quarantine_group, "show", "1", "--db", refused).stdout.splitlines()
    assert f"plan version:   {PLAN_VERSION}" in shown
    route_line = next(line for line in shown if line.startswith("route:"))
    assert route_line in (f"route:          {V1_EVENTS}", f"route:          {V2_BATCH}")
    assert "headers (0):" in shown

    result = invoke(quarantine_group, "export", "--db", refused, "--route", V2_BATCH)
    assert result.stderr == "exported 1 record to stdout\n"
    line = json.loads(result.stdout)
    assert (line["kind"], line["route"], line["plan_version"], line["headers"]) == (
        "upstream",
        V2_BATCH,
        PLAN_VERSION,
        {},
    )
    assert SECRET not in result.stdout

    csv_out = invoke(
        quarantine_group, "export", "--db", refused, "--format", "csv", "--route", V1_EVENTS
    ).stdout
    header, row = csv_out.splitlines()[:2]
    assert header.split(",")[7:10] == ["source", "plan_version", "route"]
    assert f",{PLAN_VERSION},{V1_EVENTS}," in row

    stats = invoke(
        quarantine_group,
        "stats",
        "--db",
        refused,
        "--format",
        "json",
        "--plan-version",
        PLAN_VERSION,
    )
    assert json.loads(stats.stdout)["by_kind"] == [["upstream", 2]]


def test_the_docs_show_an_upstream_record_as_it_is(invoke: Invoke, store_path: Path) -> None:
    """docs/quarantine.md's ``show 8`` is this store's output, to the character."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "quarantine.md"
    lines = docs.read_text(encoding="utf-8").splitlines()
    at = lines.index("$ trackguard quarantine show 8") + 1
    block: list[str] = []
    while not lines[at].startswith(("$ ", "```")):
        block.append(lines[at])
        at += 1
    result = invoke(quarantine_group, "show", "8", "--db", store_path)
    assert result.stdout.splitlines() == block
    assert f"route:          {V1_EVENTS}" in block
    assert f"plan version:   {PLAN_VERSION}" in block
