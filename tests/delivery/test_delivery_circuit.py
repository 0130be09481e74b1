"""The circuit breaker against the Customer.io emulator, under a fake clock.

An upstream answering 400 to everything must not move the backlog into the quarantine: three
bad batches open the circuit, their rows go back to the outbox, probes follow with exponential
backoff (capped), and a probe the upstream accepts closes it. Rows a healthy upstream really
refuses are still quarantined, whether alone in a good batch or held through a short streak.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from trackguard.delivery.circuit import STATE_KEY, Circuit, CircuitPolicy, CircuitState
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryReport, DeliveryWorker
from trackguard.emulator.faults import FaultConfig
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.store.base import OutboxRow, Write
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0
TOO_LONG = "value for attribute 'bad' cannot be longer than 1000 bytes"


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def row(i: int, *, bad: bool = False) -> OutboxRow:
    attributes: dict[str, Any] = {"n": i}
    if bad:
        attributes["bad"] = "x" * 1001  # Customer.io refuses it (the emulator too)
    item = {"type": "person", "action": "identify", "identifiers": {"id": f"p{i}"}}
    return OutboxRow(
        received_at=T0 - 100 + i,
        person=f"id:p{i}",
        payload=msgspec.json.encode({"v2": {**item, "attributes": attributes}}),
    )


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "tg.db")
    yield store
    store.close()


@pytest.fixture
def transport(emu: Any) -> Iterator[HttpxTransport]:
    transport = HttpxTransport(emu.url, emu.site_id, emu.api_key)
    yield transport
    transport.close()


def make(store: SQLiteStore, transport: HttpxTransport, clock: FakeClock) -> DeliveryWorker:
    return DeliveryWorker(
        store, transport, rate=1e6, burst=10_000, lease_size=10, clock=clock, sleep=clock.sleep
    )


def refusing(store: SQLiteStore, emu: Any, rows: list[OutboxRow]) -> None:
    """Rows in the outbox, and an upstream that answers 400 to everything."""
    store.commit([Write(outbox=tuple(rows))])
    emu.emulator.faults.set(FaultConfig(status=400))


def opened(
    store: SQLiteStore,
    transport: HttpxTransport,
    emu: Any,
    clock: FakeClock,
    *,
    really_bad: int | None = None,
) -> DeliveryWorker:
    """A worker whose circuit three refused batches of 10 rows opened (row ``really_bad``
    is one Customer.io refuses when healthy); the upstream still refuses everything."""
    refusing(store, emu, [row(i, bad=i == really_bad) for i in range(1, 31)])
    worker = make(store, transport, clock)
    for _ in range(3):
        worker.run_once()
    assert worker.circuit is not None and worker.circuit.is_open
    return worker


def pending_errors(store: SQLiteStore) -> set[str | None]:
    return {r.last_error for r in store.outbox_list("pending", limit=1000)}


def test_an_upstream_refusing_everything_opens_the_circuit_and_loses_nothing(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    refusing(store, emu, [row(i) for i in range(1, 41)])
    clock = FakeClock()
    worker = make(store, transport, clock)

    first = worker.run_once()
    assert (first.leased, first.delivered, first.failed, first.retried) == (10, 0, 0, 10)
    assert first.retry_at is None  # held, not decided yet
    assert worker.run_once().retried == 10
    third = worker.run_once()
    assert third == DeliveryReport(
        leased=10,
        requests=19,  # the batch, split down to single rows
        retried=30,  # this batch's rows and the two held batches' rows
        retry_at=T0 + 5,
        last_error="circuit open: Bad Request",
    )
    assert store.quarantine_count() == 0
    assert store.outbox_stats().pending == 40
    assert pending_errors(store) == {None, "circuit open: Bad Request"}
    snap = worker.metrics.snapshot()
    assert (snap.circuit_open, snap.circuit_trips_total, snap.circuit_probe_at) == (
        True,
        1,
        T0 + 5,
    )
    metrics = GatewayMetrics()
    metrics.bind_store(store.outbox_stats, GroupCommitter(store), worker.metrics.snapshot)
    scraped = metrics.render()
    assert b"\ntrackguard_delivery_circuit_open 1.0\n" in scraped
    assert b"\ntrackguard_delivery_circuit_trips_total 1.0\n" in scraped
    saved = msgspec.json.decode(store.meta_value(STATE_KEY) or "", type=CircuitState)
    assert saved == CircuitState(
        state="open", opened_at=T0, probe_at=T0 + 5, trips=1, reason="Bad Request"
    )

    # Paused: nothing is leased or sent before the probe is due.
    sent = emu.emulator.log.total
    assert worker.run_once() == DeliveryReport(retry_at=T0 + 5, last_error="Bad Request")
    assert emu.emulator.log.total == sent

    # Rejected probes back off exponentially, capped at probe_max.
    delays = []
    for _ in range(7):
        clock.now = worker.circuit.state.probe_at  # type: ignore[union-attr,assignment]
        report = worker.run_once()
        assert (report.leased, report.failed, report.delivered) == (10, 0, 0)
        assert report.retry_at is not None
        delays.append(report.retry_at - clock.now)
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert store.quarantine_count() == 0 and store.outbox_stats().pending == 40

    # Upstream recovers: the probe closes the circuit and everything is delivered.
    emu.emulator.faults.set(FaultConfig())
    clock.now = worker.circuit.state.probe_at  # type: ignore[union-attr,assignment]
    probe = worker.run_once()
    assert (probe.leased, probe.delivered, probe.failed, probe.retry_at) == (10, 10, 0, None)
    assert worker.metrics.snapshot().circuit_open is False
    assert json.loads(store.meta_value(STATE_KEY) or "")["state"] == "closed"
    while worker.run_once().leased:
        pass
    stats = store.outbox_stats()
    assert (stats.pending, stats.delivered, stats.failed, store.quarantine_count()) == (0, 40, 0, 0)
    assert len(emu.people()) == 40


def test_rows_a_healthy_upstream_refuses_are_still_quarantined(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    clock = FakeClock()
    worker = make(store, transport, clock)
    # A mostly good batch: its refused rows are quarantined at once.
    store.commit([Write(outbox=tuple(row(i, bad=i in (3, 7)) for i in range(1, 11)))])
    report = worker.run_once()
    assert (report.delivered, report.failed, report.retried) == (8, 2, 0)
    # A bad batch is held; the next good batch shows the upstream is fine: quarantined.
    store.commit([Write(outbox=tuple(row(i, bad=True) for i in range(11, 21)))])
    assert worker.run_once().retried == 10
    assert store.quarantine_count() == 2
    store.commit([Write(outbox=tuple(row(i) for i in range(21, 31)))])
    report = worker.run_once()
    assert (report.delivered, report.failed) == (10, 10)
    # A bad batch with nothing after it is quarantined once the hold (60 s) ran out.
    store.commit([Write(outbox=tuple(row(i, bad=True) for i in range(31, 41)))])
    assert worker.run_once().retried == 10
    clock.now += 60
    assert worker.run_once() == DeliveryReport()  # not yet: the hold is 60 s
    clock.now += 1
    assert worker.run_once() == DeliveryReport(failed=10)
    records = store.quarantine_list(limit=100)
    assert len(records) == store.quarantine_count() == 22
    assert {r.upstream_error for r in records} == {TOO_LONG}
    assert worker.metrics.snapshot().circuit_trips_total == 0
    stats = store.outbox_stats()
    assert (stats.pending, stats.delivered, stats.failed) == (0, 18, 22)


def test_a_probe_the_upstream_mostly_accepts_closes_it_and_its_bad_rows_are_quarantined(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    clock = FakeClock()
    worker = opened(store, transport, emu, clock, really_bad=2)
    emu.emulator.faults.set(FaultConfig())
    clock.now += 5
    probe = worker.run_once()
    assert (probe.leased, probe.delivered, probe.failed) == (10, 9, 1)
    assert worker.circuit is not None and not worker.circuit.is_open
    (record,) = store.quarantine_list()
    assert (record.path, record.upstream_error, json.loads(record.body)["identifiers"]) == (
        "/api/v2/entity",
        TOO_LONG,
        {"id": "p2"},
    )


def test_a_probe_that_meets_a_busy_upstream_waits_for_its_retry_after(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    clock = FakeClock()
    worker = opened(store, transport, emu, clock)
    emu.emulator.faults.set(FaultConfig(status=429, retry_after=7))
    clock.now += 5
    probe = worker.run_once()
    assert (probe.leased, probe.requests, probe.retried, probe.retry_at) == (10, 1, 10, T0 + 12)
    assert worker.circuit is not None and worker.circuit.is_open
    assert worker.circuit.state.probe_at == T0 + 12 and worker.circuit.state.probes == 0
    assert store.quarantine_count() == 0


def test_a_restarted_worker_resumes_an_open_circuit(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    clock = FakeClock()
    opened(store, transport, emu, clock)
    again = make(store, transport, clock)
    sent = emu.emulator.log.total
    assert again.run_once() == DeliveryReport(retry_at=T0 + 5, last_error="Bad Request")
    assert emu.emulator.log.total == sent
    assert again.metrics.snapshot().circuit_open is True


def test_without_a_circuit_refused_rows_are_quarantined_at_once(
    store: SQLiteStore, transport: HttpxTransport, emu: Any
) -> None:
    clock = FakeClock()
    refusing(store, emu, [row(i) for i in range(1, 11)])
    worker = DeliveryWorker(
        store, transport, rate=1e6, burst=10_000, clock=clock, sleep=clock.sleep, circuit=None
    )
    assert worker.run_once().failed == 10
    assert store.quarantine_count() == 10


def test_the_circuit_judges_batches_not_rows() -> None:
    circuit = Circuit(CircuitPolicy(batches=2, min_items=5, threshold=0.9, hold=60))
    assert circuit.judge(4, 4, 0.0, "x") == "neutral"  # too small to say anything
    assert circuit.judge(10, 9, 1.0, "x") == "bad"
    assert circuit.judge(10, 8, 2.0, "x") == "good"  # 80 %: the streak is broken
    assert circuit.judge(10, 10, 3.0, "x") == "bad"
    assert circuit.judge(3, 3, 50.0, "x") == "neutral"  # small batches do not extend it
    assert circuit.streak_expired(63.0) is False
    assert circuit.streak_expired(63.5) is True and circuit.streak == 0
    assert circuit.judge(10, 10, 70.0, "x") == "bad"
    assert circuit.streak_expired(125.0) is False  # a slow streak: 55 s after its last batch
    assert circuit.judge(5, 5, 125.0, "boom") == "open"
    assert circuit.state == CircuitState(
        state="open", opened_at=125.0, probe_at=130.0, trips=1, reason="boom"
    )
    assert circuit.probed(10, 9, 130.0) is False and circuit.state.probe_at == 140.0
    assert circuit.probed(3, 2, 140.0) is True
    assert circuit.state == CircuitState(trips=1)
    with pytest.raises(ValueError, match="threshold"):
        CircuitPolicy(threshold=0)
