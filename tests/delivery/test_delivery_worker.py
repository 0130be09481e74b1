"""The worker against a real SQLite store and a MockTransport, under a fake clock.

Every upstream answer is played by the mock: 2xx, 207 per-item errors, 400 bisection, 429 with
Retry-After, 5xx backoff, timeouts, 401. Assertions are on exact requests, rows and records.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.delivery.transport import (
    MockTransport,
    UpstreamRequestRecord,
    UpstreamResponse,
    UpstreamTimeout,
)
from trackguard.delivery.worker import (
    DeliveryReport,
    DeliveryWorker,
    UpstreamError,
    upstream_errors,
)
from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0
OK = UpstreamResponse(200, (("content-type", "application/json"),), b"{}\n")
Handler = Callable[[UpstreamRequestRecord], UpstreamResponse]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)


class FakeClock:
    def __init__(self, now: float = T0 + 10.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class TopOfRange:
    """Backoff jitter that always draws the top of the range (so delays are exact)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "outbox.db", synchronous="NORMAL")
    yield store
    store.close()


def item(i: int) -> dict[str, Any]:
    return {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": str(i)},
        "attributes": {"n": i},
    }


def v2_row(i: int, person: str | None = None) -> OutboxRow:
    return OutboxRow(
        received_at=T0 + i,
        person=person or f"id:{i}",
        payload=msgspec.json.encode({"v2": item(i)}),
        event_name=f"e{i}",
        source="web",
    )


def v1_row(i: int, person: str) -> OutboxRow:
    call = {"method": "POST", "path": "/api/v1/events", "body": {"name": f"e{i}"}}
    return OutboxRow(received_at=T0 + i, person=person, payload=msgspec.json.encode({"v1": call}))


def commit(store: SQLiteStore, rows: list[OutboxRow]) -> None:
    store.commit([Write(outbox=tuple(rows))])


def recording(handler: Handler) -> tuple[MockTransport, list[UpstreamRequestRecord]]:
    sent: list[UpstreamRequestRecord] = []

    def record(request: UpstreamRequestRecord) -> UpstreamResponse:
        sent.append(request)
        return handler(request)

    return MockTransport(record), sent


def worker(
    store: SQLiteStore, transport: MockTransport, clock: FakeClock, **kw: Any
) -> DeliveryWorker:
    return DeliveryWorker(
        store, transport, clock=clock, sleep=clock.sleep, rng=kw.pop("rng", TopOfRange()), **kw
    )


def batch_ids(request: UpstreamRequestRecord) -> list[int]:
    assert request.body is not None
    return [int(i["identifiers"]["id"]) for i in json.loads(request.body)["batch"]]


def states(store: SQLiteStore, n: int) -> list[str]:
    return [row.state for seq in range(1, n + 1) if (row := store.outbox_row(seq)) is not None]


def test_success_delivers_every_row_in_one_batch(store: SQLiteStore) -> None:
    commit(store, [v2_row(1), v2_row(2), v2_row(3)])
    transport, sent = recording(lambda r: OK)
    clock = FakeClock()
    w = worker(store, transport, clock)
    report = w.run_once()
    assert report == DeliveryReport(leased=3, requests=1, delivered=3)
    assert [(r.method, r.path) for r in sent] == [("POST", "/api/v2/batch")]
    assert sent[0].body == msgspec.json.encode({"batch": [item(1), item(2), item(3)]})
    assert states(store, 3) == ["delivered"] * 3
    assert [store.outbox_row(s).delivered_at for s in (1, 2, 3)] == [clock.now] * 3  # type: ignore[union-attr]
    m = w.metrics.snapshot()
    assert (m.requests_total, m.requests_by_status, m.rows_delivered_total) == (1, {"200": 1}, 3)
    assert (m.items_per_request.count, m.items_per_request.sum) == (1, 3.0)
    assert m.items_per_request.counts == (0, 1, 0, 0, 0, 0, 0, 0)  # 3 items: the <=10 bucket
    assert m.delivery_latency_seconds.sum == pytest.approx(9.0 + 8.0 + 7.0)
    assert w.run_once() == DeliveryReport()  # nothing left


