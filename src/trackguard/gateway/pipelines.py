"""The gateway's Pipelines API door: ``POST /v1/...`` on the same listener as the Track API.

Per request: a write key in ``Authorization`` that is not the workspace's
(``TRACKGUARD_CDP_API_KEY``, compared in constant time) is refused before the body is read;
otherwise the body is read under the Pipelines cap, the Pipelines contract judges every call on
its own (gzip, the browser's body ``writeKey``), the core applies the tracking plan
(:mod:`trackguard.core.pipelines`), and the accepted calls, each with its dedupe key
(``pipelines:messageId:<id>`` unless the plan names a business key), are committed with a
quarantine record for every dropped or rejected call. Only then the answer goes out, as
Customer.io gives it: ``200 {}`` (one bad call never costs its batch), or with
``X-Strict-Mode: 1`` the contract's 400 (or 401 for a wrong key). A failed commit is a 503,
which every SDK retries.

The write key is never logged or quarantined: ``Authorization`` is redacted and the key is
removed from bodies (the browser's ``writeKey``) in the quarantine and the request log.
Without ``TRACKGUARD_CDP_API_KEY`` the door answers 404 to every ``/v1/`` path.

Browsers: every answer that settles a request carries the CORS headers of
:mod:`trackguard.gateway.cors`, and a retryable one (503, 408) none, so the browser SDK, which
resends only what fails like a network error, sends it again.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import (
    PipelinesResult,
    PipelinesRoute,
    evaluate,
    outcome,
    route_for,
)
from trackguard.contract.pipelines import messages as m
from trackguard.contract.pipelines.check import issue_of
from trackguard.contract.pipelines.responses import error_body
from trackguard.contract.pipelines.wire import header as header_of
from trackguard.contract.pipelines.wire import inflate, is_strict, write_key
from trackguard.core.verdict import Verdict
from trackguard.gateway.cors import REFUSED_BODY, Cors
from trackguard.http.asgi import (
    CLOSE,
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    app_body_timeout,
    header_pairs,
    read_body,
    request_target,
    send_response,
)
from trackguard.ingest import decide_pipelines
from trackguard.redact import REDACTED
from trackguard.store.base import Write

if TYPE_CHECKING:
    from trackguard.gateway.app import Gateway

#: The source name of Pipelines clients (they all use the workspace's write key).
SOURCE: Final = "default"
_OK: Final = b"{}"
_NOT_ENABLED: Final = msgspec.json.encode(
    {
        "code": "not_found",
        "message": "the Pipelines API is not enabled: set TRACKGUARD_CDP_API_KEY",
        "meta": {"errors": ["the Pipelines API is not enabled: set TRACKGUARD_CDP_API_KEY"]},
    }
)
_UNAVAILABLE: Final = msgspec.json.encode(
    {"code": "unavailable", "message": "service unavailable, retry",
     "meta": {"errors": ["service unavailable, retry"]}}
)  # fmt: skip
_TIMEOUT: Final = msgspec.json.encode(
    {"code": "timeout", "message": "request body not received in time",
     "meta": {"errors": ["request body not received in time"]}}
)  # fmt: skip


def redact_key(body: bytes, key: str | None) -> bytes:
    """``body`` with every occurrence of the write key replaced by ``[redacted]``."""
    return body.replace(key.encode(), REDACTED.encode()) if key else body


class PipelinesDoor:
    """Serves ``/v1/...`` for a :class:`~trackguard.gateway.app.Gateway`, sharing its store,
    committer, plan, metrics, monitor and request log."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.cors = Cors(gateway.parts.pipelines_origins)

    async def serve(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        gw = self.gateway
        parts = gw.parts
        method: str = scope["method"]
        target = request_target(scope)
        headers = header_pairs(scope)
        received_at = gw.clock()
        route = route_for(target)
        key = parts.auth.pipelines_key
        if key is None:
            await send_response(send, 404, _NOT_ENABLED)
            gw.after(scope, target, method, b"", 404, _NOT_ENABLED, None, None, started, headers)
            return
        origin = header_of(headers, "origin")
        if not self.cors.allows(origin) or (method.upper() == "OPTIONS" and route is not None):
            await self._cors_only(scope, target, method, route, origin, send, started, headers)
            return
        given = write_key(headers, None)
        if (
            given is not None
            and route is not None
            and route.kind != "metrics"
            and method.upper() == "POST"
            and not parts.auth.accepts_write_key(given.value)
        ):
            await self._unauthorized(scope, route.path, is_strict(headers), origin, send, started)
            return
        oversize = False
        try:
            timeout = app_body_timeout(scope, parts.body_timeout)
            body = await read_body(scope, receive, m.MAX_WIRE_BYTES, timeout=timeout)
        except BodyTooLarge:
            body, oversize = b"", True
        except BodyTimeout:
            await send_response(send, 408, _TIMEOUT, headers=[CLOSE])
            gw.after(scope, target, method, b"", 408, _TIMEOUT, None, None, started, headers)
            return
        except ClientDisconnected:
            return
        parts.metrics.body_bytes += len(body)
        request = Request(method=method, path=target, body=body, headers=headers, source=SOURCE)
        judge = functools.partial(evaluate, request, oversize=oversize)
        result = await gw.check(len(body), judge)
        accepted = parts.auth.accepts_write_key(
            None if result.write_key is None else result.write_key.value
        )
        extra = self.cors.headers(origin)
        if oversize:
            extra.append(CLOSE)
        if result.status != 200 or (route is not None and route.kind == "metrics"):
            done = outcome(result, key_accepted=accepted)
            extra += [] if done.allow is None else [("allow", done.allow)]
            await send_response(send, done.status, done.body, headers=extra)
            gw.after(
                scope, target, method, b"", done.status, done.body, None, None, started, headers
            )
            return
        if not accepted:
            assert route is not None
            await self._unauthorized(scope, route.path, result.strict, origin, send, started)
            return
        decide = functools.partial(self._decide, request, result, received_at, key)
        verdict, write = await gw.check(len(body), decide)
        status, response = verdict.status, verdict.response
        if not await gw.commit(write, verdict, SOURCE, received_at):
            # No CORS header: the browser SDK sees a network error and sends the call again.
            status, response, extra = 503, _UNAVAILABLE, []
        await send_response(send, status, response, headers=extra)
        # Inflated and redacted only for the request log: nothing else reads it.
        logged = b"" if parts.request_log is None else redact_key(_readable(body, headers), key)
        gw.after(scope, target, method, logged, status, response, SOURCE, verdict, started, headers)

    def _decide(
        self, request: Request, result: PipelinesResult, received_at: float, key: str
    ) -> tuple[Verdict, Write]:
        """The verdict and what to commit for it: pure CPU, so a big body runs it off the loop."""
        parts = self.gateway.parts
        return decide_pipelines(
            request, result, parts.checker, parts.state, received_at, parts.dedupe, secret=key
        )

    async def _cors_only(
        self,
        scope: Scope,
        target: str,
        method: str,
        route: PipelinesRoute | None,
        origin: str | None,
        send: Send,
        started: float,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        """A preflight's ``204``, or ``403`` for an origin outside ``--pipelines-origin``
        (before the body is read; counted and summarised like a wrong key)."""
        if self.cors.allows(origin):
            await send_response(send, 204, headers=self.cors.preflight(origin))
            self.gateway.after(scope, target, method, b"", 204, b"", None, None, started, headers)
            return
        await send_response(send, 403, REFUSED_BODY, headers=[CLOSE])
        path = "/v1/ (unknown path)" if route is None else route.path
        label = f"{path} (origin not allowed, answered 403)"
        self.gateway.count_unauthorized(scope, 403, label, started)

    async def _unauthorized(
        self, scope: Scope, path: str, strict: bool, origin: str | None, send: Send, started: float
    ) -> None:
        """A write key that is not the workspace's: Customer.io's answer (401 in strict mode,
        else ``200 {}`` with everything dropped), nothing kept, the connection closed; counted
        and summarised like the Track API's 401s, never logged line by line."""
        gw = self.gateway
        if strict:
            status, response = 401, error_body(m.UNAUTHORIZED.code, [issue_of(m.UNAUTHORIZED)])
        else:
            status, response = 200, _OK
        await send_response(send, status, response, headers=[*self.cors.headers(origin), CLOSE])
        # Summarised with the Track API's 401s; the permissive answer is named in the key.
        route = f"POST {path}" + ("" if strict else " (answered 200)")
        gw.count_unauthorized(scope, status, route, started)


def _readable(body: bytes, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The body as the request log keeps it: inflated when it came gzipped (capped)."""
    encoding = header_of(headers, "content-encoding")
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    raw, problem = inflate(body, encoding)
    return body if problem is not None else raw


__all__ = ["SOURCE", "PipelinesDoor", "redact_key"]
