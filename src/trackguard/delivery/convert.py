"""Accepted operations → outbox rows: what delivery will send, decided once, at commit time.

Pure: the gateway calls :func:`to_outbox_rows` on a verdict's operations and commits the rows.
Deciding the payload here (not at send time) means a retried row is sent byte for byte the
same, so the event ``id`` a client saw acknowledged is the one Customer.io deduplicates on.

* v2 items pass through as ``{"v2": item}``.
* v1 operations that a v2 batch item expresses exactly become one (``docs/delivery.md`` has the
  table); batching them is what keeps a busy workspace under Customer.io's request rate.
* Everything else stays a v1 call ``{"v1": {"method", "path", "body"}}``: anonymous events
  (v2 ``anonymous_id`` identifiers are UNVERIFIED in the spec), segments, forms, metrics,
  unsubscribe, and any v1 body carrying a key the conversion does not know (nothing is dropped).
* Pipelines calls go as they were accepted, ``{"pipelines": call}``, to the Pipelines API.
* ``GET /api/v1/accounts/region`` is answered by the gateway and never queued.

Every person event gets a ULID ``id`` (the client's own when it sent one) and an integer
``timestamp``: an event without one is stamped with the time trackguard received it, because
Customer.io would otherwise stamp the time *delivery* reached it, and a delivery delayed by an
outage would move the event in time (and past the 72-hour window for triggering campaigns).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from trackguard.contract.operations import Operation
from trackguard.contract.routes import RouteMatch, match
from trackguard.core.keys import RETRY_PREFIX, person_key
from trackguard.delivery.ulid import new_ulid, ulid_from_key
from trackguard.plan.model import DedupePolicy
from trackguard.store.base import OutboxRow

#: A converted v1 operation larger than this stays a v1 call. Customer.io's per-item limit is
#: "32kb" (1000- or 1024-based is UNVERIFIED); the v1 route always works, so be conservative.
SAFE_V2_ITEM_BYTES: Final = 32_000
NEVER_QUEUED: Final = frozenset({"get_region"})

_encode: Final = msgspec.json.encode
_V2_IDENTIFIERS: Final = frozenset({"id", "email", "cio_id"})
_EVENT_KEYS: Final = frozenset({"name", "data", "timestamp", "id", "type"})
_BODYLESS: Final = frozenset({"delete", "suppress", "unsuppress", "delete_device"})


def to_outbox_rows(
    operations: Iterable[Operation],
    *,
    received_at: float,
    source: str | None,
    dedupe: DedupePolicy | None = None,
    route: str | None = None,
    plan_version: str | None = None,
) -> tuple[OutboxRow, ...]:
    """The outbox rows for a request's accepted operations, in order (pure).

    ``route`` and ``plan_version`` are the accepting verdict's, kept on every row so a row
    Customer.io rejects at delivery is quarantined with them.

    With a ``dedupe`` policy, event rows claim their dedupe key (business keys and event ids
    for ``window``, content hashes for ``retry_window``) and orders carry what the store needs
    to derive profile attributes.
    """
    rows = []
    for op in operations:
        claim_until = None
        if dedupe is not None and op.dedupe_key is not None:
            window = (
                dedupe.retry_window if op.dedupe_key.startswith(RETRY_PREFIX) else dedupe.window
            )
            claim_until = received_at + window
        row = to_outbox_row(
            op,
            received_at=received_at,
            source=source,
            route=route,
            plan_version=plan_version,
            claim_until=claim_until,
        )
        if row is not None:
            rows.append(row)
    return tuple(rows)


def _derive(op: Operation, v2_item: Any, received_at: float) -> bytes | None:
    """What the store needs to update the person's profile for a new order, or None.

    The order's time is the ``timestamp`` of the v2 item it is queued as (``v2_item``); a
    row that stays a v1 or Pipelines call has none, and counts from its receipt."""
    ident = op.identifier
    if op.derive_total is None or ident is None or ident.kind not in _V2_IDENTIFIERS:
        return None
    ts = v2_item.get("timestamp") if isinstance(v2_item, dict) else None
    if not isinstance(ts, int) or isinstance(ts, bool):
        ts = int(received_at)
    return _encode({"identifiers": {ident.kind: ident.value}, "total": op.derive_total, "ts": ts})


def to_outbox_row(
    op: Operation,
    *,
    received_at: float,
    source: str | None,
    route: str | None = None,
    plan_version: str | None = None,
    claim_until: float | None = None,
) -> OutboxRow | None:
    """One operation's outbox row, or None for a read-only call that is never delivered.

    With ``claim_until`` the row claims its dedupe key until then, and a v2-expressible
    order carries what the store derives the person's profile from."""
    if op.action in NEVER_QUEUED:
        return None
    if op.api == "pipelines":
        row = _pipelines_row(op, received_at, source, route, plan_version)
        if claim_until is None:
            return row
        derive = _derive(op, None, received_at)
        return msgspec.structs.replace(row, claim_until=claim_until, derive=derive)
    body = op.body
    if op.type == "person" and op.is_event and body is not None:
        body = with_event_fields(body, dedupe_key=op.dedupe_key, received_at=received_at)
    v2_item: Any = body
    if op.api == "v2":
        payload = b'{"v2":' + _encode(body) + b"}"
    else:
        v2_item, payload = _v1_payload(op, body)
    name = body.get("name") if body is not None and op.is_event else None
    return OutboxRow(
        received_at=received_at,
        person=person_key(op),
        payload=payload,
        dedupe_key=op.dedupe_key,
        event_name=name if isinstance(name, str) else None,
        source=source,
        route=route,
        plan_version=plan_version,
        batch_index=op.batch_index,
        claim_until=claim_until,
        derive=None if claim_until is None else _derive(op, v2_item, received_at),
    )


