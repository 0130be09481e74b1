"""The gateway: a drop-in Track API endpoint in front of Customer.io.

Per request: authenticate (the upstream Basic credentials by default, so apps change only the
host), read the body with a cap, run the core, commit the accepted operations and every
quarantine record through the group committer, and only then answer, exactly as Customer.io
would (or 400 for plan rejections in strict mode). If the commit fails the answer is 503, so
the SDK retries: nothing that got a 2xx can be lost.

Traffic without credentials must cost almost nothing: a 401 is answered before the body is
read and the connection is closed, and it is counted and summarised (one log line per
interval), not logged line by line. The routes Customer.io serves without credentials have a
small body cap and a per-interval budget of quarantine records.

The Pipelines API (``POST /v1/...``) is served on the same listener by its own door
(:mod:`trackguard.gateway.pipelines`).

Operations endpoints: ``GET /healthz``, ``GET /readyz`` (store writable, delivery alive, the
request log writing), ``GET /metrics`` (Prometheus; optionally behind a bearer token).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

import msgspec

from trackguard.contract import messages
from trackguard.contract.operations import Request
from trackguard.contract.pipelines import is_pipelines_path
from trackguard.contract.responses import pretty
from trackguard.contract.routes import NoRoute, RouteMatch, match
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.gateway.config import AuthConfig
from trackguard.gateway.guards import OPEN_QUARANTINE_BUDGET, QUARANTINE_INTERVAL, Guards
from trackguard.gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.gateway.pipelines import PipelinesDoor
from trackguard.http.asgi import (
    BODY_TIMEOUT,
    CLOSE,
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    allow_header,
    app_body_timeout,
    bearer_matches,
    header,
    header_pairs,
    lifespan,
    parse_basic_auth,
    read_body,
    request_target,
    send_json,
    send_response,
    track_too_large,
    track_unauthorized,
)
from trackguard.http.guard import UNAVAILABLE_BODY
from trackguard.http.limits import ConnectionStats
from trackguard.http.requestlog import RequestLog, RequestLogPolicy, log_line
from trackguard.ingest import to_write
from trackguard.plan.model import DedupePolicy
from trackguard.redact import redact_headers
from trackguard.store.base import Store, StoreError, Write
from trackguard.store.group import GroupCommitter
from trackguard.store.view import GatewayState, keep_fresh

log = logging.getLogger("trackguard.gateway")

T = TypeVar("T")

_TIMEOUT: Final = pretty({"meta": {"errors": ["request body not received in time"]}})
_OPS_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
#: Body cap of the routes Customer.io serves without credentials (metrics, unsubscribe):
#: their bodies are a few fields.
OPEN_MAX_BODY: Final = 8 * 1024
#: Authorization values remembered once accepted (a client sends the same one on every
#: request, and decoding and comparing it again costs more than routing the request); past
#: this many the memory starts over. Refused values are never remembered. The lookup leaks no
#: timing about a secret: a dict compares the bytes of a key only when its full hash matches,
#: so a wrong value meets the constant-time comparisons of ``authenticate``, never a memcmp.
ACCEPTED_AUTH_VALUES: Final = 256
#: Bodies larger than this are checked on a worker thread, so a big v2 batch does not hold
#: the event loop (and every other request) while it is parsed and checked.
CHECK_IN_THREAD: Final = 64 * 1024


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
        self._worker = threading.Thread(target=self._guard, name=name, daemon=True)
        self.error: BaseException | None = None

    def _guard(self) -> None:
        try:
            self._run(self._stop)
        except BaseException as exc:  # surfaced through /readyz and the log
            self.error = exc
            log.exception("delivery stopped")

    def start(self) -> None:
        self._worker.start()

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self._close is not None:
            self._close()


@dataclass
class GatewayParts:
    """What a gateway is made of; ``create_gateway`` in ``build.py`` builds these from options."""

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
    #: Body cap of the routes served without credentials.
    open_max_body: int = OPEN_MAX_BODY
    #: Quarantine records the open routes may add per ``quarantine_interval`` seconds.
    open_quarantine_budget: int = OPEN_QUARANTINE_BUDGET
    quarantine_interval: float = QUARANTINE_INTERVAL
    #: Bodies over this many bytes are checked off the event loop.
    check_in_thread: int = CHECK_IN_THREAD
    #: Whether a failing request log fails ``/readyz`` (``fail``) or is only reported.
    request_log_policy: RequestLogPolicy = "best-effort"
    #: A bearer token ``/metrics`` asks for (None: open, like ``/healthz``).
    metrics_token: str | None = field(default=None, repr=False)
    #: Duplicate windows; retried events are answered 2xx and not delivered again (None: off).
    dedupe: DedupePolicy | None = field(default_factory=DedupePolicy)
    #: Identities and last orders learned from earlier traffic (loaded from the store).
    state: GatewayState = field(default_factory=GatewayState)
    #: Seconds between reads of what other writers (gateway replicas on the same store,
    #: identity imports) committed into ``state``; 0 turns it off.
    identity_refresh: float = 1.0
    #: Connection-limit trips and open connections, counted by the server (``/metrics``).
    connections: ConnectionStats = field(default_factory=ConnectionStats)
    #: The page origins the Pipelines door serves browsers from (None: any; docs/pipelines.md).
    pipelines_origins: tuple[str, ...] | None = None


class Gateway:
    """The ASGI application."""

    def __init__(
        self,
        parts: GatewayParts,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parts = parts
        self.clock = clock
        self.accepting = False
        self._stop_refresh = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self.guards = Guards(
            parts.metrics,
            open_quarantine_budget=parts.open_quarantine_budget,
            quarantine_interval=parts.quarantine_interval,
            clock=monotonic,
        )
        self.pipelines = PipelinesDoor(self)
        self._accepted: dict[bytes, str] = {}
        self._accepted_for = parts.auth
        region = {"url": parts.upstream_url, "region": parts.region, "environment_id": 0}
        self._region_answer = msgspec.json.encode(region) + b"\n"

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
        self.guards.flush()
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
            await self._ops(scope, path_only, send)
            return
        if is_pipelines_path(path_only):
            await self.pipelines.serve(scope, receive, send, started)
            return
        received_at = self.clock()
        hit = match(method, target)
        authorized, source = self._authenticate(scope, hit)
        if not authorized:
            await self._unauthorized(scope, method, hit, send, started)
            return
        is_open = isinstance(hit, RouteMatch) and not hit.route.auth
        limit = self.parts.open_max_body if is_open else self.parts.max_body
        try:
            body = await read_body(
                scope, receive, limit, timeout=app_body_timeout(scope, self.parts.body_timeout)
            )
        except BodyTooLarge:
            status, response = track_too_large(method, target)
            headers = [CLOSE, *allow_header(hit)]
            await send_response(send, status, response, headers=headers)
            self.after(scope, target, method, b"", status, response, source, None, started)
            return
        except BodyTimeout:
            await send_response(send, 408, _TIMEOUT, headers=[CLOSE])
            self.after(scope, target, method, b"", 408, _TIMEOUT, source, None, started)
            return
        except ClientDisconnected:
            return
        self.parts.metrics.body_bytes += len(body)
        request = Request(method=method, path=target, body=body, source=source)
        if len(body) > self.parts.check_in_thread:  # as ``check`` does, without its layers
            verdict, write = await asyncio.to_thread(self._decide, scope, request, hit, received_at)
        else:
            verdict, write = self._decide(scope, request, hit, received_at)
        if verdict.route == "GET /api/v1/accounts/region" and verdict.status == 200:
            answer = self._region_answer
            await send_response(send, 200, answer)
            self.after(scope, target, method, body, 200, answer, source, verdict, started)
            return
        if is_open and write.quarantine:
            write = self.guards.within_budget(write, verdict.route or "other")
        status, response = verdict.status, verdict.response
        if not await self.commit(write, verdict, source, received_at):
            status, response = 503, UNAVAILABLE_BODY
        await send_response(send, status, response, headers=allow_header(hit))
        self.after(scope, target, method, body, status, response, source, verdict, started)

    async def check(self, size: int, work: Callable[[], T]) -> T:
        """``work()`` for a body of ``size`` bytes: on a worker thread past ``check_in_thread``,
        so a big batch does not hold the event loop (and every other request)."""
        if size > self.parts.check_in_thread:
            return await asyncio.to_thread(work)
        return work()

    async def commit(
        self, write: Write, verdict: Verdict, source: str | None, received_at: float
    ) -> bool:
        """Commit ``write`` (if it holds anything) and count its duplicates; False when the
        store failed, so the answer must be a 503 the client retries."""
        if not write.outbox and not write.quarantine:
            return True
        try:
            duplicates = await self.parts.committer.submit(write)
        except StoreError as exc:
            self.guards.commit_failed(exc)
            return False
        self.guards.committed()
        if duplicates:
            self.parts.metrics.duplicates += duplicates
            if self.parts.monitor is not None:
                self.parts.monitor.observe_duplicates(
                    verdict, verdict.route or "other", source, duplicates, received_at
                )
        self.parts.state.learn(write)
        return True

    def _decide(
        self, scope: Scope, request: Request, hit: RouteMatch | NoRoute, received_at: float
    ) -> tuple[Verdict, Write]:
        """The verdict and what to commit for it: pure CPU, so a big body runs it off the loop."""
        parts = self.parts
        verdict = parts.checker.check(request, hit, now=received_at, state=parts.state)
        if verdict.contract_errors or verdict.rejected:
            # Quarantine keeps the (redacted) headers; clean requests do not pay for them.
            request = msgspec.structs.replace(request, headers=header_pairs(scope))
        return verdict, to_write(request, verdict, received_at, parts.dedupe)

    async def _unauthorized(
        self, scope: Scope, method: str, hit: RouteMatch | NoRoute, send: Send, started: float
    ) -> None:
        """401 before a byte of the body is read, then close: the rest is never read.

        Counted in ``/metrics`` and summarised in the log (one line per interval, by client
        address and route); never written to the request log line by line.
        """
        status, response = track_unauthorized()
        await send_response(send, status, response, headers=[CLOSE])
        route = hit.route.key if isinstance(hit, RouteMatch) else f"{method[:10]} (no route)"
        self.count_unauthorized(scope, status, route, started)

    def count_unauthorized(self, scope: Scope, status: int, route: str, started: float) -> None:
        """Count an answered unauthenticated request in ``/metrics`` and the monitor, and
        summarise it in the log by client address and ``route``."""
        self.parts.metrics.observe("other", status, None, time.perf_counter() - started)
        if self.parts.monitor is not None:
            self.parts.monitor.observe_request(None, "other", status, None, self.clock())
        client = scope.get("client")
        address = str(client[0]) if client else "-"
        self.guards.unauthorized(address, route)

    def _authenticate(self, scope: Scope, hit: RouteMatch | NoRoute) -> tuple[bool, str | None]:
        """Whether the request may pass, and the client's source name when it has one.

        Routes Customer.io serves without credentials (metrics, unsubscribe) pass unnamed.
        """
        if isinstance(hit, RouteMatch) and not hit.route.auth:
            return True, None
        value = header(scope, b"authorization")
        auth = self.parts.auth
        if auth is not self._accepted_for:  # new credentials: forget what the old accepted
            self._accepted, self._accepted_for = {}, auth
        if value is not None and (known := self._accepted.get(value)) is not None:
            return True, known
        given = parse_basic_auth(value) or ("", "")
        source = auth.authenticate(*given)
        if source is not None and value is not None:
            if len(self._accepted) >= ACCEPTED_AUTH_VALUES:
                self._accepted.clear()
            self._accepted[value] = source
        return source is not None, source

    def after(
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
        headers: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        """Count the answered request (metrics, monitor, request log); both doors call it.
        ``headers`` are the request's, when already decoded."""
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
                    headers=redact_headers(header_pairs(scope) if headers is None else headers),
                    body=body,
                    status=status,
                    response=response,
                    source=source,
                    outcome=None if verdict is None else verdict.outcome,
                    codes=() if verdict is None else verdict.codes,
                )
            )

    async def _ops(self, scope: Scope, path: str, send: Send) -> None:
        if path == "/healthz":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._readyz(send)
        elif not self._metrics_allowed(scope):
            status, response = track_unauthorized()
            await send_response(send, status, response, headers=[("www-authenticate", "Bearer")])
        else:
            body = await asyncio.to_thread(self.parts.metrics.render)
            await send_response(send, 200, body, content_type=METRICS_CONTENT_TYPE)

    async def _readyz(self, send: Send) -> None:
        problems: list[str] = []
        warnings: list[str] = []
        if not self.accepting:
            problems.append("not started or shutting down")
        if not await asyncio.to_thread(self.parts.store.healthy):
            problems.append("store is not writable")
        delivery = self.parts.delivery
        if delivery is not None and not delivery.alive:
            problems.append("delivery is not running")
        request_log = self.parts.request_log
        if request_log is not None and request_log.error is not None:
            text = f"request log is failing: {request_log.error}"
            (problems if self.parts.request_log_policy == "fail" else warnings).append(text)
        answer: dict[str, object] = {"status": "unavailable" if problems else "ready"}
        if problems:
            answer["problems"] = problems
        if warnings:
            answer["warnings"] = warnings
        await send_json(send, 503 if problems else 200, answer)

    def _metrics_allowed(self, scope: Scope) -> bool:
        """No token configured, or ``Authorization: Bearer <token>`` (constant-time compare)."""
        token = self.parts.metrics_token
        return token is None or bearer_matches(header(scope, b"authorization"), token)
