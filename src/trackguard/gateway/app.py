"""The gateway: a drop-in Track API endpoint in front of Customer.io.

Per request: authenticate (the upstream Basic credentials by default, so apps change only the
host), read the body with a cap, run the core, commit the accepted operations and every
quarantine record through the group committer, and only then answer, exactly as Customer.io
would (or 400 for plan rejections in strict mode). If the commit fails the answer is 503, so
the SDK retries: nothing that got a 2xx can be lost.

Operations endpoints: ``GET /healthz``, ``GET /readyz`` (store writable, delivery alive),
``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import msgspec

from trackguard.contract import messages
from trackguard.contract.operations import Request
from trackguard.contract.responses import pretty
from trackguard.contract.routes import NoRoute, RouteMatch, match
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.gateway.config import AuthConfig
from trackguard.gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http.asgi import (
    BODY_TIMEOUT,
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    lifespan,
    parse_basic_auth,
    read_body,
    request_target,
    send_json,
    send_response,
    track_too_large,
    track_unauthorized,
)
from trackguard.http.limits import ConnectionStats
from trackguard.http.requestlog import RequestLog, log_line
from trackguard.ingest import to_write
from trackguard.plan.model import DedupePolicy
from trackguard.redact import redact_headers
from trackguard.store.base import Store, StoreError
from trackguard.store.group import GroupCommitter
from trackguard.store.view import GatewayState, keep_fresh

log = logging.getLogger("trackguard.gateway")

_UNAVAILABLE: Final = (
    b'{\n  "meta": {\n    "errors": [\n      "service unavailable, retry"\n    ]\n  }\n}\n'
)
_TIMEOUT: Final = pretty({"meta": {"errors": ["request body not received in time"]}})
_OPS_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


def _headers(scope: Scope) -> tuple[tuple[str, str], ...]:
    return tuple(
        (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in scope["headers"]
    )


class RequestObserver(Protocol):
    """Something that watches every answered request (the monitor): O(1), never raises."""

    def observe_request(
        self,
        verdict: Verdict | None,
        route: str,
        status: int,
        source: str | None,
        now: float,
    ) -> None: ...

    def observe_duplicates(
        self, verdict: Verdict, route: str, source: str | None, count: int, now: float
    ) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Delivery:
    """In-process delivery: a worker's ``run(stop)`` loop on its own thread."""

    def __init__(
        self,
        run: Callable[[threading.Event], None],
        close: Callable[[], None] | None = None,
        name: str = "trackguard-delivery",
    ) -> None:
        self._run = run
        self._close = close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guard, name=name, daemon=True)
        self.error: BaseException | None = None

    def _guard(self) -> None:
        try:
            self._run(self._stop)
        except BaseException as exc:  # surfaced through /readyz and the log
            self.error = exc
            log.exception("delivery stopped")

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._close is not None:
            self._close()


@dataclass
class GatewayParts:
    """What a gateway is made of; ``create_gateway`` in ``app.py`` builds these from options."""

    checker: Checker
    store: Store
    committer: GroupCommitter
    auth: AuthConfig
    metrics: GatewayMetrics
    delivery: Delivery | None = None
    request_log: RequestLog | None = None
    monitor: RequestObserver | None = None
    region: str = "us"
    upstream_url: str = "https://track.customer.io"
    max_body: int = messages.MAX_BODY_BYTES
    body_timeout: float = BODY_TIMEOUT
    #: Duplicate windows; retried events are answered 2xx and not delivered again (None: off).
    dedupe: DedupePolicy | None = field(default_factory=DedupePolicy)
    #: Identities and last orders learned from earlier traffic (loaded from the store).
    state: GatewayState = field(default_factory=GatewayState)
    #: Seconds between reads of what other writers (gateway replicas on the same store,
    #: identity imports) committed into ``state``; 0 turns it off.
    identity_refresh: float = 1.0
    #: Connection-limit trips and open connections, counted by the server (``/metrics``).
    connections: ConnectionStats = field(default_factory=ConnectionStats)


