"""``serve --workers N``: N gateway processes on one port, one supervisor.

The supervisor binds the public socket once and every worker inherits it and accepts on it
(the kernel hands each connection to one of them). A worker that dies leaves the queue of
connections not yet accepted on the shared socket, where the others take them; with one
``SO_REUSEPORT`` socket per worker those would be reset.

Roles: slot 0 runs in-process delivery (so ``--rate`` stays one limit for the host), the
retention pruner beside it, and the monitor's store-wide duties (data health, alert
evaluation); every worker counts its own requests into the store's per-minute counters, which
add up. A restarted worker keeps its slot, so the roles come back with it.

Metrics: each worker serves its own figures on a private loopback admin socket the supervisor
bound for it; the supervisor's ``--admin-listen`` answers ``/metrics`` with the workers'
figures combined (:mod:`trackguard.http.promsum`) plus its own (restarts, workers up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from trackguard.contract.responses import pretty
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import load_auth
from trackguard.gateway.metrics import CONTENT_TYPE
from trackguard.http.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    bearer_matches,
    header,
    send_json,
    send_response,
    track_unauthorized,
)
from trackguard.http.limits import ConnectionLimits
from trackguard.http.promsum import merge
from trackguard.http.runner import ADMIN_MAX_CONNECTIONS, base_url, bind, run, start_in_thread
from trackguard.http.supervisor import Supervisor, stop_on_signals
from trackguard.logs import FORMAT, configure_logging
from trackguard.monitor.monitor import Monitor

log = logging.getLogger("trackguard.workers")

#: Seconds the supervisor waits for one worker's answer to a scrape or a readiness probe.
WORKER_TIMEOUT: Final = 5.0
_NOT_FOUND: Final = pretty(
    {"meta": {"errors": ["not found: this listener serves /healthz, /readyz and /metrics"]}}
)


@dataclass(frozen=True)
class Serving:
    """How every worker serves: the public address, TLS, the connection limits, the log level."""

    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    limits: ConnectionLimits
    log_level: int = logging.INFO


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process is started with (pickled: the sockets pass as descriptors)."""

    slot: int
    options: GatewayOptions
    serving: Serving
    sock: socket.socket
    admin_sock: socket.socket
    parent: int


def role_options(options: GatewayOptions, slot: int) -> GatewayOptions:
    """Slot 0 keeps delivery, the pruner and alerting; the others only serve and count, each
    into a request log of its own (one file rotated by several processes would lose lines)."""
    if slot == 0:
        return options
    log = options.request_log
    return dataclasses.replace(
        options,
        deliver=False,
        alerts=None,
        singletons=False,
        request_log=None if log is None else worker_log(log, slot),
    )


def worker_log(path: Path, slot: int) -> Path:
    """Worker ``slot``'s request log beside ``path``: ``a.jsonl`` -> ``a.w1.jsonl``."""
    return path.with_name(f"{path.stem}.w{slot}{path.suffix}")


def worker_main(spec: WorkerSpec) -> None:
    """A worker process: the gateway of its role, served on the inherited sockets."""
    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor only, which forwards it
    configure_logging(spec.serving.log_level, f"%(process)d {FORMAT}")
    threading.Thread(target=_exit_with_parent, args=(spec.parent,), daemon=True).start()
    app = create_gateway(role_options(spec.options, spec.slot))
    s = spec.serving
    run(
        app,
        s.host,
        s.port,
        tls_cert=s.tls_cert,
        tls_key=s.tls_key,
        limits=s.limits,
        stats=app.parts.connections,
        sock=spec.sock,
        admin_sock=spec.admin_sock,
    )


