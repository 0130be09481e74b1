"""Shared helpers for the monitor tests: a controllable clock, local HTTP receivers standing in
for Slack and PagerDuty, and a gateway with a monitor in front of the emulator."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from outbox_wait import drain
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.gateway.app import Delivery, Gateway, GatewayParts
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.ingest import to_write
from trackguard.monitor import Monitor, build_monitor
from trackguard.plan.loader import load_plan
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import open_store

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "examples" / "d2c-plan.yaml"
ALERTS = REPO / "examples" / "alerts.yaml"
SITE_ID, API_KEY = "mon-site", "mon-key"
#: Makes a fresh store target each call: a SQLite path or a PostgreSQL URL (``conftest.py``).
NewDB = Callable[[], str]
#: Wednesday 4 November 2026, 12:00 UTC: inside the example file's business hours.
T0 = dt.datetime(2026, 11, 4, 12, 0, tzinfo=dt.UTC).timestamp()


def commit_requests(db: str, requests: list[tuple[str, bytes]]) -> None:
    """Commit Track API requests (``PUT`` for a person path, else ``POST``) as the gateway
    would, checked without a plan, received at ``T0``."""
    store, checker = open_store(db), Checker(None)
    try:
        for path, body in requests:
            request = Request(
                method="PUT" if path.count("/") == 4 else "POST", path=path, body=body
            )
            store.commit([to_write(request, checker.check(request), T0)])
    finally:
        store.close()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """A local HTTP endpoint that records JSON bodies and answers ``statuses`` in turn."""

    server: ThreadingHTTPServer
    bodies: list[Any] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def take(self) -> list[Any]:
        with self.lock:
            out, self.bodies[:] = list(self.bodies), []
        return out


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length))
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if 200 <= status < 300:
                    receiver.bodies.append(body)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "success"}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@dataclass
class Monitored:
    """A running gateway with a monitor, its emulator upstream and its clock."""

    gateway: RunningServer
    upstream: RunningServer
    monitor: Monitor
    clock: FakeClock
    db: str | Path
    client: httpx.Client

    def send(self, path: str, body: dict[str, Any]) -> int:
        return self.client.post(path, json=body).status_code

    def drain(self, timeout: float = 15.0) -> None:
        """Wait until delivery settled every outbox row (so no backlog rule can see any)."""
        drain(self.db, timeout)


def run_gateway(db: str | Path, rules: Path, clock: FakeClock) -> Iterator[Monitored]:
    """The gateway of ``create_gateway`` (plan, store, delivery to the emulator), plus a
    monitor built by ``build_monitor`` whose thread never ticks by itself."""
    with start_in_thread(create_emulator(SITE_ID, API_KEY)) as upstream:
        store = open_store(db, synchronous="NORMAL")
        committer = GroupCommitter(store, max_delay=0.0)
        metrics = GatewayMetrics()
        transport = HttpxTransport(upstream.url, SITE_ID, API_KEY)
        worker = DeliveryWorker(store, transport, rate=1000.0)
        monitor = build_monitor(
            db, rules, clock=clock, delivery_snapshot=worker.metrics.snapshot, interval=3600
        )
        metrics.bind_store(store.outbox_stats, committer, worker.metrics.snapshot)
        metrics.registry.register(monitor.collector())
        parts = GatewayParts(
            checker=Checker(load_plan(PLAN)),
            store=store,
            committer=committer,
            auth=AuthConfig(upstream=Credentials(SITE_ID, API_KEY)),
            metrics=metrics,
            delivery=Delivery(worker.run, transport.close),
            monitor=monitor,
        )
        with (
            start_in_thread(Gateway(parts, clock=clock)) as gateway,
            httpx.Client(base_url=gateway.url, auth=(SITE_ID, API_KEY), timeout=10) as client,
        ):
            yield Monitored(gateway, upstream, monitor, clock, db, client)
