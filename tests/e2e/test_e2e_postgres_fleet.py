"""A fleet on one PostgreSQL schema: 2 gateways (``serve --no-deliver``) and 2 deliverers
(``trackguard deliver``) as real processes, the emulator as Customer.io, many persons' events
over loopback HTTP. Mid-run one gateway is killed with ``kill -9``, and one deliverer too, while
the emulator is answering a v2 batch it already applied (so its rows must go out again, by the
other deliverer, once the lease expires). Then every acknowledged event reached the emulator
once (re-sends carry the same ULID, which the emulator drops as duplicates), each person's
events arrived in order, and no 1-second window saw more than the shared rate allows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from e2e_env import API_KEY, SITE_ID
from test_e2e_crash import _free_port

from pg_server import fresh_schema
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.postgres import PostgresStore

RATE = 10  # burst 1: the shared bucket's bound is rate × t + max(burst, 2)
BOUND = RATE + 2
CLIENTS = 6
REQUESTS = 60  # per client; every fourth is an anonymous event (one upstream request each)
LEASE = 15.0  # `deliver --lease-seconds` (the shortest): a dead deliverer's rows come back after it
HANG_GUARD = 30.0
ENV = {**os.environ, "TRACKGUARD_SITE_ID": SITE_ID, "TRACKGUARD_API_KEY": API_KEY}


class Child:
    """A ``python -m trackguard ...`` child process, its stderr in a temporary file."""

    def __init__(self, *args: str) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trackguard", *args],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> str:
        """Stop it (SIGTERM, then SIGKILL) and return what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log.closed:
            return ""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.close()
        return text


class Gateway(Child):
    def __init__(self, db: str, upstream: str) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        super().__init__(
            "serve",
            "--no-deliver",
            "--db",
            db,
            "--listen",
            self.url.removeprefix("http://"),
            "--upstream",
            upstream,
        )
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            assert self.proc.poll() is None, self.close()
            time.sleep(0.05)
        raise AssertionError(f"gateway did not start: {self.close()}")


class Deliverer(Child):
    def __init__(self, db: str, upstream: str) -> None:
        super().__init__(
            "deliver",
            "--db",
            db,
            "--upstream",
            upstream,
            "--rate",
            str(RATE),
            "--lease-seconds",
            str(LEASE),
        )


