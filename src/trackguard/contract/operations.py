"""Typed Track API requests and operations.

A :class:`Request` is what arrived (method, path, headers, body bytes). Parsing turns it into
:class:`Operation` values: one for a v1 call or a v2 ``/entity`` call, one per item of a v2
``/batch``; a Pipelines API call becomes one too (``api="pipelines"``, its body the call as
sent). An operation keeps its JSON body as decoded, so what trackguard sends on is exactly
what the client sent unless the tracking plan says to fix it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Api = Literal["v1", "v2", "pipelines"]

#: Actions that carry an event name and event data.
EVENT_ACTIONS = frozenset({"event", "page", "screen", "anonymous_event"})


class Request(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One HTTP request as it reached trackguard (or as a log recorded it).

    Strings, bytes and tuples of strings can close no reference cycle, so the cyclic garbage
    collector does not track a request (``gc=False``): one fewer tracked object per request.
    """

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: Where the request came from (a client key name, a file and line): provenance only.
    source: str | None = None


class Identifier(msgspec.Struct, frozen=True, gc=False):
    """Who an operation addresses, classified the way Customer.io classifies it."""

    kind: str  # id | email | cio_id | anonymous_id | phone | object | cio_object_id | delivery
    value: str


class Operation(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One Track API operation.

    ``body`` is the v1 request body or the v2 item. ``data_key`` names the key of ``body`` that
    holds event data or attributes (``"data"`` for v1 events, ``"attributes"`` for v2), or is
    ``""`` when the attributes are the body itself (v1 identify). The struct is frozen; a fix
    produces a new operation with a new body.

    Not tracked by the cyclic garbage collector (``gc=False``): its body is decoded JSON, which
    never refers back to the operation, so no cycle passes through one (the body itself, a
    dict, stays tracked).
    """

    api: Api
    type: str  # person | object | delivery | segment | form | metric | workspace
    action: str
    route: str
    method: str
    path: str
    identifier: Identifier | None = None
    body: dict[str, Any] | None = None
    batch_index: int | None = None
    data_key: str | None = None
    #: What makes this event unique: the plan's business key (``order_completed:A-1001``),
    #: else the client's event id (``id:…``), else a content hash (``retry:…``).
    dedupe_key: str | None = None
    #: An order total to add to the person's lifetime value (the plan's ``derive.total``).
    derive_total: float | None = None
    #: The key of ``body`` that holds the event name (a Pipelines track call names it ``event``).
    name_key: str = "name"

    @property
    def is_event(self) -> bool:
        return self.action in EVENT_ACTIONS

    @property
    def name(self) -> Any:
        """The event name as sent (any JSON value), or None."""
        return None if self.body is None else self.body.get(self.name_key)

    @property
    def data(self) -> Any:
        """Event data or identify attributes as sent (any JSON value), or None."""
        if self.body is None or self.data_key is None:
            return None
        if self.data_key == "":
            return self.body
        return self.body.get(self.data_key)

    @property
    def data_path(self) -> str:
        """JSON path prefix of the data, as violation paths show it."""
        prefix = "" if self.batch_index is None else f"batch[{self.batch_index}]."
        if self.data_key:
            return prefix + self.data_key
        return prefix.rstrip(".") or "$"