def test_207_quarantines_only_the_named_items(store: SQLiteStore) -> None:
    commit(store, [v2_row(1), v2_row(2), v2_row(3)])
    error = {
        "batch_index": 1,
        "reason": "invalid",
        "field": "attributes.plan",
        "message": "property value cannot be longer than 1000 bytes",
    }
    body = msgspec.json.encode({"errors": [error]})
    transport, _ = recording(lambda r: UpstreamResponse(207, (), body))
    clock = FakeClock()
    report = worker(store, transport, clock).run_once()
    assert report == DeliveryReport(leased=3, requests=1, delivered=2, failed=1)
    assert states(store, 3) == ["delivered", "failed", "delivered"]
    (record,) = store.quarantine_list()
    assert record == QuarantineRecord(
        id=record.id,
        received_at=T0 + 2,
        kind="upstream",
        method="POST",
        path="/api/v2/entity",
        body=msgspec.json.encode(item(2)),
        source="web",
        status=207,
        findings=msgspec.json.encode(
            [
                {
                    "reason": "invalid",
                    "field": "attributes.plan",
                    "message": "property value cannot be longer than 1000 bytes",
                }
            ]
        ),
        event_name="e2",
        codes=("upstream_rejected",),
        upstream_error="property value cannot be longer than 1000 bytes",
    )
    assert store.outbox_row(2).last_error == record.upstream_error  # type: ignore[union-attr]


def test_400_on_a_batch_bisects_until_the_bad_item_stands_alone(store: SQLiteStore) -> None:
    commit(store, [v2_row(i) for i in range(1, 6)])
    bad = {"errors": [{"reason": "invalid", "field": "identifiers", "message": "bad id"}]}

    def handler(request: UpstreamRequestRecord) -> UpstreamResponse:
        if 4 in batch_ids(request):
            return UpstreamResponse(400, (), msgspec.json.encode(bad))
        return OK

    transport, sent = recording(handler)
    report = worker(store, transport, FakeClock()).run_once()
    assert [batch_ids(r) for r in sent] == [
        [1, 2, 3, 4, 5],
        [1, 2],
        [3, 4, 5],
        [3],
        [4, 5],
        [4],
        [5],
    ]
    assert report == DeliveryReport(leased=5, requests=7, delivered=4, failed=1)
    assert states(store, 5) == ["delivered", "delivered", "delivered", "failed", "delivered"]
    (record,) = store.quarantine_list()
    assert (record.path, record.body, record.status, record.upstream_error) == (
        "/api/v2/entity",
        msgspec.json.encode(item(4)),
        400,
        "bad id",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{\n  "meta": {\n    "errors": [\n      "a"\n    ,"b"]\n  }\n}\n', "a; b"),
        (b'{"meta":{"error":"The request was malformed."}}', "The request was malformed."),
        (b"<html>Bad Request</html>", "HTTP 400: <html>Bad Request</html>"),
        (b"", "HTTP 400"),
    ],
    ids=["v1-errors", "merge-error", "not-json", "empty"],
)
def test_400_on_a_v1_call_quarantines_it_with_customerios_message(
    store: SQLiteStore, body: bytes, message: str
) -> None:
    commit(store, [v1_row(1, "anon:a")])
    transport, _ = recording(lambda r: UpstreamResponse(400, (), body))
    worker(store, transport, FakeClock()).run_once()
    (record,) = store.quarantine_list()
    assert (record.method, record.path, record.body, record.upstream_error) == (
        "POST",
        "/api/v1/events",
        b'{"name":"e1"}',
        message,
    )