def _pipelines_row(
    op: Operation,
    received_at: float,
    source: str | None,
    route: str | None,
    plan_version: str | None,
) -> OutboxRow:
    """A Pipelines call as accepted, sent on unchanged: its messageId is Customer.io's event
    id and its ISO-8601 ``timestamp`` the time of the event, so neither is touched."""
    name = op.name if op.is_event else None
    return OutboxRow(
        received_at=received_at,
        person=person_key(op),
        payload=b'{"pipelines":' + _encode(op.body) + b"}",
        dedupe_key=op.dedupe_key,
        batch_index=op.batch_index,
        event_name=name if isinstance(name, str) else None,
        source=source,
        route=route,
        plan_version=plan_version,
    )


def with_event_fields(
    body: dict[str, Any], *, dedupe_key: str | None, received_at: float
) -> dict[str, Any]:
    """The event body with an integer ``timestamp`` and an ``id`` (a copy when one is added).

    A non-integer timestamp is replaced too: Customer.io replaces it with its time of receipt.
    The id derived from a dedupe key uses the client's own timestamp only, never the receipt
    time, so a client retry of the same business event gets the same id.
    """
    ts = body.get("timestamp")
    client_ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
    event_id = body.get("id")
    if client_ts is not None and event_id not in (None, ""):
        return body
    out = dict(body)
    if client_ts is None:
        out["timestamp"] = int(received_at)
    if event_id in (None, ""):
        if dedupe_key is not None:
            out["id"] = ulid_from_key(dedupe_key, client_ts)
        else:
            out["id"] = new_ulid(int(received_at * 1000))
    return out


def _v1_payload(op: Operation, body: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bytes]:
    """The v2 item a v1 operation is queued as (None: it stays a v1 call), and the payload."""
    item = v1_to_v2(op, body)
    if item is not None:
        item_json = _encode(item)
        if len(item_json) <= SAFE_V2_ITEM_BYTES:
            return item, b'{"v2":' + item_json + b"}"
    return None, _encode({"v1": {"method": op.method, "path": op.path, "body": body}})


def v1_to_v2(op: Operation, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """The v2 batch item equal to a v1 operation, or None when v2 cannot say exactly that.

    ``body`` is the operation's body after event fields were added.
    """
    if op.api != "v1" or op.type != "person":
        return None
    if op.action == "merge":
        if body is None or set(body) != {"primary", "secondary"}:
            return None
        return {
            "type": "person",
            "action": "merge",
            "primary": body["primary"],
            "secondary": body["secondary"],
        }
    ident = op.identifier
    if ident is None or ident.kind not in _V2_IDENTIFIERS:
        return None
    item: dict[str, Any] = {
        "type": "person",
        "action": op.action,
        "identifiers": {ident.kind: ident.value},
    }
    if op.action in _BODYLESS:
        if op.action == "delete_device":
            hit = match(op.method, op.path)
            if not isinstance(hit, RouteMatch):
                return None
            item["device"] = {"token": hit.params["device_id"]}
        return item
    if body is None:
        return None
    if op.action == "identify":
        return _identify(item, body)
    if op.action in ("event", "page", "screen"):
        return _event(item, body)
    if op.action == "add_device":
        return _add_device(item, body)
    return None


def _identify(item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
    if "cio_relationships" in body:
        return None  # v1 nests {action, relationships}; v2 splits it into other actions
    attributes = dict(body)
    ts = attributes.get("_timestamp")
    if isinstance(ts, int) and not isinstance(ts, bool):
        del attributes["_timestamp"]  # v1's attribute-update time is v2's item timestamp
        item["timestamp"] = ts
    item["attributes"] = attributes
    return item


def _event(item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
    if not body.keys() <= _EVENT_KEYS:  # a keys view compares without building a set
        return None
    item["name"] = body.get("name")
    item["id"] = body["id"]
    item["timestamp"] = body["timestamp"]
    data = body.get("data")
    if data is not None:
        item["attributes"] = data
    return item


def _add_device(item: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
    device = body.get("device")
    if set(body) != {"device"} or not isinstance(device, dict):
        return None
    extras = dict(device)
    out: dict[str, Any] = {
        "token": extras.pop("id", None),
        "platform": extras.pop("platform", None),
    }
    last_used = extras.pop("last_used", None)
    if isinstance(last_used, str) and last_used.isascii() and last_used.isdigit():
        last_used = int(last_used)  # the Go SDK sends it as a string
    if last_used is not None:
        if not isinstance(last_used, int) or isinstance(last_used, bool):
            return None
        out["last_used"] = last_used
    nested = extras.pop("attributes", None)
    if nested is not None and not isinstance(nested, dict):
        return None
    attributes = extras | (nested or {})  # flat SDK extras, then explicit attributes
    if attributes:
        out["attributes"] = attributes
    item["device"] = out
    return item
