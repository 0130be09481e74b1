"""Dedupe keys: what makes two events the same event.

In order of preference: the plan's business key (``order_completed:A-1001``), the client's own
event ``id`` (``id:01J…``), or, for an event with neither, a hash of who it is about and what it
says (``retry:…``), which catches SDK retries of the same request within a short window.

A hash key starts with its event's Unix second when the event has a numeric timestamp
(``retry:1796577232:3f2a…``). Retries carry the same timestamp, so they still find the key;
what the prefix buys is where the key lands in the store's claims index. Live traffic arrives
in about timestamp order, so a commit's new keys sit next to each other at the end of the
index instead of at one random page each. A bare hash made the claims table the largest part
of every commit's write-ahead log (16 of 40 pages a commit of 16 requests, against 5 with the
prefix: ``bench/commit_pages.py``) and, once the table outgrows the cache, a disk read per new
key.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from trackguard.contract.operations import Identifier, Operation

_PERSON_KINDS: Final = {
    "id": "id",
    "email": "email",
    "cio_id": "cio_id",
    "anonymous_id": "anon",
    "phone": "phone",
}
RETRY_PREFIX: Final = "retry:"
ID_PREFIX: Final = "id:"
_encode = msgspec.json.Encoder(order="sorted")


def value_at(body: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    """The value at a ``data.…`` path of a v1 event body, a v2 item (``attributes.…``) or a
    Pipelines call (``properties.…``)."""
    if body is None:
        return None
    if path and path[0] == "data" and "data" not in body:
        if "attributes" in body:
            path = ("attributes", *path[1:])
        elif "properties" in body:  # a Pipelines track call
            path = ("properties", *path[1:])
    node: Any = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def fallback_key(op: Operation) -> str | None:
    """The key of an event without a business key: its ``id``, else its content's hash."""
    if not op.is_event or op.body is None:
        return None
    return event_key(op.body, op.identifier, op.action, op.name, op.data)


def event_key(
    body: dict[str, Any], identifier: Identifier | None, action: str, name: Any, data: Any
) -> str | None:
    """:func:`fallback_key` of the event with these parts (its ``body``, the person it is
    about, its action, name and data as the operation reads them)."""
    event_id = body.get("id")
    if isinstance(event_id, str) and event_id:
        return ID_PREFIX + event_id
    who = identifier.kind + ":" + identifier.value if identifier is not None else ""
    what = [who, action, name, data, body.get("timestamp")]
    try:
        digest = hashlib.sha256(_encode.encode(what)).hexdigest()[:32]
    except (msgspec.EncodeError, RecursionError, TypeError, ValueError):
        # ValueError: a lone surrogate (``\ud800``, which a JSON log line can carry in a path
        # or a string) has no UTF-8 to hash; such an event gets no content key.
        return None
    return RETRY_PREFIX + _time_prefix(body.get("timestamp")) + digest


def _time_prefix(timestamp: Any) -> str:
    """``1796577232:`` for an event at that Unix second (ten digits, so keys sort by time);
    nothing for a timestamp that is not a number of seconds in 1970-2286."""
    if (type(timestamp) is int or type(timestamp) is float) and 0 <= timestamp < 10**10:
        return f"{int(timestamp):010d}:"
    return ""


def person_key(op: Operation) -> str:
    """The ordering key: ``id:<v>``, ``email:<lowercased v>``, ``cio_id:<v>``, ``anon:<v>``,
    ``phone:<v>``, or ``route:<route>`` for calls that address no person.

    A merge is keyed by its primary person, the one that must exist before the merge lands.
    """
    kind, value = "", ""
    if op.identifier is not None:
        kind, value = op.identifier.kind, op.identifier.value
    elif op.action == "merge" and op.body is not None:
        primary = op.body.get("primary")
        if isinstance(primary, dict) and len(primary) == 1:
            ((kind, raw),) = primary.items()
            value = str(raw)
    prefix = _PERSON_KINDS.get(kind)
    if prefix is None:
        return f"route:{op.route}"
    return f"{prefix}:{value.lower() if kind == 'email' else value}"