def test_429_with_retry_after_reschedules_the_round_and_keeps_everything(
    store: SQLiteStore,
) -> None:
    commit(store, [v2_row(1), v1_row(2, "anon:a"), v2_row(3)])
    limited = UpstreamResponse(
        429, (("retry-after", "7"),), b'{"meta":{"error":"Too Many Requests"}}'
    )
    answers = [limited]
    transport, sent = recording(lambda r: answers.pop() if answers else OK)
    clock = FakeClock()
    w = worker(store, transport, clock)
    report = w.run_once()
    assert len(sent) == 1  # the round stops at the first failure
    assert report == DeliveryReport(
        leased=3, requests=1, retried=3, retry_at=clock.now + 7, last_error="Too Many Requests"
    )
    rows = [store.outbox_row(s) for s in (1, 2, 3)]
    assert [(r.state, r.attempts, r.next_attempt_at, r.last_error) for r in rows if r] == [
        ("pending", 1, clock.now + 7, "Too Many Requests"),
        ("pending", 1, clock.now + 7, "not sent: an earlier request failed (Too Many Requests)"),
        ("pending", 1, clock.now + 7, "not sent: an earlier request failed (Too Many Requests)"),
    ]
    assert w.run_once() == DeliveryReport()  # nothing is due before Retry-After
    clock.now += 7
    assert w.run_once().delivered == 3
    assert [r.path for r in sent[1:]] == ["/api/v2/batch", "/api/v1/events", "/api/v2/batch"]
    m = w.metrics.snapshot()
    assert m.requests_by_status == {"429": 1, "200": 3}
    assert (m.rows_retried_total, m.rows_delivered_total, m.rows_failed_total) == (3, 3, 0)
    assert m.last_error == "Too Many Requests" and m.last_error_at == clock.now - 7


def test_retry_after_as_an_http_date(store: SQLiteStore) -> None:
    commit(store, [v2_row(1)])
    clock = FakeClock(now=1_700_000_000.25)
    when = format_datetime(datetime.fromtimestamp(1_700_000_030, UTC), usegmt=True)
    transport, _ = recording(lambda r: UpstreamResponse(503, (("retry-after", when),), b""))
    report = worker(store, transport, clock).run_once()
    assert report.retry_at == 1_700_000_030.0
    assert report.last_error == "HTTP 503"


def test_5xx_and_timeouts_back_off_exponentially_with_full_jitter(store: SQLiteStore) -> None:
    commit(store, [v2_row(1)])
    failures: list[Any] = [
        UpstreamResponse(503, (), b""),
        UpstreamTimeout("ReadTimeout on POST /api/v2/batch"),
        UpstreamResponse(502, (), b""),
        UpstreamResponse(500, (), b""),
        UpstreamResponse(504, (), b""),
    ]

    def handler(request: UpstreamRequestRecord) -> UpstreamResponse:
        answer = failures.pop(0) if failures else OK
        if isinstance(answer, Exception):
            raise answer
        return answer

    transport, _ = recording(handler)
    clock, rng = FakeClock(), TopOfRange()
    w = worker(store, transport, clock, rng=rng, backoff_base=0.5, backoff_max=4.0)
    delays = []
    while (report := w.run_once()).delivered == 0:
        assert report.retry_at is not None
        delays.append(report.retry_at - clock.now)
        clock.now = report.retry_at
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert rng.ranges == [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 4.0)]
    assert w.metrics.snapshot().requests_by_status == {
        "503": 1,
        "error": 1,
        "502": 1,
        "500": 1,
        "504": 1,
        "200": 1,
    }
    row = store.outbox_row(1)
    assert row is not None and (row.state, row.attempts) == ("delivered", 6)
    # Success resets the exponent: the next failure waits at most backoff_base again.
    commit(store, [v2_row(2)])
    failures.append(UpstreamResponse(503, (), b""))
    assert w.run_once().retry_at == clock.now + 0.5


