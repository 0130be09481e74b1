"""Helpers for the Pipelines contract tests: requests as the official SDKs put them on the wire."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import Outcome, PipelinesResult, evaluate, outcome

WRITE_KEY = "wk-test"
BASIC = ("authorization", "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode())
STRICT = ("x-strict-mode", "1")


def wire(body: Any) -> bytes:
    """Compact JSON bytes, unless ``body`` is already bytes."""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


def request(
    path: str,
    body: Any,
    *headers: tuple[str, str],
    method: str = "POST",
    compress: bool = False,
) -> Request:
    raw = wire(body)
    hdrs = list(headers)
    if compress:
        raw = gzip.compress(raw)
        hdrs.append(("content-encoding", "gzip"))
    return Request(method=method, path=path, body=raw, headers=tuple(hdrs))


def check(path: str, body: Any, *headers: tuple[str, str], **kw: Any) -> PipelinesResult:
    return evaluate(request(path, body, *headers, **kw))


def answer(path: str, body: Any, *headers: tuple[str, str], **kw: Any) -> Outcome:
    """The outcome when the request's key is accepted whenever it has one."""
    result = check(path, body, *headers, **kw)
    return outcome(result, key_accepted=result.write_key is not None)


def codes(result: PipelinesResult) -> list[tuple[str, str]]:
    """``(code, field)`` of every error, in order."""
    return [(e.code, e.field) for e in result.errors]


def warnings(result: PipelinesResult) -> list[tuple[str, str]]:
    return [(w.code, w.field) for w in result.warnings]
