"""The emulator's Pipelines API door: ``POST /v1/...`` on the same listener as the Track API.

Each request is answered by the Pipelines contract (``trackguard.contract.pipelines``):
permissive by default (``200 {}``, bad calls dropped one by one), strict with
``X-Strict-Mode: 1`` (401 for a write key the emulator does not know, 400 listing every
error). Faults are decided first, as for the Track API. Accepted calls are kept as sent
(:mod:`pipelines_state`) and applied to the workspace the way the Journeys destination maps
them (:mod:`pipelines_journeys`), both before the answer goes out. A write key sent in the body
(the browser SDK) is redacted in the request log like an ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate, outcome, route_for
from trackguard.contract.pipelines import messages as m
from trackguard.emulator.door import fault_answer, read_capped
from trackguard.emulator.log import record_line
from trackguard.emulator.pipelines_journeys import journeys_operations
from trackguard.http.asgi import Receive, Scope, Send, header_pairs, request_target, send_response
from trackguard.redact import REDACTED

if TYPE_CHECKING:
    from trackguard.emulator.app import Emulator

log = logging.getLogger("trackguard.emulator")

_decode: Final = msgspec.json.Decoder()
#: The browser SDK posts cross-origin (``text/plain``, so without a preflight): the answer must
#: allow any origin or the browser hides it from the SDK, which then retries.
_CORS: Final = ("access-control-allow-origin", "*")


def fault_body(status: int) -> bytes:
    """A Pipelines-style error body for an injected status (``code`` and ``message`` present,
    so the Python SDK treats an injected 4xx as final rather than retrying a KeyError)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Emulated fault"
    code = phrase.lower().replace(" ", "_")
    return msgspec.json.encode({"code": code, "message": phrase, "meta": {"errors": [phrase]}})


def redact_body_key(body: bytes) -> bytes:
    """The body with every ``writeKey`` (top level, and in each batch item as the browser SDK
    sends them) replaced by ``[redacted]``, JSON re-encoded; other bodies unchanged."""
    try:
        decoded = _decode.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body
    if not isinstance(decoded, dict):
        return body
    items = decoded.get("batch")
    holders = [decoded, *(items if isinstance(items, list) else ())]
    found = False
    for holder in holders:
        if isinstance(holder, dict) and "writeKey" in holder:
            holder["writeKey"] = REDACTED
            found = True
    return msgspec.json.encode(decoded) if found else body


def _answer(
    emulator: Emulator, method: str, path: str, body: bytes, headers: Any, oversize: bool
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """The contract's answer; accepted calls kept and applied, dropped ones kept."""
    request = Request(method=method, path=path, body=body, headers=headers)
    result = evaluate(request, oversize=oversize)
    done = outcome(result, key_accepted=emulator.pipelines_key_accepted(result.write_key))
    now = emulator.state.clock()
    fresh = emulator.pipelines.accept(done.calls, path=path, now=now, envelope=result.envelope)
    emulator.state.apply(op for call in fresh for op in journeys_operations(call))
    emulator.pipelines.drop(done.dropped, path=path, status=done.status, now=now)
    extra = [] if done.allow is None else [("allow", done.allow)]
    return done.status, done.body, extra


async def handle(emulator: Emulator, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one Pipelines API request."""
    emulator.log.arrival()
    received = emulator.state.clock()
    method: str = scope["method"]
    target = request_target(scope)
    path = target.partition("?")[0]
    route = route_for(path)
    read = await read_capped(scope, receive, send, m.MAX_WIRE_BYTES)
    if read is None:
        return
    body, oversize = read
    decision = emulator.faults.decide(path, None if route is None else route.path)
    if decision.status is not None:
        status, payload, headers = fault_answer(decision, fault_body)
    else:
        try:
            status, payload, headers = _answer(
                emulator, method, target, body, header_pairs(scope), oversize
            )
        except Exception:  # a bug must not hide the request: answer, log and record it
            log.exception("emulator failed on %s %s", method, target)
            status, payload = 500, fault_body(500)
    headers.append(_CORS)
    if oversize:
        headers.append(("connection", "close"))  # the unread rest of the body is in the way
    if decision.delay:
        await asyncio.sleep(decision.delay)
    recorded = redact_body_key(body) if b'"writeKey"' in body else body
    line = record_line(
        received, method, target, scope.get("headers", ()), recorded, status, payload
    )
    emulator.log.add(line, status)
    await send_response(send, status, payload, headers=headers)
