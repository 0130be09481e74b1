"""Delivery of Pipelines calls: their own ``/v1/batch`` batches, transport and rate, and a
strict 400 from the Pipelines API settled call by call. A real SQLite store, mock transports,
a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trackguard.contract.operations import Identifier, Operation
from trackguard.delivery.batching import PIPELINES_BATCH_PATH, pack
from trackguard.delivery.circuit import CircuitPolicy
from trackguard.delivery.convert import to_outbox_row
from trackguard.delivery.transport import (
    MockTransport,
    UpstreamRequestRecord,
    UpstreamResponse,
    pipelines_transport,
)
from trackguard.delivery.worker import DeliveryWorker
from trackguard.store.base import OutboxRow, Write
from trackguard.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0
OK = UpstreamResponse(200, (), b"{}")


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 10.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "outbox.db", synchronous="NORMAL")
    yield store
    store.close()


def call(i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": f"u{i}", "event": "e", "messageId": f"m{i}",
            "timestamp": "2024-06-01T12:00:00.123+00:00", **extra}  # fmt: skip


def p_row(i: int, **extra: Any) -> OutboxRow:
    op = Operation(
        api="pipelines",
        type="person",
        action="event",
        route="POST /v1/track",
        method="POST",
        path="/v1/batch",
        identifier=Identifier("id", f"u{i}"),
        body=call(i, **extra),
        batch_index=i,
        data_key="properties",
        name_key="event",
    )
    row = to_outbox_row(op, received_at=T0 + i, source="default", route="POST /v1/batch")
    assert row is not None
    return row


def v2_row(i: int) -> OutboxRow:
    item = {"type": "person", "action": "identify", "identifiers": {"id": f"t{i}"}}
    return OutboxRow(
        received_at=T0 + i, person=f"id:t{i}", payload=json.dumps({"v2": item}).encode()
    )


def test_a_pipelines_row_is_the_call_unchanged_with_its_event_name() -> None:
    row = p_row(1)
    assert json.loads(row.payload) == {"pipelines": call(1)}  # no id or unix timestamp added
    assert (row.person, row.event_name, row.route) == ("id:u1", "e", "POST /v1/batch")


def test_calls_share_v1_batches_apart_from_track_items_and_in_order() -> None:
    rows = [p_row(1), p_row(2), v2_row(3), p_row(4)]
    requests, rejected = pack(rows)
    assert rejected == []
    assert [(r.path, [row.received_at - T0 for row in r.rows]) for r in requests] == [
        ("/v1/batch", [1, 2]),
        ("/api/v2/batch", [3]),
        ("/v1/batch", [4]),
    ]
    assert json.loads(requests[0].body or b"") == {"batch": [call(1), call(2)]}
    assert [r.api for r in requests] == ["pipelines", "track", "pipelines"]


def test_batches_stay_under_the_size_limit_and_an_oversized_call_is_refused() -> None:
    big = "x" * 9_000
    rows = [p_row(i, properties={"pad": big}) for i in range(5)]
    requests, _ = pack(rows, max_batch_bytes=20_000)
    assert [len(r.rows) for r in requests] == [2, 2, 1]
    assert all(len(r.body or b"") <= 20_000 for r in requests)
    huge = p_row(9, properties={"pad": "y" * 33_000})
    requests, rejected = pack([huge])
    assert requests == []
    (refused,) = rejected
    assert refused.code == "item_too_large"
    assert refused.path == PIPELINES_BATCH_PATH
    size = len(huge.payload) - len(b'{"pipelines":}')
    assert refused.reason == (
        f"batch item is {size} bytes; Customer.io accepts at most 32768 bytes per item"
    )
    assert json.loads(refused.body) == {"batch": [json.loads(huge.payload)["pipelines"]]}


def test_pipelines_go_to_their_own_upstream_and_track_items_to_the_track_api(
    store: SQLiteStore,
) -> None:
    track: list[UpstreamRequestRecord] = []
    cdp: list[UpstreamRequestRecord] = []
    store.commit([Write(outbox=(p_row(1), v2_row(2), p_row(3)))])
    clock = Clock()
    worker = DeliveryWorker(
        store,
        MockTransport(lambda r: track.append(r) or OK),
        pipelines=MockTransport(lambda r: cdp.append(r) or OK),
        clock=clock,
        sleep=clock.sleep,
        linger=0,
    )
    report = worker.run_once()
    assert (report.requests, report.delivered) == (3, 3)
    assert [r.path for r in track] == ["/api/v2/batch"]
    assert [(r.path, json.loads(r.body or b"")) for r in cdp] == [
        ("/v1/batch", {"batch": [call(1)]}),
        ("/v1/batch", {"batch": [call(3)]}),
    ]


def test_a_strict_400_quarantines_the_refused_call_with_the_reason_and_sends_the_rest(
    store: SQLiteStore,
) -> None:
    sent: list[list[str]] = []

    def strict(r: UpstreamRequestRecord) -> UpstreamResponse:
        ids = [c["messageId"] for c in json.loads(r.body or b"")["batch"]]
        sent.append(ids)
        if "m2" not in ids:
            return OK
        line = f"batch[{ids.index('m2')}].event: track requires event"
        body = {"code": "invalid_request", "message": line, "meta": {"errors": [line]}}
        return UpstreamResponse(400, (), json.dumps(body).encode())

    store.commit([Write(outbox=tuple(p_row(i) for i in range(4)))])
    clock = Clock()
    worker = DeliveryWorker(
        store,
        MockTransport(lambda r: OK),
        pipelines=MockTransport(strict),
        clock=clock,
        sleep=clock.sleep,
        linger=0,
    )
    report = worker.run_once()
    assert (report.delivered, report.failed, report.retried) == (3, 1, 0)
    assert sent == [["m0", "m1", "m2", "m3"], ["m0", "m1"], ["m2", "m3"], ["m2"], ["m3"]]
    (record,) = store.quarantine_list()
    assert record.kind == "upstream"
    assert (record.method, record.path, record.status) == ("POST", "/v1/batch", 400)
    assert record.upstream_error == "batch[0].event: track requires event"
    assert json.loads(record.body) == {"batch": [call(2)]}


def test_without_a_pipelines_upstream_the_calls_wait_and_say_why(store: SQLiteStore) -> None:
    store.commit([Write(outbox=(p_row(1),))])
    clock = Clock()
    worker = DeliveryWorker(
        store, MockTransport(lambda r: OK), clock=clock, sleep=clock.sleep, linger=0
    )
    report = worker.run_once()
    assert (report.delivered, report.retried) == (0, 1)
    assert report.last_error == "no Pipelines upstream: set TRACKGUARD_CDP_API_KEY"
    assert store.outbox_stats().pending == 1


def test_the_pipelines_rate_is_its_own(store: SQLiteStore) -> None:
    store.commit([Write(outbox=tuple(p_row(i) for i in range(3)))])
    clock = Clock()
    worker = DeliveryWorker(
        store,
        MockTransport(lambda r: OK),
        pipelines=MockTransport(lambda r: OK),
        rate=100.0,
        pipelines_rate=2.0,
        max_batch_bytes=len(p_row(0).payload),  # one call per request
        clock=clock,
        sleep=clock.sleep,
        linger=0,
    )
    assert (worker.bucket.rate, worker.pipelines_bucket.rate) == (100.0, 2.0)
    report = worker.run_once()
    assert (report.requests, report.delivered) == (3, 3)
    assert clock.slept == [0.5, 0.5]  # burst 1 at 2/s: each later request waits half a second


def test_the_pipelines_transport_sends_the_write_key_and_strict_mode() -> None:
    transport = pipelines_transport("https://cdp-eu.customer.io/", "wk-1")
    try:
        client = transport._client
        assert client.headers["x-strict-mode"] == "1"
        assert str(client.base_url) == "https://cdp-eu.customer.io"
        request = client.build_request("POST", "/v1/batch")
        assert client.auth is not None
        flow = client.auth.auth_flow(request)
        assert next(flow).headers["authorization"] == "Basic d2stMTo="  # base64("wk-1:")
        assert repr(transport) == "HttpxTransport('https://cdp-eu.customer.io')"
    finally:
        transport.close()


def test_a_pipelines_upstream_that_refuses_everything_opens_the_circuit(
    store: SQLiteStore,
) -> None:
    line = "batch[0].event: track requires event"
    refuse = UpstreamResponse(
        400, (), json.dumps({"code": "invalid_request", "message": line,
                             "meta": {"errors": [line]}}).encode()
    )  # fmt: skip
    store.commit([Write(outbox=tuple(p_row(i) for i in range(4)))])
    clock = Clock()
    worker = DeliveryWorker(
        store,
        MockTransport(lambda r: OK),
        pipelines=MockTransport(lambda r: refuse),
        circuit=CircuitPolicy(batches=1, min_items=2),
        clock=clock,
        sleep=clock.sleep,
        linger=0,
    )
    report = worker.run_once()
    assert (report.delivered, report.failed) == (0, 0)
    assert store.quarantine_list() == []
    stats = store.outbox_stats()
    assert (stats.pending, stats.failed) == (4, 0)
    assert worker.circuit is not None and worker.circuit.state.state == "open"
