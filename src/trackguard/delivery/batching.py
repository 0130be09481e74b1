"""Packing leased outbox rows into upstream requests.

Rows arrive in ``seq`` order and requests keep that order, so two rows of one person are
always sent in the order they were received. Consecutive v2 items share one
``POST /api/v2/batch`` body ``{"batch": [...]}`` of at most ``max_batch_bytes`` (480,000 by
default: Customer.io's limit is "smaller than 500kb", and whether a kb is 1000 or 1024 bytes is
UNVERIFIED). A v1 row is one call of its own and closes the batch before it.

Consecutive Pipelines calls share one ``POST /v1/batch`` body of the Pipelines API the same
way (Customer.io: 500 KB per request, 32 KB per call); a change of API closes the batch.

An item larger than ``max_item_bytes`` can never be sent (Customer.io: "each of the requests
within the batch must also be 32kb or smaller"), so it is :class:`Rejected` here and goes to
quarantine with that reason instead of failing on every attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from trackguard.contract.messages import MAX_BATCH_ITEM_BYTES
from trackguard.contract.pipelines.messages import MAX_CALL_BYTES
from trackguard.store.base import OutboxRow

BATCH_PATH: Final = "/api/v2/batch"
#: The Pipelines API's batch endpoint; a single call is resent as a batch of one.
PIPELINES_BATCH_PATH: Final = "/v1/batch"
BATCH_PATHS: Final = frozenset({BATCH_PATH, PIPELINES_BATCH_PATH})
#: A single v2 item is a complete ``/api/v2/entity`` body: quarantined items are kept as such.
ENTITY_PATH: Final = "/api/v2/entity"
DEFAULT_MAX_BATCH_BYTES: Final = 480_000
_OPEN: Final = b'{"batch":['
_CLOSE: Final = b"]}"
_OVERHEAD: Final = len(_OPEN) + len(_CLOSE)


class _V1Call(msgspec.Struct, frozen=True):
    method: str
    path: str
    body: msgspec.Raw = msgspec.Raw(b"null")


class _Payload(msgspec.Struct, frozen=True):
    v2: msgspec.Raw = msgspec.Raw(b"")
    v1: _V1Call | None = None
    pipelines: msgspec.Raw = msgspec.Raw(b"")


_decode_payload: Final = msgspec.json.Decoder(_Payload).decode


class UpstreamRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request to Customer.io and the outbox rows it carries.

    ``items`` holds each row's v2 item JSON for a batch (so a batch can be split and rebuilt
    without re-encoding) and is empty for a v1 call.
    """

    method: str
    path: str
    body: bytes | None
    rows: tuple[OutboxRow, ...]
    items: tuple[bytes, ...] = ()

    @property
    def is_batch(self) -> bool:
        return self.path in BATCH_PATHS

    @property
    def api(self) -> str:
        """``pipelines`` for the Pipelines API (``/v1/...``), else ``track``."""
        return "pipelines" if self.path.startswith("/v1/") else "track"


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """A row that cannot be sent as it is: quarantine it with ``code`` and ``reason``."""

    row: OutboxRow
    code: str
    reason: str
    method: str
    path: str
    body: bytes


def _unreadable(row: OutboxRow, reason: str) -> Rejected:
    """An outbox row whose payload cannot be sent at all (it goes to the quarantine)."""
    return Rejected(
        row=row, code="unreadable_payload", reason=reason, method="", path="", body=row.payload
    )


def entity_request(row: OutboxRow, item: bytes) -> UpstreamRequest:
    """One v2 item alone, as the ``/api/v2/entity`` request that would send it."""
    return UpstreamRequest(method="POST", path=ENTITY_PATH, body=item, rows=(row,))


def alone(request: UpstreamRequest, index: int) -> UpstreamRequest:
    """The request that sends row ``index`` of ``request`` by itself."""
    if request.path == PIPELINES_BATCH_PATH:
        one = slice(index, index + 1)
        return batch_request(request.rows[one], request.items[one], path=PIPELINES_BATCH_PATH)
    if request.is_batch:
        return entity_request(request.rows[index], request.items[index])
    return request


def batch_size(items: Sequence[bytes]) -> int:
    """Bytes of the ``{"batch": [...]}`` body holding ``items``."""
    return _OVERHEAD + sum(len(i) for i in items) + max(len(items) - 1, 0)


def batch_request(
    rows: Sequence[OutboxRow], items: Sequence[bytes], *, path: str = BATCH_PATH
) -> UpstreamRequest:
    return UpstreamRequest(
        method="POST",
        path=path,
        body=_OPEN + b",".join(items) + _CLOSE,
        rows=tuple(rows),
        items=tuple(items),
    )


def split(request: UpstreamRequest) -> tuple[UpstreamRequest, UpstreamRequest]:
    """The two halves of a batch of two or more items, first half first."""
    half = len(request.items) // 2
    rows, items, path = request.rows, request.items, request.path
    return (
        batch_request(rows[:half], items[:half], path=path),
        batch_request(rows[half:], items[half:], path=path),
    )


def pack(
    rows: Sequence[OutboxRow],
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    max_item_bytes: int = MAX_BATCH_ITEM_BYTES,
) -> tuple[list[UpstreamRequest], list[Rejected]]:
    """Requests for ``rows`` (in order) and the rows that can never be sent."""
    requests: list[UpstreamRequest] = []
    rejected: list[Rejected] = []
    batch_rows: list[OutboxRow] = []
    batch_items: list[bytes] = []
    size = _OVERHEAD - 1  # the first item adds no comma
    batch_path = BATCH_PATH

    def flush() -> None:
        nonlocal size
        if batch_items:
            requests.append(batch_request(batch_rows, batch_items, path=batch_path))
            batch_rows.clear()
            batch_items.clear()
        size = _OVERHEAD - 1

    for row in rows:
        try:
            payload = _decode_payload(row.payload)
        except msgspec.DecodeError as exc:
            rejected.append(_unreadable(row, f"unreadable outbox payload: {exc}"))
            continue
        if payload.v1 is not None:
            flush()
            body = bytes(payload.v1.body)
            requests.append(
                UpstreamRequest(
                    method=payload.v1.method,
                    path=payload.v1.path,
                    body=None if body == b"null" else body,
                    rows=(row,),
                )
            )
            continue
        item, path, limit = bytes(payload.v2), BATCH_PATH, max_item_bytes
        if not item:
            item, path, limit = bytes(payload.pipelines), PIPELINES_BATCH_PATH, MAX_CALL_BYTES
        if not item:
            rejected.append(_unreadable(row, "outbox payload has neither v1 nor v2"))
            continue
        if len(item) > limit:
            reason = (
                f"batch item is {len(item)} bytes; Customer.io accepts at most "
                f"{limit} bytes per item"
            )
            rejected.append(
                Rejected(
                    row=row,
                    code="item_too_large",
                    reason=reason,
                    method="POST",
                    path=ENTITY_PATH if path == BATCH_PATH else path,
                    body=item if path == BATCH_PATH else _OPEN + item + _CLOSE,
                )
            )
            continue
        if batch_items and (path != batch_path or size + 1 + len(item) > max_batch_bytes):
            flush()
        batch_path = path
        batch_rows.append(row)
        batch_items.append(item)
        size += 1 + len(item)
    flush()
    return requests, rejected
