"""``trackguard serve --workers 2`` as a real process tree: load shared by both workers,
``kill -9`` of the delivering worker mid-load loses nothing acknowledged, keeps per-person
order and the upstream rate, the supervisor restarts it, and SIGTERM stops everything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_env import API_KEY, SITE_ID, Upstream
from prometheus_client.parser import text_string_to_metric_families
from test_e2e_crash import Serve, _drain, _free_port, _order

from trackguard.emulator.faults import FaultConfig
from trackguard.store.sqlite import open_store

RATE = 20  # upstream requests per second: the token bucket's burst is max(1, RATE // 10)
BURST = 2


class Workers(Serve):
    """``python -m trackguard serve --workers 2 --admin-listen ...`` as a child process."""

    def __init__(self, db: Path, upstream: str, *extra: str) -> None:
        admin = _free_port()
        self.admin = f"http://127.0.0.1:{admin}"
        super().__init__(
            db,
            upstream,
            _free_port(),
            "--workers",
            "2",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--rate",
            str(RATE),
            *extra,
        )
        deadline = time.monotonic() + 30  # the port answers once one worker is ready
        while self.workers_up() != {"0": 1.0, "1": 1.0} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.workers_up() == {"0": 1.0, "1": 1.0}

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each sample of the supervisor's /metrics, by name, keyed by its ``worker`` label
        (or "" without one)."""
        text = httpx.get(self.admin + "/metrics", timeout=10).text
        found: dict[str, dict[str, float]] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[sample.name][sample.labels.get("worker", "")] = sample.value
        return found

    def workers_up(self) -> dict[str, float]:
        return self.metrics()["trackguard_worker_up"]

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.metrics()["trackguard_worker_pid"].items()}


@pytest.fixture
def started() -> Iterator[list[Workers]]:
    running: list[Workers] = []
    yield running
    for w in running:
        if w.proc.poll() is None:
            for pid in w.pids().values():
                _kill(pid)
        w.close()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_kill_9_of_the_delivering_worker_loses_nothing_and_it_comes_back(
    tmp_path: Path, upstream: Upstream, started: list[Workers]
) -> None:
    db = tmp_path / "tg.db"
    gw = Workers(db, upstream.server.url)
    started.append(gw)
    acked: dict[str, list[int]] = defaultdict(list)  # person -> acknowledged orders, in order
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        n = worker
        while not stop.is_set():
            # A new connection each time, so the kernel hands requests to either worker.
            person = f"cus_{worker}_{n % 5}"
            try:
                r = httpx.post(
                    f"{gw.url}/api/v1/customers/{person}/events",
                    json=_order(n),
                    auth=(SITE_ID, API_KEY),
                    timeout=10,
                )
            except httpx.TransportError:
                continue  # the worker died with this request: never acknowledged, send on
            if r.status_code == 200:
                with lock:
                    acked[person].append(n)
            n += 4

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()

    def load_reaches(n: int) -> None:
        """Wait until ``n`` requests were acknowledged (a busy machine takes longer)."""
        deadline = time.monotonic() + 60
        while sum(len(v) for v in acked.values()) < n:
            assert time.monotonic() < deadline, "the load did not get going"
            time.sleep(0.05)

    try:
        load_reaches(60)
        before = gw.metrics()["trackguard_worker_requests_total"]
        assert before["0"] > 0 and before["1"] > 0  # both workers take connections
        victim = gw.pids()["0"]  # slot 0 delivers: its leased rows come back after the lease
        os.kill(victim, signal.SIGKILL)
        load_reaches(120)
    finally:
        stop.set()
        for t in threads:
            t.join()
    total = sum(len(v) for v in acked.values())
    assert total > 100, "the load did not get going"

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and gw.metrics()["trackguard_worker_restarts_total"] != {
        "": 1.0
    }:
        time.sleep(0.1)
    assert gw.metrics()["trackguard_worker_restarts_total"] == {"": 1.0}
    pids = gw.pids()
    assert pids["0"] != victim and not _alive(victim)
    assert gw.workers_up() == {"0": 1.0, "1": 1.0}

    _drain(db)  # delivered by the restarted worker 0, which kept its role
    stats = upstream.get("/_emulator/stats")
    assert stats["max_per_second"] <= RATE + BURST
    arrived: dict[str, list[int]] = defaultdict(list)
    events = upstream.events(name="order_completed")
    ulids = [event["id"] for event in events]
    assert None not in ulids and len(ulids) == len(set(ulids))  # re-sends were dropped by id
    for event in events:
        (person,) = event["identifier"].values()
        arrived[person].append(int(event["data"]["order_id"].removeprefix("ORD-")))
    for person, orders in acked.items():
        got = arrived[person]
        assert len(got) == len(set(got)), f"{person} got an order twice: {got}"
        assert [n for n in got if n in set(orders)] == orders  # all of them, in order
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=30) == 0
    assert not any(_alive(pid) for pid in pids.values())


@pytest.mark.slow
def test_sigterm_stops_every_worker_after_their_requests(
    tmp_path: Path, upstream: Upstream, started: list[Workers]
) -> None:
    db = tmp_path / "tg.db"
    upstream.emulator.faults.set(FaultConfig(status=503))  # nothing is delivered: all stays
    log = tmp_path / "requests.jsonl"
    gw = Workers(db, upstream.server.url, "--request-log", str(log))
    started.append(gw)
    for n in range(20):
        r = httpx.post(
            f"{gw.url}/api/v1/customers/cus_{n}/events", json=_order(n), auth=(SITE_ID, API_KEY)
        )
        assert r.status_code == 200
    metrics = gw.metrics()
    assert sum(metrics["trackguard_worker_requests_total"].values()) == 20
    assert metrics["trackguard_requests_total"] == {"": 20.0}  # the two workers' counts, added
    pids = gw.pids()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=30) == 0
    assert not any(_alive(pid) for pid in pids.values())
    store = open_store(db)
    try:
        assert store.outbox_stats().pending == 40  # each order and its derived profile update
    finally:
        store.close()
    # Each worker logs to a file of its own; together they hold every request once.
    lines = [
        json.loads(line)
        for path in (log, tmp_path / "requests.w1.jsonl")
        if path.exists()
        for line in path.read_text().splitlines()
    ]
    assert sorted(line["path"] for line in lines) == sorted(
        f"/api/v1/customers/cus_{n}/events" for n in range(20)
    )
