"""One verdict for a logged request of either API, for the offline doors (``check``, ``audit``).

A Track API request goes through the core :class:`~trackguard.core.pipeline.Checker`; a
Pipelines API request (any ``/v1/`` path) through the Pipelines contract and then the same plan
(:func:`trackguard.core.pipelines.check_calls`), as the gateway's Pipelines door does. Two
things differ from the gateway, because the input is a record of a request, not the request:

* The write key is not judged: logs and captures redact it, and the workspace's key is not
  known offline. Every request is judged as if its key were accepted.
* Logs and HAR files keep bodies decoded (the gateway's request log writes a gzip body
  inflated, its ``Content-Encoding`` header kept). A body that says ``gzip`` but does not start
  with gzip's magic bytes is read as already inflated; one that does is inflated as sent.
"""

from __future__ import annotations

from typing import Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import PipelinesResult, evaluate, is_pipelines_path
from trackguard.core.pipeline import Checker
from trackguard.core.pipelines import check_calls
from trackguard.core.verdict import Verdict
from trackguard.plan.model import Plan

_GZIP_MAGIC: Final = b"\x1f\x8b"


def as_logged(request: Request) -> Request:
    """``request`` without a ``Content-Encoding`` its (already inflated) body no longer has."""
    if request.body[:2] == _GZIP_MAGIC or not any(
        name.lower() == "content-encoding" for name, _ in request.headers
    ):
        return request
    headers = tuple(h for h in request.headers if h[0].lower() != "content-encoding")
    return msgspec.structs.replace(request, headers=headers)


class Judge:
    """Checks requests of both APIs against Customer.io's contracts and, if given, a plan.

    ``strict`` and ``fallback_keys`` are the :class:`Checker`'s (``fallback_keys`` applies to
    the Track API only: a Pipelines call's key is its messageId, which the caller can tell by
    :data:`trackguard.core.pipelines.MESSAGE_ID_PREFIX`).
    """

    __slots__ = ("checker",)

    def __init__(
        self, plan: Plan | None = None, *, strict: bool = False, fallback_keys: bool = True
    ) -> None:
        self.checker = Checker(plan, strict=strict, fallback_keys=fallback_keys)

    def check(self, request: Request) -> Verdict:
        """The verdict for ``request``, whichever API it is for."""
        if is_pipelines_path(request.path):
            return self.pipelines(request)[1]
        return self.checker.check(request)

    def pipelines(self, request: Request) -> tuple[PipelinesResult, Verdict]:
        """The Pipelines contract's result (with the calls it drops) and the verdict."""
        result = evaluate(as_logged(request))
        verdict = check_calls(result, self.checker.compiled, strict=self.checker.strict)
        return result, verdict