class Gateway:
    """The ASGI application."""

    def __init__(self, parts: GatewayParts, clock: Callable[[], float] = time.time) -> None:
        self.parts = parts
        self.clock = clock
        self.accepting = False
        self._stop_refresh = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None

    async def _startup(self) -> None:
        self.parts.committer.start()
        if self.parts.monitor is not None:
            self.parts.monitor.start()
        if self.parts.delivery is not None:
            self.parts.delivery.start()
        if self.parts.identity_refresh > 0:
            self._stop_refresh = asyncio.Event()
            self._refresher = asyncio.create_task(
                keep_fresh(
                    self.parts.state,
                    self.parts.store,
                    self.parts.identity_refresh,
                    self._stop_refresh,
                ),
                name="trackguard-identity-refresh",
            )
        self.accepting = True

    async def _shutdown(self) -> None:
        """Finish: commit what was acknowledged, stop delivery, close the store."""
        self.accepting = False
        if self._refresher is not None:
            self._stop_refresh.set()
            await self._refresher  # finishes a read in flight, then stops
            self._refresher = None
        await self.parts.committer.close()
        if self.parts.delivery is not None:
            await asyncio.to_thread(self.parts.delivery.stop)
        if self.parts.monitor is not None:
            await asyncio.to_thread(self.parts.monitor.stop)
        if self.parts.request_log is not None:
            self.parts.request_log.close()
        self.parts.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, startup=self._startup, shutdown=self._shutdown)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method: str = scope["method"]
        target = request_target(scope)
        path_only = scope["path"]
        if path_only in _OPS_PATHS and method == "GET":
            await self._ops(path_only, send)
            return
        received_at = self.clock()
        hit = match(method, target)
        authorized, source = self._authenticate(scope, hit)
        if not authorized:
            status, response = track_unauthorized()
            await send_response(send, status, response)
            self._after(scope, target, method, b"", status, response, None, None, started)
            return
        try:
            body = await read_body(
                scope, receive, self.parts.max_body, timeout=self.parts.body_timeout
            )
        except BodyTooLarge:
            status, response = track_too_large(method, target)
            await send_response(send, status, response, headers=[("connection", "close")])
            self._after(scope, target, method, b"", status, response, source, None, started)
            return
        except BodyTimeout:
            await send_response(send, 408, _TIMEOUT, headers=[("connection", "close")])
            self._after(scope, target, method, b"", 408, _TIMEOUT, source, None, started)
            return
        except ClientDisconnected:
            return
        request = Request(method=method, path=target, body=body, source=source)
        verdict = self.parts.checker.check(request, hit, now=received_at, state=self.parts.state)
        if verdict.route == "GET /api/v1/accounts/region" and verdict.status == 200:
            region = {
                "url": self.parts.upstream_url,
                "region": self.parts.region,
                "environment_id": 0,
            }
            answer = msgspec.json.encode(region) + b"\n"
            await send_response(send, 200, answer)
            self._after(scope, target, method, body, 200, answer, source, verdict, started)
            return
        if verdict.contract_errors or verdict.rejected:
            # Quarantine keeps the (redacted) headers; clean requests do not pay for them.
            request = msgspec.structs.replace(request, headers=_headers(scope))
        write = to_write(request, verdict, received_at, self.parts.dedupe)
        status, response = verdict.status, verdict.response
        if write.outbox or write.quarantine:
            try:
                duplicates = await self.parts.committer.submit(write)
                if duplicates:
                    self.parts.metrics.duplicates += duplicates
                    if self.parts.monitor is not None:
                        self.parts.monitor.observe_duplicates(
                            verdict, verdict.route or "other", source, duplicates, received_at
                        )
                self.parts.state.learn(write)
            except StoreError:
                log.exception("commit failed; answering 503 so the client retries")
                status, response = 503, _UNAVAILABLE
        await send_response(send, status, response)
        self._after(scope, target, method, body, status, response, source, verdict, started)

    def _authenticate(self, scope: Scope, hit: RouteMatch | NoRoute) -> tuple[bool, str | None]:
        """Whether the request may pass, and the client's source name when it has one.

        Routes Customer.io serves without credentials (metrics, unsubscribe) pass unnamed.
        """
        if isinstance(hit, RouteMatch) and not hit.route.auth:
            return True, None
        given = parse_basic_auth(header(scope, b"authorization")) or ("", "")
        source = self.parts.auth.authenticate(*given)
        return source is not None, source

    def _after(
        self,
        scope: Scope,
        target: str,
        method: str,
        body: bytes,
        status: int,
        response: bytes,
        source: str | None,
        verdict: Verdict | None,
        started: float,
    ) -> None:
        route = verdict.route if verdict is not None and verdict.route else "other"
        self.parts.metrics.observe(route, status, verdict, time.perf_counter() - started)
        now = self.clock()
        if self.parts.monitor is not None:
            self.parts.monitor.observe_request(verdict, route, status, source, now)
        if self.parts.request_log is not None:
            self.parts.request_log.write(
                log_line(
                    ts=now,
                    method=method,
                    path=target,
                    headers=redact_headers(_headers(scope)),
                    body=body,
                    status=status,
                    response=response,
                    source=source,
                    outcome=None if verdict is None else verdict.outcome,
                    codes=() if verdict is None else verdict.codes,
                )
            )

    async def _ops(self, path: str, send: Send) -> None:
        if path == "/healthz":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            problems = []
            if not self.accepting:
                problems.append("not started or shutting down")
            if not await asyncio.to_thread(self.parts.store.healthy):
                problems.append("store is not writable")
            delivery = self.parts.delivery
            if delivery is not None and not delivery.alive:
                problems.append("delivery is not running")
            if problems:
                await send_json(send, 503, {"status": "unavailable", "problems": problems})
            else:
                await send_json(send, 200, {"status": "ready"})
        else:
            body = await asyncio.to_thread(self.parts.metrics.render)
            await send_response(send, 200, body, content_type=METRICS_CONTENT_TYPE)
