"""Customer.io's response bodies, byte for byte where they are known.

* 200: ``{}`` plus a newline (a live capture shows ``content-length: 3``).
* v1 400: ``{"meta":{"errors":[...]}}``, pretty-printed with a 2-space indent and a newline.
* merge 400: ``{"meta":{"error":"..."}}`` (one string).
* v2 400 ``{"errors":[{reason, field, message}]}``; v2 207 adds ``batch_index``.
* 401/404/405/413 bodies are UNVERIFIED; trackguard answers them in the v1 shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from trackguard.contract.check import ContractError, ContractResult

CONTENT_TYPE: Final = "application/json; charset=utf-8"
OK_BODY: Final = b"{}\n"


def pretty(obj: object) -> bytes:
    """Customer.io's formatting: 2-space indent, raw UTF-8, a trailing newline (the same bytes
    as ``json.dumps(indent=2, ensure_ascii=False)``, ten times faster)."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n"


def v1_errors(messages: Sequence[str]) -> bytes:
    return pretty({"meta": {"errors": list(messages)}})


def v1_error(message: str) -> bytes:
    return pretty({"meta": {"error": message}})


def v2_errors(errors: Sequence[ContractError], *, with_index: bool) -> bytes:
    items: list[dict[str, object]] = []
    for e in errors:
        item: dict[str, object] = {}
        if with_index and e.batch_index is not None:
            item["batch_index"] = e.batch_index
        item.update(reason=e.reason, field=e.field, message=e.message)
        items.append(item)
    return pretty({"errors": items})


def render(result: ContractResult) -> tuple[int, bytes]:
    """The status and body Customer.io answers for a contract result."""
    status = result.status
    if status == 204:
        return 204, b""
    if 200 <= status < 300 and not result.errors:
        return status, OK_BODY
    route = result.route
    if route is not None and route.api == "v2" and status in (400, 207):
        return status, v2_errors(result.errors, with_index=status == 207)
    if route is not None and route.action == "merge" and result.errors:
        return status, v1_error(result.errors[0].message)
    return status, v1_errors([e.message for e in result.errors])
