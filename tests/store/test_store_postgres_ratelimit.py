"""Two deliverers on one PostgreSQL schema share one upstream rate: measured at the emulator,
no 1-second window sees more than ``rate + max(burst, 2)`` requests, though each deliverer
alone may send at the full rate; a deliverer given a higher rate is held to the lowest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec
import psycopg
import pytest

from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.convert import to_outbox_rows
from trackguard.delivery.ratelimit import SharedBucket
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.store.base import OutboxRow, Write
from trackguard.store.postgres import PostgresStore

SITE, KEY = "rate-site", "rate-key"
RATE = 40.0  # burst 4: chunks of 2 from a shared bucket of 2
BOUND = RATE + 4
ROWS = 200  # anonymous events: one upstream request each, 5 s at the shared rate
HANG_GUARD = 120.0


@pytest.fixture
def stores(pg_stores: Callable[[int], list[PostgresStore]]) -> list[PostgresStore]:
    return pg_stores(3)


def _anonymous(n: int) -> tuple[OutboxRow, ...]:
    """An anonymous event as the gateway queues it: a v1 call, one upstream request."""
    body = msgspec.json.encode({"name": "visited", "anonymous_id": f"anon-{n}", "data": {"n": n}})
    verdict = Checker().check(Request(method="POST", path="/api/v1/events", body=body))
    assert verdict.status == 200, verdict.response
    rows = to_outbox_rows(verdict.operations, received_at=time.time(), source="test")
    assert [b"v1" in row.payload[:6] for row in rows] == [True]
    return rows


@pytest.mark.parametrize(
    ("rates", "bound"),
    [
        ((RATE, RATE), BOUND),
        # 160/s has burst 16 (chunks of 8, capacity 8): 40/s binds, plus the larger burst.
        ((4 * RATE, RATE), RATE + 16),
    ],
    ids=["same-rate", "one-given-more"],
)
def test_two_deliverers_never_exceed_the_shared_rate(
    stores: list[PostgresStore],
    pg_schema: tuple[str, str],
    rates: tuple[float, float],
    bound: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer, *deliverer_stores = stores
    writer.commit([Write(outbox=_anonymous(n)) for n in range(ROWS)])
    emulator = create_emulator(SITE, KEY)
    with start_in_thread(emulator) as server:
        transports = [HttpxTransport(server.url, SITE, KEY) for _ in deliverer_stores]
        workers = [
            # Small leases, so both deliverers always have rows to send.
            DeliveryWorker(store, transport, rate=rate, lease_size=5, linger=0.0)
            for store, transport, rate in zip(deliverer_stores, transports, rates, strict=True)
        ]
        assert all(isinstance(w.bucket, SharedBucket) for w in workers)
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + HANG_GUARD
            while writer.outbox_stats().pending:
                assert time.monotonic() < deadline, writer.outbox_stats()
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(HANG_GUARD)
            for transport in transports:
                transport.close()
        stats = emulator.stats()
    sent = [w.metrics.snapshot().requests_total for w in workers]
    assert sum(sent) == ROWS and min(sent) > 0  # both delivered, each row once
    assert writer.outbox_stats().delivered == ROWS
    assert stats["requests"] == ROWS
    assert stats["max_per_second"] <= bound, stats
    held = [r.getMessage() for r in caplog.records if "below this deliverer" in r.getMessage()]
    if rates[0] != rates[1]:
        assert held == [
            "the shared track bucket refills at 40/s, below this deliverer's rate of 160/s:"
            " another deliverer on this database was given a lower rate (the lowest binds)"
        ]
    else:
        assert held == []
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        keys = conn.execute(
            f'SELECT key FROM "{schema}".meta WHERE key LIKE %s ORDER BY key', ("ratelimit.%",)
        ).fetchall()
    assert keys == [("ratelimit.track",)]