def _exit_with_parent(parent: int) -> None:
    """Stop gracefully when the supervisor is gone (killed -9): nobody would restart us."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


class WorkersAdmin:
    """The supervisor's admin app: health, readiness and metrics of all workers together."""

    def __init__(
        self, supervisor: Supervisor, admin_urls: list[str], metrics_token: str | None
    ) -> None:
        self._supervisor = supervisor
        self._urls = admin_urls
        self._token = metrics_token
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._readyz(send)
        elif path != "/metrics":
            await send_response(send, 404, _NOT_FOUND)
        elif self._token is not None and not bearer_matches(
            header(scope, b"authorization"), self._token
        ):
            status, response = track_unauthorized()
            await send_response(send, status, response, headers=[("www-authenticate", "Bearer")])
        else:
            await send_response(send, 200, await self._metrics(), content_type=CONTENT_TYPE)

    async def _ask(self, path: str) -> list[httpx.Response | str]:
        """Each worker's answer to ``GET path``, or why there is none."""
        if self._client is None:  # one for every scrape: making a client costs ~30 ms
            headers = {} if self._token is None else {"authorization": f"Bearer {self._token}"}
            self._client = httpx.AsyncClient(timeout=WORKER_TIMEOUT, headers=headers)
        client = self._client

        async def one(url: str) -> httpx.Response | str:
            try:
                return await client.get(url + path)
            except httpx.HTTPError as exc:
                return f"no answer ({type(exc).__name__})"

        return list(await asyncio.gather(*(one(url) for url in self._urls)))

    async def _readyz(self, send: Send) -> None:
        """Ready while at least one worker is: any of them can take the port's connections."""
        answers = await self._ask("/readyz")
        problems = []
        for slot, answer in enumerate(answers):
            if isinstance(answer, str):
                problems.append(f"worker {slot}: {answer}")
            elif answer.status_code != 200:
                found = answer.json().get("problems", [])
                problems.append(f"worker {slot}: {'; '.join(found) or answer.status_code}")
        ready = len(problems) < len(answers)
        body: dict[str, object] = {"status": "ready" if ready else "unavailable"}
        if problems:
            body["warnings" if ready else "problems"] = problems
        await send_json(send, 200 if ready else 503, body)

    async def _metrics(self) -> bytes:
        answers = await self._ask("/metrics")
        texts = [a.text for a in answers if not isinstance(a, str) and a.status_code == 200]
        up = GaugeMetricFamily(
            "trackguard_worker_up", "1 when the worker answered this scrape", labels=["worker"]
        )
        served = CounterMetricFamily(
            "trackguard_worker_requests",
            "Requests each worker answered (they share the port)",
            labels=["worker"],
        )
        for slot, answer in enumerate(answers):
            ok = not isinstance(answer, str) and answer.status_code == 200
            up.add_metric([str(slot)], 1.0 if ok else 0.0)
            if not isinstance(answer, str) and ok:
                served.add_metric([str(slot)], _requests(answer.text))
        pids = GaugeMetricFamily(
            "trackguard_worker_pid",
            "The process id of each worker (as in the log)",
            labels=["worker"],
        )
        for status in self._supervisor.status:
            if status.pid is not None:
                pids.add_metric([str(status.slot)], status.pid)
        restarts = CounterMetricFamily(
            "trackguard_worker_restarts",
            "Workers started again after dying",
            value=self._supervisor.restarts,
        )
        extra: list[Metric] = [up, served, pids, restarts]
        return await asyncio.to_thread(merge, texts, extra)


def _requests(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "trackguard_requests":
            return sum(s.value for s in family.samples if s.name == "trackguard_requests_total")
    return 0.0


def _wait_healthy(urls: list[str], stopping: Callable[[], bool]) -> bool:
    """Wait until every worker answers /healthz (False if the supervisor stopped first)."""
    pending = list(urls)
    with httpx.Client(timeout=WORKER_TIMEOUT) as client:
        while pending and not stopping():
            try:
                if client.get(pending[0] + "/healthz").status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return not pending


def serve_workers(
    options: GatewayOptions,
    serving: Serving,
    workers: int,
    *,
    admin_listen: tuple[str, int] | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve with ``workers`` processes until SIGTERM or SIGINT; the exit status.

    The options are checked here first (a bad plan or config fails once, before any worker
    starts), which also creates or migrates the store before the workers open it.
    """
    checked = create_gateway(dataclasses.replace(options, deliver=False)).parts
    checked.store.close()
    if isinstance(checked.monitor, Monitor):
        checked.monitor.stop()
    if checked.request_log is not None:
        checked.request_log.close()
    metrics_token = load_auth(options.config).metrics_token
    sock = bind(serving.host, serving.port)
    admin_socks = [bind("127.0.0.1", 0) for _ in range(workers)]
    urls = [base_url("127.0.0.1", s.getsockname()[1], tls=False) for s in admin_socks]
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per scrape or probe
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
    parent = os.getpid()

    def spawn(slot: int) -> multiprocessing.process.BaseProcess:
        spec = WorkerSpec(slot, options, serving, sock, admin_socks[slot], parent)
        return context.Process(target=worker_main, args=(spec,), name=f"trackguard-worker-{slot}")

    supervisor = Supervisor(spawn, workers)
    admin = None
    if admin_listen is not None:
        app: ASGIApp = WorkersAdmin(supervisor, urls, metrics_token)
        limits = dataclasses.replace(serving.limits, max_connections=ADMIN_MAX_CONNECTIONS)
        admin = start_in_thread(app, *admin_listen, limits=limits)
    url = base_url(serving.host, sock.getsockname()[1], tls=serving.tls_cert is not None)

    def announce() -> None:
        if _wait_healthy(urls, supervisor.stopping) and ready is not None:
            ready(url)

    restore = stop_on_signals(supervisor)
    threading.Thread(target=announce, name="trackguard-workers-ready", daemon=True).start()
    try:
        return supervisor.run()
    finally:
        restore()
        if admin is not None:
            admin.stop()
        sock.close()
        for s in admin_socks:
            s.close()
