"""Delivery through an outage, over real loopback HTTP to the Customer.io emulator.

The emulator fails every request with 503, then 429 with ``Retry-After``, then answers so slowly
that the worker times out (the emulator applies the request anyway, as a real server may), then
flaps; then it recovers. Afterwards every outbox row is delivered, every person and event
exists exactly once (event ids are ULIDs, duplicates were dropped by id), per-person order held,
and no 1-second window ever saw more than ``rate + burst`` requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.convert import to_outbox_rows
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.store.base import Write
from trackguard.store.sqlite import SQLiteStore

SITE, KEY = "outage-site", "outage-key"
RATE, BURST = 20.0, 2
PEOPLE_V1, PEOPLE_V2, ANONYMOUS = 12, 8, 40
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
CHECKER = Checker()


def commit_request(
    store: SQLiteStore, method: str, path: str, body: Any, key: str | None = None
) -> int:
    """Check a request, convert its operations and commit them, as the gateway does."""
    verdict = CHECKER.check(Request(method=method, path=path, body=json.dumps(body).encode()))
    assert verdict.status == 200, verdict.response
    ops = [msgspec.structs.replace(op, dedupe_key=key) for op in verdict.operations]
    rows = to_outbox_rows(ops, received_at=time.time(), source="test")
    store.commit([Write(outbox=rows)])
    return len(rows)


def fill(store: SQLiteStore) -> int:
    rows = 0
    for i in range(1, PEOPLE_V1 + 1):
        path = f"/api/v1/customers/{i}"
        rows += commit_request(store, "PUT", path, {"email": f"p{i}@example.com", "n": i})
        rows += commit_request(
            store, "POST", f"{path}/events", {"name": "viewed", "data": {"n": i}}
        )
    for _ in range(2):  # a client retry the core did not catch: one order, two rows
        rows += commit_request(
            store,
            "POST",
            "/api/v1/customers/1/events",
            {"name": "order_completed", "data": {"order_id": "A-1"}, "timestamp": 1_700_000_000},
            key="order_completed:A-1",
        )
    for k in range(ANONYMOUS):
        rows += commit_request(
            store, "POST", "/api/v1/events", {"name": "visited", "anonymous_id": f"anon-{k}"}
        )
    batch = []
    for i in range(PEOPLE_V1 + 1, PEOPLE_V1 + PEOPLE_V2 + 1):
        ident = {"email": f"p{i}@example.com"}
        batch.append(
            {"type": "person", "action": "identify", "identifiers": ident, "attributes": {"n": i}}
        )
        batch.append(
            {
                "type": "person",
                "action": "event",
                "identifiers": ident,
                "name": "viewed",
                "attributes": {"n": i},
            }
        )
    rows += commit_request(store, "POST", "/api/v2/batch", {"batch": batch})
    return rows


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "outbox.db", synchronous="NORMAL")
    yield store
    store.close()


@pytest.mark.slow
def test_nothing_is_lost_through_an_outage_and_everything_lands_once(
    store: SQLiteStore,
) -> None:
    total = fill(store)
    assert total == 2 * PEOPLE_V1 + 2 + ANONYMOUS + 2 * PEOPLE_V2
    emulator = create_emulator(SITE, KEY, faults={"status": 503})
    with start_in_thread(emulator) as server, httpx.Client(base_url=server.url) as control:

        def stats() -> dict[str, Any]:
            result: dict[str, Any] = control.get("/_emulator/stats").json()
            return result

        def fault(config: dict[str, Any]) -> None:
            assert control.post("/_emulator/faults", json=config).status_code == 200

        transport = HttpxTransport(server.url, SITE, KEY, timeout=0.3)
        worker = DeliveryWorker(
            store,
            transport,
            rate=RATE,
            burst=BURST,
            lease_size=25,
            backoff_base=0.05,
            backoff_max=0.4,
            idle_sleep=0.05,
        )
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: stats()["by_status"].get("503", 0) >= 3)
            fault({"status": 429, "retry_after": 1})
            wait_for(lambda: stats()["by_status"].get("429", 0) >= 1)
            fault({"latency_ms": 600})  # applied upstream, but the worker times out
            wait_for(lambda: worker.metrics.snapshot().requests_by_status.get("error", 0) >= 2)
            fault({"status": 503, "rate": 0.3, "seed": 7})
            wait_for(lambda: store.outbox_stats().delivered >= total // 3)
            fault({})
            wait_for(lambda: store.outbox_stats().pending == 0)
        finally:
            stop.set()
            thread.join(5)
            transport.close()
        assert not thread.is_alive()

        outbox = store.outbox_stats()
        assert (outbox.pending, outbox.delivered, outbox.failed) == (0, total, 0)
        assert store.quarantine_count() == 0

        people = control.get("/_emulator/people").json()
        expected = {
            (str(i) if i <= PEOPLE_V1 else None, f"p{i}@example.com", i)
            for i in range(1, PEOPLE_V1 + PEOPLE_V2 + 1)
        }
        assert {(p["id"], p["email"], p["attributes"]["n"]) for p in people} == expected
        assert len(people) == PEOPLE_V1 + PEOPLE_V2

        events = control.get("/_emulator/events").json()
        assert len(events) == PEOPLE_V1 + 1 + ANONYMOUS + PEOPLE_V2
        assert all(ULID.fullmatch(e["id"]) for e in events)
        assert len({e["id"] for e in events}) == len(events)
        names = [e["name"] for e in events]
        assert (names.count("viewed"), names.count("visited"), names.count("order_completed")) == (
            PEOPLE_V1 + PEOPLE_V2,
            ANONYMOUS,
            1,
        )
        # Per-person order held: every event found its person, identified before it.
        for i in range(1, PEOPLE_V1 + PEOPLE_V2 + 1):
            mine = control.get("/_emulator/events", params={"person": f"p{i}@example.com"}).json()
            assert [e["name"] for e in mine if e["name"] == "viewed"] == ["viewed"]

        final = stats()
        assert final["events"] == len(events)
        assert final["duplicates"] >= 1  # the retried order, at least; resent timeouts too
        assert final["max_per_second"] <= RATE + BURST

        # Retry-After was honoured: nothing arrived within 1 s after the 429.
        log = control.get("/_emulator/requests").json()
        times = [datetime.fromisoformat(e["time"]).timestamp() for e in log]
        first_429 = next(i for i, e in enumerate(log) if e["status"] == 429)
        assert times[first_429 + 1] - times[first_429] >= 1.0 - 0.002  # ms-rounded log times

        by_status = worker.metrics.snapshot().requests_by_status
        assert {"200", "429", "503", "error"} <= set(by_status)
        print(
            f"\noutage: {total} rows, {sum(by_status.values())} requests {by_status}, "
            f"max {final['max_per_second']} req in 1 s (limit {RATE:.0f}+{BURST}), "
            f"duplicates dropped upstream {final['duplicates']}"
        )
