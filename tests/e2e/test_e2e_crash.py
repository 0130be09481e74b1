"""Durability of the real ``trackguard serve`` process: ``kill -9`` under concurrent load loses
nothing that got a 2xx, and SIGTERM drains before exiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_env import API_KEY, PLAN, SITE_ID, Upstream

from trackguard.emulator.faults import FaultConfig
from trackguard.store.sqlite import open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Serve:
    """``python -m trackguard serve`` as a child process."""

    def __init__(self, db: Path, upstream: str, port: int, *extra: str) -> None:
        env = {**os.environ, "TRACKGUARD_SITE_ID": SITE_ID, "TRACKGUARD_API_KEY": API_KEY}
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trackguard",
                "serve",
                "--plan",
                str(PLAN),
                "--db",
                str(db),
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                upstream,
                "--rate",
                "200",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.proc.kill()
        _, err = self.proc.communicate()  # reads and closes the pipe
        raise AssertionError(f"gateway did not start: {err!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def serve(tmp_path: Path, upstream: Upstream) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.close()


def _order(n: int) -> dict[str, object]:
    return {
        "name": "order_completed",
        "timestamp": 1764000000 + n,
        "data": {"order_id": f"ORD-{n}", "total": 10.0, "currency": "USD"},
    }


def _drain(db: Path, timeout: float = 120.0) -> None:
    """Wait for delivery; rows leased when the process died come back after the lease (60 s)."""
    store = open_store(db)
    try:
        deadline = time.monotonic() + timeout
        while store.outbox_stats().pending and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.outbox_stats().pending == 0
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_acknowledged(
    tmp_path: Path, upstream: Upstream, serve: list[Serve]
) -> None:
    db, port = tmp_path / "tg.db", _free_port()
    first = Serve(db, upstream.server.url, port)
    serve.append(first)
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=first.url, auth=(SITE_ID, API_KEY), timeout=5) as http:
            n = worker
            while not stop.is_set():
                try:
                    r = http.post(f"/api/v1/customers/cus_{n % 50}/events", json=_order(n))
                except httpx.TransportError:
                    return  # the gateway died: this request was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.append(n)
                n += 8

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 100, "the load did not get going"

    second = Serve(db, upstream.server.url, port)
    serve.append(second)
    _drain(db)
    stored = Counter(e["data"]["order_id"] for e in upstream.events(name="order_completed"))
    missing = [n for n in acked if stored[f"ORD-{n}"] == 0]
    doubled = [k for k, c in stored.items() if c > 1]
    assert missing == []
    assert doubled == []


@pytest.mark.slow
def test_sigterm_finishes_and_restart_resumes_delivery(
    tmp_path: Path, upstream: Upstream, serve: list[Serve]
) -> None:
    db, port = tmp_path / "tg.db", _free_port()
    upstream.emulator.faults.set(FaultConfig(status=503))  # nothing can be delivered yet
    first = Serve(db, upstream.server.url, port)
    serve.append(first)
    with httpx.Client(base_url=first.url, auth=(SITE_ID, API_KEY)) as http:
        for n in range(20):
            assert http.post("/api/v1/customers/cus_1/events", json=_order(n)).status_code == 200
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=20) == 0
    store = open_store(db)
    assert store.outbox_stats().pending == 40  # each order and its derived profile update
    store.close()

    upstream.emulator.faults.set(FaultConfig())
    second = Serve(db, upstream.server.url, port)
    serve.append(second)
    _drain(db)
    orders = sorted(e["data"]["order_id"] for e in upstream.events(name="order_completed"))
    assert orders == sorted(f"ORD-{n}" for n in range(20))