def test_401_is_retried_loudly_and_never_quarantines(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    commit(store, [v2_row(1)])
    transport, _ = recording(
        lambda r: UpstreamResponse(401, (), b'{"meta":{"error":"Unauthorized"}}')
    )
    with caplog.at_level(logging.WARNING, logger="trackguard.delivery"):
        report = worker(store, transport, FakeClock(), max_attempts=None).run_once()
    assert (report.retried, report.failed) == (1, 0)
    assert store.quarantine_count() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "Customer.io refused the credentials (HTTP 401): check TRACKGUARD_SITE_ID and"
        " TRACKGUARD_API_KEY; 1 rows are kept and retried"
    ]


def test_max_attempts_quarantines_a_row_after_that_many_rounds(store: SQLiteStore) -> None:
    commit(store, [v2_row(1)])
    transport, _ = recording(lambda r: UpstreamResponse(503, (), b""))
    clock = FakeClock()
    w = worker(store, transport, clock, max_attempts=2)
    first = w.run_once()
    assert (first.retried, first.failed) == (1, 0)
    clock.now = first.retry_at or 0.0
    assert w.run_once() == DeliveryReport(
        leased=1, requests=1, failed=1, retry_at=clock.now + 1.0, last_error="HTTP 503"
    )
    (record,) = store.quarantine_list()
    assert (record.codes, record.upstream_error, record.path, record.body) == (
        ("upstream_gave_up",),
        "gave up after 2 attempts: HTTP 503",
        "/api/v2/entity",
        msgspec.json.encode(item(1)),
    )


def test_an_item_too_large_is_quarantined_without_being_sent(store: SQLiteStore) -> None:
    huge = {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": "9"},
        "attributes": {"blob": "x" * 40_000},
    }
    commit(
        store,
        [
            v2_row(1),
            OutboxRow(received_at=T0, person="id:9", payload=msgspec.json.encode({"v2": huge})),
        ],
    )
    transport, sent = recording(lambda r: OK)
    report = worker(store, transport, FakeClock()).run_once()
    assert [batch_ids(r) for r in sent] == [[1]]
    assert (report.delivered, report.failed) == (1, 1)
    (record,) = store.quarantine_list()
    assert record.codes == ("item_too_large",)
    assert record.upstream_error == (
        "batch item is 40087 bytes; Customer.io accepts at most 32768 bytes per item"
    )


def test_a_failure_never_lets_a_persons_later_row_overtake(store: SQLiteStore) -> None:
    commit(store, [v1_row(1, "id:a"), v1_row(2, "id:b"), v1_row(3, "id:a")])
    answers = [UpstreamResponse(503, (), b"")]
    transport, sent = recording(lambda r: answers.pop(0) if answers else OK)
    clock = FakeClock()
    w = worker(store, transport, clock)
    report = w.run_once()
    assert len(sent) == 1 and report.retried == 3
    clock.now = report.retry_at or 0.0
    w.run_once()
    assert [json.loads(r.body or b"")["name"] for r in sent] == ["e1", "e1", "e2", "e3"]


def test_requests_never_exceed_the_rate_limit(store: SQLiteStore) -> None:
    commit(store, [v1_row(i, f"anon:{i}") for i in range(1, 31)])
    clock = FakeClock()
    times: list[float] = []

    def handler(request: UpstreamRequestRecord) -> UpstreamResponse:
        times.append(clock.now)
        return OK

    transport = MockTransport(handler)
    worker(store, transport, clock, rate=10.0, burst=2).run_once()
    assert len(times) == 30
    assert times[-1] - times[0] == pytest.approx(2.8)  # 28 requests after the burst, 10/s
    for i in range(30):
        for j in range(i, 30):
            assert j - i + 1 <= 10.0 * (times[j] - times[i]) + 2 + 1e-6


def test_run_delivers_until_stopped(store: SQLiteStore) -> None:
    commit(store, [v2_row(1), v2_row(2)])
    transport, sent = recording(lambda r: OK)
    w = DeliveryWorker(store, transport, idle_sleep=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,))
    thread.start()
    try:
        for _ in range(500):
            if store.outbox_stats().delivered == 2:
                break
            stop.wait(0.01)
        commit(store, [v2_row(3)])  # arrives while the worker idles
        for _ in range(500):
            if store.outbox_stats().delivered == 3:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert store.outbox_stats().delivered == 3
    assert [batch_ids(r) for r in sent] == [[1, 2], [3]]


