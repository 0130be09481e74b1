"""What the Pipelines API answers, and which calls it keeps, once the write key is judged.

* Success, and anything in permissive mode: ``200`` with ``{}`` (the spec's "empty object
  response"; the Python SDK counts only a 200 as success, so no other 2xx is ever used).
* Strict mode (``X-Strict-Mode: 1``): ``401`` for a missing or unknown key, ``400`` for any
  error, with ``{"code", "message", "meta": {"errors": [...]}}``: the Python SDK reads
  ``code`` and ``message`` (without them it retries a 400), customerio-node reads
  ``meta.errors``. The body shape is UNVERIFIED (no real strict answer has been captured).
* ``200 {}`` for the browser SDK's telemetry (``/v1/m``), which carries no key and no call.
* ``404`` for an unknown ``/v1/`` path and ``405`` for a method other than POST, in both modes.
"""

from __future__ import annotations

from typing import Final

import msgspec

from trackguard.contract.pipelines import messages as m
from trackguard.contract.pipelines.check import Call, Dropped, Issue, PipelinesResult, issue_of

OK_BODY: Final = b"{}"
CONTENT_TYPE: Final = "application/json; charset=utf-8"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The answer, the calls kept, and every call dropped with its reasons."""

    status: int
    body: bytes
    calls: tuple[Call, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    #: ``Allow`` header value for a 405.
    allow: str | None = None


def error_body(code: str, issues: tuple[Issue, ...] | list[Issue]) -> bytes:
    """``{"code","message","meta":{"errors":[...]}}``; ``message`` is the first error."""
    lines = [issue.line for issue in issues]
    return msgspec.json.encode(
        {"code": code, "message": lines[0] if lines else code, "meta": {"errors": lines}}
    )


def _all_dropped(result: PipelinesResult, why: Issue) -> tuple[Dropped, ...]:
    kept = [Dropped(index=c.index, body=c.body, errors=(why,)) for c in result.calls]
    return tuple(sorted([*result.dropped, *kept], key=lambda d: -1 if d.index is None else d.index))


def outcome(result: PipelinesResult, *, key_accepted: bool) -> Outcome:
    """The answer to ``result`` when its write key is (or is not) one the workspace knows."""
    if result.status == 404:
        return Outcome(status=404, body=error_body(m.NOT_FOUND.code, result.errors))
    if result.status == 405:
        body = error_body(m.METHOD_NOT_ALLOWED.code, result.errors)
        return Outcome(status=405, body=body, allow="POST")
    if result.route is not None and result.route.kind == "metrics":
        return Outcome(status=200, body=OK_BODY)  # browser telemetry: no key, nothing kept
    if not key_accepted:
        why = issue_of(m.UNAUTHORIZED)
        status, body = (401, error_body(why.code, [why])) if result.strict else (200, OK_BODY)
        return Outcome(status=status, body=body, dropped=_all_dropped(result, why))
    if result.strict and result.errors:
        body = error_body("invalid_request", result.errors)
        return Outcome(status=400, body=body, dropped=_all_dropped(result, result.errors[0]))
    return Outcome(status=200, body=OK_BODY, calls=result.calls, dropped=result.dropped)
