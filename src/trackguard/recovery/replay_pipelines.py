"""Replay of Pipelines API records: the call a record holds, fixed, re-timed and judged the way
the gateway's Pipelines door judges it (:func:`trackguard.ingest.decide_pipelines`).

A record holds one call: the door keeps each dropped or rejected call on its own (``contract``,
``plan``), and delivery keeps a call ``/v1/batch`` refused in strict mode as the one-item batch
that would resend it (``upstream``). The call is replayed on its own documented path
(``/v1/track``, ``/v1/identify``...; the browser's ``/v1/t`` becomes ``/v1/track``), with its
``type`` set from the path it came on when it had none, and its ``messageId`` untouched: it is
Customer.io's event id and the call's dedupe key, so replaying twice delivers once.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate, route_for
from trackguard.contract.pipelines.routes import CALL_TYPES
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.durations import iso_time
from trackguard.ingest import decide_pipelines
from trackguard.plan.model import DedupePolicy
from trackguard.store.base import QuarantineRecord, Write
from trackguard.store.view import GatewayState

__all__ = ["call_of", "judge", "path_of", "retime"]

#: Call types that are events, with a time Customer.io keeps (and triggers campaigns on).
_EVENT_TYPES: Final = ("track", "page", "screen")
_encode: Final = msgspec.json.encode


def call_of(record: QuarantineRecord) -> dict[str, Any] | None:
    """The call ``record`` holds (with its ``type``), or None when it holds none: a body that
    is not JSON, not an object, or (``upstream``) not a batch of exactly one call."""
    try:
        decoded: Any = msgspec.json.decode(record.body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    if record.kind == "upstream":
        items = decoded.get("batch") if isinstance(decoded, dict) else None
        if not isinstance(items, list) or len(items) != 1:
            return None
        decoded = items[0]
    if not isinstance(decoded, dict):
        return None
    route = route_for(record.path)
    if route is not None and route.kind in CALL_TYPES and decoded.get("type") is None:
        decoded["type"] = route.kind
    return decoded


def path_of(call: dict[str, Any]) -> str:
    """``/v1/<type>`` for a call of a known type; else ``/v1/batch``, where the contract says
    what is wrong with its ``type`` as it does for any batch item."""
    kind = call.get("type")
    return f"/v1/{kind}" if isinstance(kind, str) and kind in CALL_TYPES else "/v1/batch"


def retime(call: dict[str, Any], received_at: float, now: float | None) -> None:
    """An event keeps when it happened: without a ``timestamp`` it gets the time the gateway
    received it (Customer.io would take the replay's time); ``now`` re-times it."""
    if call.get("type") not in _EVENT_TYPES:
        return
    if now is not None:
        call["timestamp"] = iso_time(now)
    elif call.get("timestamp") is None:
        call["timestamp"] = iso_time(received_at)


def judge(
    call: dict[str, Any],
    record: QuarantineRecord,
    checker: Checker,
    state: GatewayState,
    now: float,
    dedupe: DedupePolicy | None,
) -> tuple[Request, Verdict, Write]:
    """The request that replays ``call``, its verdict and its write, as the door makes them."""
    path = path_of(call)
    body = _encode(call if path != "/v1/batch" else {"batch": [call]})
    request = Request(method="POST", path=path, body=body, source=record.source)
    verdict, write = decide_pipelines(request, evaluate(request), checker, state, now, dedupe)
    return request, verdict, write