def test_run_stops_when_the_store_is_closed(store: SQLiteStore) -> None:
    transport, _ = recording(lambda r: OK)
    w = DeliveryWorker(store, transport, idle_sleep=0.01)
    store.close()
    runner = threading.Thread(target=w.run, args=(threading.Event(),), daemon=True)
    runner.start()
    runner.join(timeout=30)  # a hang guard: a worker spinning on a closed store never returns
    assert not runner.is_alive()


def test_a_207_naming_no_item_delivers_the_batch(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    commit(store, [v2_row(1), v2_row(2)])
    body = b'{"errors":[{"batch_index":9,"message":"out of range"},{"message":"no index"}]}'
    transport, _ = recording(lambda r: UpstreamResponse(207, (), body))
    report = worker(store, transport, FakeClock()).run_once()
    assert (report.delivered, report.failed) == (2, 0)
    assert "HTTP 207 naming no item of the batch: counted as delivered" in caplog.text


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            b'{"errors":[{"batch_index":1,"reason":"invalid","field":"name","message":"m"}]}',
            [UpstreamError(message="m", reason="invalid", field="name", batch_index=1)],
        ),
        (
            b'{"errors":[{"reason":"required"}]}',
            [UpstreamError(message="required", reason="required")],
        ),
        (
            b'{"meta":{"errors":["a","b"]}}',
            [UpstreamError(message="a"), UpstreamError(message="b")],
        ),
        (b'{"meta":{"error":"one"}}', [UpstreamError(message="one")]),
        (b'{"meta":{"errors":[{"x":1}]}}', [UpstreamError(message='{"x":1}')]),
        (b'{"errors":[{"batch_index":true,"message":"m"}]}', [UpstreamError(message="m")]),
        (b'{"errors":"nope","meta":[]}', []),
        (b"[1,2]", []),
        (b"{", []),
    ],
)
def test_upstream_errors_reads_every_shape(body: bytes, errors: list[UpstreamError]) -> None:
    assert upstream_errors(body) == errors


_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "errors": st.lists(
            st.dictionaries(st.sampled_from(["batch_index", "message", "reason", "field"]), _JSON)
        )
        | _JSON,
        "meta": st.fixed_dictionaries({}, optional={"errors": _JSON, "error": _JSON}) | _JSON,
    },
)


@given(body=st.binary(max_size=200) | st.builds(msgspec.json.encode, _JSON | _SHAPED))
def test_upstream_errors_never_raises(body: bytes) -> None:
    for error in upstream_errors(body):
        assert isinstance(error.message, str)


def test_linger_waits_for_a_fuller_batch_then_goes(store: SQLiteStore) -> None:
    """Rows wait up to ``linger`` for company; ``batch_target`` rows go at once."""
    transport, _ = recording(lambda r: UpstreamResponse(200, (), b"{}"))
    w = worker(store, transport, FakeClock(), linger=1.0, batch_target=3, idle_sleep=0.5)
    assert w.linger_wait(store.outbox_stats(), T0 + 1.25) == 0.5  # nothing pending: idle
    commit(store, [v2_row(1)])  # received at T0 + 1
    stats = store.outbox_stats()
    assert w.linger_wait(stats, T0 + 1.25) == 0.5  # min(1.0 - 0.25, idle_sleep)
    assert w.linger_wait(stats, T0 + 1.9) == pytest.approx(0.1)
    assert w.linger_wait(stats, T0 + 2.0) == 0.0  # the oldest row has waited a whole second
    commit(store, [v2_row(2), v2_row(3)])
    assert w.linger_wait(store.outbox_stats(), T0 + 1.25) == 0.0  # batch_target rows pending