class KillOnAnswer:
    """The emulator, with one trap: once armed, the first v2 batch that arrives on
    ``victim_port`` is applied, then its sender is killed before the answer goes out."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.victim: Child | None = None
        self.victim_port = 0
        self.armed = threading.Event()
        self.fired = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        trap = (
            scope["type"] == "http"
            and self.armed.is_set()
            and not self.fired.is_set()
            and scope["server"][1] == self.victim_port
            and scope["path"] == "/api/v2/batch"
        )
        if not trap:
            await self.emulator(scope, receive, send)
            return

        async def kill_then_send(message: Any) -> None:
            if message["type"] == "http.response.start" and not self.fired.is_set():
                assert self.victim is not None
                self.victim.kill()  # mid-batch: the emulator applied it, no answer came back
                self.fired.set()
            await send(message)

        await self.emulator(scope, receive, kill_then_send)


@dataclass
class Fleet:
    db: str
    emulator: Emulator
    trap: KillOnAnswer
    upstreams: list[RunningServer]
    children: list[Child]


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    emulator = create_emulator(SITE_ID, API_KEY)
    trap = KillOnAnswer(emulator)
    # One emulator behind two ports: each deliverer has its own, so the trap knows who sent.
    upstreams = [start_in_thread(trap), start_in_thread(trap)]
    with fresh_schema() as (url, schema):
        made = Fleet(f"{url}?schema={schema}", emulator, trap, upstreams, [])
        try:
            yield made
        finally:
            for child in made.children:
                child.close()
            for server in upstreams:
                server.stop()


def _body(n: int, anonymous: str | None) -> tuple[str, dict[str, Any]]:
    if anonymous is not None:
        return "/api/v1/events", {"name": "visited", "anonymous_id": anonymous, "data": {"n": n}}
    return "", {"name": "order_completed", "timestamp": 1764000000 + n, "data": {"n": n}}


@pytest.mark.slow
def test_a_fleet_on_postgres_loses_nothing_acknowledged_when_a_gateway_and_a_deliverer_die(
    fleet: Fleet,
) -> None:
    victim_upstream, survivor_upstream = (s.url for s in fleet.upstreams)
    gateways = [Gateway(fleet.db, victim_upstream) for _ in range(2)]
    fleet.children.extend(gateways)
    victim = Deliverer(fleet.db, victim_upstream)
    survivor = Deliverer(fleet.db, survivor_upstream)
    fleet.children.extend([victim, survivor])
    fleet.trap.victim, fleet.trap.victim_port = victim, fleet.upstreams[0].port

    acked: dict[str, list[int]] = defaultdict(list)  # person or anonymous id -> n, acked order
    lock = threading.Lock()
    answered: list[int] = []

    def client(c: int) -> None:
        http = [httpx.Client(base_url=g.url, auth=(SITE_ID, API_KEY), timeout=10) for g in gateways]
        alive = [0, 1]
        try:
            for k in range(REQUESTS):
                n = c * REQUESTS + k
                anonymous = f"anon_{c}_{k % 3}" if k % 4 == 3 else None
                who = anonymous or f"cus_{c}_{k % 5}"
                path, body = _body(n, anonymous)
                path = path or f"/api/v1/customers/{who}/events"
                while alive:
                    g = alive[k % len(alive)]
                    try:
                        r = http[g].post(path, json=body)
                    except httpx.TransportError:
                        alive.remove(g)  # that gateway died: not acknowledged, try the other
                        continue
                    with lock:
                        answered.append(r.status_code)
                        if r.status_code == 200:
                            acked[who].append(n)
                    break
                time.sleep(0.02)
        finally:
            for h in http:
                h.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    fleet.trap.armed.set()  # the victim deliverer dies answering its next v2 batch
    time.sleep(0.5)
    gateways[0].kill()
    for t in threads:
        t.join(HANG_GUARD * 4)
    assert fleet.trap.fired.wait(HANG_GUARD), "the victim deliverer sent no v2 batch"
    assert victim.proc.returncode == -signal.SIGKILL
    assert gateways[0].proc.returncode == -signal.SIGKILL
    total = sum(len(v) for v in acked.values())
    assert total > CLIENTS * REQUESTS // 2, f"the load did not get going: {answered}"

    store = PostgresStore(fleet.db, create=False)
    try:  # the victim's leased rows come back after the lease, then the survivor sends them
        deadline = time.monotonic() + LEASE + 4 * HANG_GUARD
        while store.outbox_stats().pending:
            assert time.monotonic() < deadline, store.outbox_stats()
            time.sleep(0.2)
        stats = store.outbox_stats()
    finally:
        store.close()
    assert stats.failed == 0

    events = fleet.emulator.state.events_view()
    ulids = [e["id"] for e in events if e["id"] is not None]
    assert len(ulids) == len(set(ulids))
    arrived: dict[str, list[int]] = defaultdict(list)
    for event in events:
        who = event.get("anonymous_id") or next(iter(event["identifier"].values()))
        arrived[who].append(int(event["data"]["n"]))
    for who, ns in acked.items():
        got = arrived[who]
        assert len(got) == len(set(got)), f"{who} got an event twice under two ids: {got}"
        assert [n for n in got if n in set(ns)] == ns, who  # every acknowledged one, in order
    upstream = fleet.emulator.stats()
    assert upstream["duplicates"] > 0  # the killed batch went out again, with the same ULIDs
    assert upstream["max_per_second"] <= BOUND, upstream
    assert "Traceback" not in survivor.close()
    assert "Traceback" not in gateways[1].close()
