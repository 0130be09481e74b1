"""Parse a Track API request and check it against Customer.io's contract, in one pass.

``evaluate(request)`` never raises on input. It answers what Customer.io would answer (status
and every error message, in Customer.io's order) and gives the operations Customer.io would
accept. Behaviour the official SDKs rely on is accepted (``"data": null``, flat device
attributes, string ``last_used``, DELETE with or without a body, integer ids in identify
bodies, millisecond timestamps). Where Customer.io's behaviour is UNVERIFIED the check is
lenient: it passes the request and records a *warning* instead of an error.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any, Final

import msgspec

from trackguard.contract import messages as m
from trackguard.contract.identifiers import classify
from trackguard.contract.operations import Identifier, Operation, Request
from trackguard.contract.routes import NoRoute, Route, RouteMatch, match

_decoder: Final = msgspec.json.Decoder()
_encode: Final = msgspec.json.encode
_ULID: Final = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_EXEMPT_ATTRIBUTE_VALUES: Final = frozenset({"cio_relationships", "cio_subscription_preferences"})
_V2_ACTIONS: Final[dict[str, frozenset[str]]] = {
    "person": frozenset(
        {
            "identify",
            "delete",
            "event",
            "screen",
            "page",
            "add_relationships",
            "delete_relationships",
            "add_device",
            "delete_device",
            "merge",
            "suppress",
            "unsuppress",
        }
    ),
    "object": frozenset(
        {"identify", "identify_anonymous", "delete", "add_relationships", "delete_relationships"}
    ),
    "delivery": frozenset({"event"}),
}
_PERSON_IDENTIFIERS: Final = ("id", "email", "cio_id", "phone", "anonymous_id")
_MERGE_IDENTIFIERS: Final = frozenset({"id", "email", "cio_id"})
#: Digits of the smallest integer a double cannot hold (2**1024 has 309): a shorter body holds
#: no such integer, so :func:`out_of_range` is False for it (callers may skip the call).
DOUBLE_DIGITS: Final = 309
_LONG_DIGITS: Final = re.compile(rb"[0-9]{%d}" % DOUBLE_DIGITS)
_DIGITS: Final = b"0123456789"


class ContractError(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One reason Customer.io rejects (error) or may mishandle (warning) a request.

    ``message`` is Customer.io's own text where ``verified`` is true. ``field`` is the JSON path
    (v2 ``field``), ``reason`` the v2 ``reason``, ``batch_index`` the v2 batch position.
    """

    code: str
    message: str
    field: str = ""
    reason: str = "invalid"
    batch_index: int | None = None
    verified: bool = True


class ContractResult(msgspec.Struct, frozen=True, kw_only=True):
    """What Customer.io would do with a request."""

    status: int
    route: Route | None
    operations: tuple[Operation, ...] = ()
    errors: tuple[ContractError, ...] = ()
    warnings: tuple[ContractError, ...] = ()
    allowed: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def utf8_len(s: str) -> int:
    """UTF-8 byte length without encoding ASCII strings."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def value_bytes(value: Any) -> int:
    """How many bytes an attribute value takes, as JSON text for non-strings."""
    if isinstance(value, str):
        return utf8_len(value)
    if value is None or isinstance(value, bool | int | float):
        return len(_encode(value))
    try:
        return len(_encode(value))
    except (RecursionError, msgspec.EncodeError):  # pragma: no cover - decoded JSON encodes
        return m.MAX_BODY_BYTES


def is_ulid(value: Any) -> bool:
    return isinstance(value, str) and _ULID.fullmatch(value) is not None


class _Errors:
    """Collects errors and warnings for one request, in the order they are found."""

    __slots__ = ("errors", "warnings")

    def __init__(self) -> None:
        self.errors: list[ContractError] = []
        self.warnings: list[ContractError] = []

    def error(
        self,
        code: str,
        message: str,
        field: str = "",
        *,
        reason: str = "invalid",
        index: int | None = None,
        verified: bool = True,
    ) -> None:
        self.errors.append(
            ContractError(
                code=code,
                message=message,
                field=field,
                reason=reason,
                batch_index=index,
                verified=verified,
            )
        )

    def warn(self, code: str, message: str, field: str = "", *, index: int | None = None) -> None:
        self.warnings.append(
            ContractError(code=code, message=message, field=field, batch_index=index)
        )


#: A JSON string, its loop unrolled (runs of plain bytes, then one escape): twice as fast as
#: an alternation per byte on string-heavy bodies.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS: Final = bytes([c for c in range(256) if c not in b"[]{}"])
_STEP: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
#: An int, not ``b"["``: ``bytes.__contains__`` then searches with ``memchr``, where a
#: one-byte ``bytes`` first fails as an index (an exception raised and cleared).
_OPEN_ARRAY: Final = ord("[")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets in strings ignored).

    Strings are cut out and everything but brackets dropped in C; only the brackets are
    walked in Python, so a batch of many short strings costs little.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def too_deep(body: bytes) -> bool:
    """More nesting than :data:`MAX_JSON_DEPTH`; counting brackets first keeps it cheap.

    Nesting that deep needs more opening brackets than the limit. Most bodies hold no ``[``
    at all, and ``in`` with a byte's value finds that out with one ``memchr``; only then is a
    second count (a pass over the body, and its call) worth making.
    """
    opens = body.count(b"{")
    if _OPEN_ARRAY in body:
        opens += body.count(b"[")
    if opens <= m.MAX_JSON_DEPTH:
        return False
    return json_depth(body) > m.MAX_JSON_DEPTH


def out_of_range(body: bytes, decoded: Any) -> bool:
    """An integer too large for a 64-bit float (beyond ±1.8e308) anywhere in ``decoded``.

    The decoder refuses a float out of that range (``1e400``) but keeps any integer; an
    integer no double can hold is refused the same way. Only a body with a run of 309 digits
    can hold one, so the walk runs only then. Counting the digits first (one C pass) spares
    the regex search, which costs four times as much, on nearly every body.
    """
    if len(body) < DOUBLE_DIGITS:
        return False
    if len(body) - len(body.translate(None, _DIGITS)) < DOUBLE_DIGITS:
        return False  # fewer digits in all than such an integer needs
    if _LONG_DIGITS.search(body) is None:
        return False
    stack = [decoded]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > 1000:
            try:
                float(node)
            except OverflowError:
                return True
    return False


def decode_body(body: bytes) -> tuple[bool, Any]:
    """Decode JSON bytes; ``(False, None)`` for anything that is not JSON, nests too deep or
    holds a number out of a double's range.

    The depth cap makes the answer independent of the caller's stack depth.
    """
    if too_deep(body):
        return False, None
    try:
        decoded = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return False, None
    if out_of_range(body, decoded):
        return False, None
    return True, decoded


# --- shared field checks -------------------------------------------------------------------------


def _check_event_name(name: Any, errs: _Errors, field: str, index: int | None) -> None:
    if isinstance(name, int | float) and not isinstance(name, bool):
        name = str(name)  # lenient: numbers are names once stringified (UNVERIFIED)
    if not isinstance(name, str) or not name.strip():
        errs.error("event_name_blank", m.EVENT_NAME_BLANK, field, reason="required", index=index)
        return
    trimmed = name.strip()
    if utf8_len(trimmed) > m.MAX_EVENT_NAME_BYTES:
        errs.error("event_name_too_long", m.EVENT_NAME_TOO_LONG, field, index=index)
    if len(trimmed) >= m.MAX_EVENT_NAME_CHARS:
        errs.error("event_name_too_many_chars", m.EVENT_NAME_TOO_MANY_CHARS, field, index=index)


def _check_event_data(
    data: Any, errs: _Errors, field: str, index: int | None, body_len: int
) -> None:
    if data is None:
        return  # the Go SDK sends "data": null
    if not isinstance(data, dict):
        errs.error("event_data_not_hash", m.EVENT_DATA_NOT_HASH, field, index=index)
        return
    if body_len > m.MAX_EVENT_DATA_BYTES and value_bytes(data) > m.MAX_EVENT_DATA_BYTES:
        errs.error("event_data_too_long", m.EVENT_DATA_TOO_LONG, field, index=index)


def _check_event_extras(body: dict[str, Any], errs: _Errors, index: int | None) -> None:
    """Things Customer.io accepts but handles in ways that surprise (warnings only)."""
    ts = body.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        errs.warn(
            "timestamp_replaced",
            "timestamp is not an integer: Customer.io replaces it with the time of receipt",
            "timestamp",
            index=index,
        )
    event_id = body.get("id")
    if event_id is not None and not is_ulid(event_id):
        errs.warn(
            "event_id_not_ulid",
            "event id is not a ULID: Customer.io may not deduplicate on it",
            "id",
            index=index,
        )


def _check_attributes(attrs: dict[str, Any], errs: _Errors, prefix: str, index: int | None) -> None:
    """The identify limits: count, name length, value length (in Customer.io's order)."""
    if len(attrs) > m.MAX_ATTRIBUTES:
        errs.error("too_many_attributes", m.TOO_MANY_ATTRIBUTES, prefix.rstrip("."), index=index)
    name_reported = False
    for name in attrs:
        if not name_reported and utf8_len(name) > m.MAX_ATTRIBUTE_NAME_BYTES:
            errs.error(
                "attribute_name_too_long", m.ATTRIBUTE_NAME_TOO_LONG, prefix + name, index=index
            )
            name_reported = True
    for name, value in attrs.items():
        if name in _EXEMPT_ATTRIBUTE_VALUES:
            continue
        if isinstance(value, str) and len(value) <= m.MAX_ATTRIBUTE_VALUE_BYTES // 4:
            continue  # cannot exceed 1000 bytes
        if value_bytes(value) > m.MAX_ATTRIBUTE_VALUE_BYTES:
            errs.error(
                "attribute_value_too_long",
                m.attribute_value_too_long(name),
                prefix + name,
                index=index,
            )


def _person_id_warning(value: str, errs: _Errors, field: str, index: int | None) -> None:
    if utf8_len(value) > m.MAX_PERSON_ID_BYTES:
        errs.warn(
            "person_id_too_long",
            "person id is longer than Customer.io's documented 150-byte limit",
            field,
            index=index,
        )


# --- v1 -------------------------------------------------------------------------------------------


def _path_person(params: dict[str, str], errs: _Errors) -> Identifier | None:
    raw = params.get("identifier", "")
    if raw == "":
        errs.error("id_missing", m.ID_MISSING, "identifier", reason="required")
        return None
    ident = classify(raw)
    if ident.kind == "id":
        _person_id_warning(raw, errs, "identifier", None)
    return ident


def _v1_identify(ident: Identifier | None, body: dict[str, Any], errs: _Errors) -> None:
    if "id" in body:
        body_id = body["id"]
        if body_id is None:
            pass  # lenient: null is "not given" (UNVERIFIED)
        elif isinstance(body_id, bool) or not isinstance(body_id, str | int):
            errs.error("id_not_string", m.ID_NOT_STRING, "id")
        elif body_id == "":
            errs.error("id_empty", m.ID_EMPTY, "id")
        elif ident is not None and ident.kind == "id" and str(body_id) != ident.value:
            errs.error("id_mismatch", m.ID_MISMATCH, "id")
    _check_attributes(body, errs, "", None)


def _v1_event(body: dict[str, Any], errs: _Errors, body_len: int) -> None:
    _check_event_name(body.get("name"), errs, "name", None)
    _check_event_data(body.get("data"), errs, "data", None, body_len)
    kind = body.get("type")
    if kind is not None and kind not in ("event", "page", "screen"):
        errs.warn(
            "event_type_unknown",
            "type is not one of event, page, screen: Customer.io treats it as an event",
            "type",
        )
    _check_event_extras(body, errs, None)


def _v1_device(body: dict[str, Any], errs: _Errors) -> None:
    if "device" not in body or body["device"] is None:
        errs.error("device_missing", m.DEVICE_MISSING, "device", reason="required", verified=False)
        return
    device = body["device"]
    if not isinstance(device, dict):
        errs.error("device_not_hash", m.DEVICE_NOT_HASH, "device", verified=False)
        return
    token = device.get("id")
    if not isinstance(token, str) or not token:
        errs.error(
            "device_id_missing", m.DEVICE_ID_MISSING, "device.id", reason="required", verified=False
        )
    if device.get("platform") not in ("ios", "android"):
        errs.error(
            "device_platform_invalid", m.DEVICE_PLATFORM_INVALID, "device.platform", verified=False
        )


def _merge_side(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((key, val),) = value.items()
    return key in _MERGE_IDENTIFIERS and isinstance(val, str | int) and val != ""


def _v1_merge(body: dict[str, Any], errs: _Errors) -> None:
    if "primary" not in body or "secondary" not in body:
        errs.error("merge_missing", m.MERGE_MISSING, reason="required", verified=False)
    elif not (_merge_side(body["primary"]) and _merge_side(body["secondary"])):
        errs.error("merge_malformed", m.MERGE_MALFORMED)


def _v1_segment(body: dict[str, Any], errs: _Errors) -> None:
    ids = body.get("ids")
    if ids is None:
        errs.error("segment_ids_missing", m.SEGMENT_IDS_MISSING, "ids", verified=False)
    elif not isinstance(ids, list):
        errs.error("segment_ids_not_list", m.SEGMENT_IDS_NOT_LIST, "ids", verified=False)
    elif not ids:
        errs.error("segment_ids_empty", m.SEGMENT_IDS_EMPTY, "ids", verified=False)
    elif len(ids) > m.MAX_SEGMENT_IDS:
        errs.error("segment_ids_too_many", m.SEGMENT_IDS_TOO_MANY, "ids", verified=False)
    elif not all(_plain_id(i) for i in ids):
        errs.error("segment_ids_not_list", m.SEGMENT_IDS_NOT_LIST, "ids", verified=False)


def _v1_form(body: dict[str, Any], errs: _Errors) -> None:
    data = body.get("data")
    if not isinstance(data, dict):
        errs.error("form_data_missing", m.FORM_DATA_MISSING, "data", verified=False)
        return
    if sum(1 for k in ("email", "id") if k in data) != 1:
        errs.error("form_identifier", m.FORM_IDENTIFIER, "data", verified=False)
    if any(not isinstance(v, str) for v in data.values()):
        errs.error("form_values_not_strings", m.FORM_VALUES_NOT_STRINGS, "data")


def _v1(request: Request, hit: RouteMatch, errs: _Errors) -> tuple[int, list[Operation]]:
    route = hit.route
    action = route.action
    params = hit.params
    ident: Identifier | None = None

    # Requests whose body Customer.io ignores: DELETE calls, suppress/unsuppress, region.
    bodyless = route.method in ("DELETE", "GET") or action in ("suppress", "unsuppress")
    body: dict[str, Any] | None = None
    if bodyless:
        ok, decoded = decode_body(request.body) if request.body else (True, None)
        body = decoded if ok and isinstance(decoded, dict) else None
    elif action == "identify" and not request.body.strip():
        body = {}  # lenient: an identify with no body sets nothing
    else:
        ok, decoded = decode_body(request.body)
        if not ok:
            errs.error("invalid_json", m.INVALID_JSON, verified=False)
            return 400, []
        if not isinstance(decoded, dict):
            errs.error("body_not_object", m.BODY_NOT_OBJECT, verified=False)
            return 400, []
        body = decoded

    if route.type == "person" and action not in ("anonymous_event", "merge"):
        ident = _path_person(params, errs)

    data_key: str | None = None
    if action == "identify":
        assert body is not None
        _v1_identify(ident, body, errs)
        data_key = ""
    elif action == "event":
        assert body is not None
        _v1_event(body, errs, len(request.body))
        kind = body.get("type")
        action = kind if kind in ("page", "screen") else "event"
        data_key = "data"
    elif action == "anonymous_event":
        assert body is not None
        _v1_event(body, errs, len(request.body))
        anon = body.get("anonymous_id")
        if anon is not None and anon != "" and not isinstance(anon, bool | dict | list):
            ident = Identifier("anonymous_id", str(anon))
        data_key = "data"
    elif action == "add_device":
        assert body is not None
        _v1_device(body, errs)
    elif action == "merge":
        assert body is not None
        _v1_merge(body, errs)
    elif action in ("add_to_segment", "remove_from_segment"):
        assert body is not None
        _v1_segment(body, errs)
        ident = Identifier("segment", params.get("segment_id", ""))
    elif action == "submit_form":
        assert body is not None
        _v1_form(body, errs)
        ident = Identifier("form", params.get("form_id", ""))
    elif action == "metric":
        assert body is not None
        if not body.get("delivery_id") or not body.get("metric"):
            errs.error(
                "metric_fields_missing", m.METRIC_FIELDS_MISSING, reason="required", verified=False
            )
    elif action == "unsubscribe":
        assert body is not None
        if not isinstance(body.get("unsubscribe", True), bool):
            errs.error("unsubscribe_malformed", m.UNSUBSCRIBE_MALFORMED)

    if errs.errors:
        return 400, []
    op = Operation(
        api="v1",
        type=route.type,
        action=action,
        route=route.key,
        method=route.method,
        path=request.path,
        identifier=ident,
        body=body,
        data_key=data_key,
    )
    return (204 if action == "submit_form" else 200), [op]


# --- v2 -------------------------------------------------------------------------------------------


def _v2_person_identifier(identifiers: Any, errs: _Errors, index: int | None) -> Identifier | None:
    field = "identifiers"
    if not isinstance(identifiers, dict) or not identifiers:
        errs.error(
            "v2_identifiers_missing",
            m.V2_IDENTIFIERS_MISSING,
            field,
            reason="required",
            index=index,
            verified=False,
        )
        return None
    keys = [k for k in identifiers if k in _PERSON_IDENTIFIERS]
    if len(identifiers) > 1:
        errs.error("v2_identifiers_multiple", m.V2_IDENTIFIERS_MULTIPLE, field, index=index)
        return None
    if not keys:
        errs.error(
            "v2_identifiers_missing",
            m.V2_IDENTIFIERS_MISSING,
            field,
            reason="required",
            index=index,
            verified=False,
        )
        return None
    key = keys[0]
    value = identifiers[key]
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        errs.error(
            "v2_identifier_invalid",
            m.V2_IDENTIFIER_INVALID,
            f"{field}.{key}",
            index=index,
            verified=False,
        )
        return None
    if key == "id":
        _person_id_warning(str(value), errs, f"{field}.id", index)
    return Identifier(key, str(value))


def _plain_id(value: Any) -> bool:
    """A non-empty string or an integer (not a boolean)."""
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _v2_object_identifier(identifiers: Any, errs: _Errors, index: int | None) -> Identifier | None:
    field = "identifiers"
    if isinstance(identifiers, dict):
        cio = identifiers.get("cio_object_id")
        if isinstance(cio, str) and cio and len(identifiers) == 1:
            return Identifier("cio_object_id", cio)
        otype, oid = identifiers.get("object_type_id"), identifiers.get("object_id")
        if _plain_id(otype) and _plain_id(oid):
            return Identifier("object", f"{otype}:{oid}")
    errs.error("v2_object_identifiers", m.V2_OBJECT_IDENTIFIERS, field, index=index, verified=False)
    return None


def _check_relationships(item: dict[str, Any], errs: _Errors, index: int | None) -> None:
    rels = item.get("cio_relationships")
    if not isinstance(rels, list) or not rels:
        errs.error(
            "v2_relationships_missing",
            m.V2_RELATIONSHIPS_MISSING,
            "cio_relationships",
            reason="required",
            index=index,
            verified=False,
        )


def _v2_item(
    item: Any, errs: _Errors, index: int | None, route: Route, item_len: int
) -> Operation | None:
    """Check one v2 operation; returns it when Customer.io would accept it."""
    # Fields are relative to the item; batch_index says which item.
    before = len(errs.errors)
    if not isinstance(item, dict):
        errs.error(
            "v2_item_not_object",
            m.V2_ITEM_NOT_OBJECT,
            "",
            index=index,
            verified=False,
        )
        return None
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in _V2_ACTIONS:
        errs.error("v2_type_invalid", m.V2_TYPE_INVALID, "type", index=index, verified=False)
        return None
    action = item.get("action")
    if not isinstance(action, str) or action not in _V2_ACTIONS[kind]:
        errs.error("v2_action_invalid", m.V2_ACTION_INVALID, "action", index=index, verified=False)
        return None
    assert isinstance(action, str)
    ident: Identifier | None = None
    data_key: str | None = None
    attrs = item.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        errs.error(
            "v2_attributes_not_hash",
            m.V2_ATTRIBUTES_NOT_HASH,
            "attributes",
            index=index,
            verified=False,
        )
    if kind == "person":
        if action == "merge":
            if "primary" not in item or "secondary" not in item:
                errs.error(
                    "merge_missing",
                    m.MERGE_MISSING,
                    "",
                    reason="required",
                    index=index,
                    verified=False,
                )
            elif not (_merge_side(item["primary"]) and _merge_side(item["secondary"])):
                errs.error("merge_malformed", m.MERGE_MALFORMED, "", index=index)
        else:
            ident = _v2_person_identifier(item.get("identifiers"), errs, index)
        if action in ("event", "page", "screen"):
            _check_event_name(item.get("name"), errs, "name", index)
            if isinstance(attrs, dict):
                _check_event_data(attrs, errs, "attributes", index, item_len)
            _check_event_extras(item, errs, index)
            data_key = "attributes"
        elif action == "identify":
            if isinstance(attrs, dict):
                _check_attributes(attrs, errs, "attributes.", index)
            data_key = "attributes"
        elif action in ("add_device", "delete_device"):
            device = item.get("device")
            if (
                not isinstance(device, dict)
                or not isinstance(device.get("token"), str)
                or not device.get("token")
            ):
                errs.error(
                    "device_token_missing",
                    m.DEVICE_TOKEN_MISSING,
                    "device.token",
                    reason="required",
                    index=index,
                    verified=False,
                )
            elif action == "add_device" and device.get("platform") not in ("ios", "android"):
                errs.error(
                    "device_platform_invalid",
                    m.DEVICE_PLATFORM_INVALID,
                    "device.platform",
                    index=index,
                    verified=False,
                )
        elif action in ("add_relationships", "delete_relationships"):
            _check_relationships(item, errs, index)
    elif kind == "object":
        if action != "identify_anonymous" or "identifiers" in item:
            ident = _v2_object_identifier(item.get("identifiers"), errs, index)
        if action in ("identify", "identify_anonymous") and isinstance(attrs, dict):
            _check_attributes(attrs, errs, "attributes.", index)
            data_key = "attributes"
        if action in ("add_relationships", "delete_relationships"):
            _check_relationships(item, errs, index)
    else:  # delivery
        identifiers = item.get("identifiers")
        did = identifiers.get("id") if isinstance(identifiers, dict) else None
        if not isinstance(did, str) or not did:
            errs.error(
                "v2_identifiers_missing",
                m.V2_IDENTIFIERS_MISSING,
                "identifiers",
                reason="required",
                index=index,
                verified=False,
            )
        else:
            ident = Identifier("delivery", did)
        if item.get("name") not in ("opened", "converted", "delivered"):
            errs.error("v2_delivery_name", m.V2_DELIVERY_NAME, "name", index=index, verified=False)
        data_key = "attributes"
    if len(errs.errors) > before:
        return None
    return Operation(
        api="v2",
        type=kind,
        action=action,
        route=route.key,
        method="POST",
        path=route.template,
        identifier=ident,
        body=item,
        batch_index=index,
        data_key=data_key,
    )


def _v2(request: Request, route: Route, errs: _Errors) -> tuple[int, list[Operation]]:
    size = len(request.body)
    if route.action == "entity":
        if size >= m.MAX_ENTITY_BYTES:
            errs.error("v2_entity_too_large", m.V2_ENTITY_TOO_LARGE, verified=False)
            return 400, []
    elif size >= m.MAX_BATCH_BYTES:
        errs.error("v2_batch_too_large", m.V2_BATCH_TOO_LARGE, verified=False)
        return 400, []
    ok, decoded = decode_body(request.body)
    if not ok:
        errs.error("invalid_json", m.INVALID_JSON, verified=False)
        return 400, []
    if not isinstance(decoded, dict):
        errs.error("body_not_object", m.BODY_NOT_OBJECT, verified=False)
        return 400, []
    if route.action == "entity":
        op = _v2_item(decoded, errs, None, route, size)
        return (400, []) if op is None else (200, [op])
    items = decoded.get("batch")
    if not isinstance(items, list):
        errs.error(
            "v2_batch_missing", m.V2_BATCH_MISSING, "batch", reason="required", verified=False
        )
        return 400, []
    if not items:
        errs.error("v2_batch_empty", m.V2_BATCH_EMPTY, "batch", verified=False)
        return 400, []
    ops: list[Operation] = []
    small = size <= m.MAX_BATCH_ITEM_BYTES
    for index, item in enumerate(items):
        item_len = size if small else len(_encode(item))
        if item_len > m.MAX_BATCH_ITEM_BYTES:
            errs.error("v2_item_too_large", m.V2_ITEM_TOO_LARGE, "", index=index, verified=False)
            continue
        op = _v2_item(item, errs, index, route, item_len)
        if op is not None:
            ops.append(op)
    return (207 if errs.errors else 200), ops


def evaluate(request: Request, hit: RouteMatch | NoRoute | None = None) -> ContractResult:
    """What Customer.io would answer to ``request``, and the operations it would accept.

    ``hit`` is ``match(request.method, request.path)`` when the caller already has it.
    """
    if hit is None:
        hit = match(request.method, request.path)
    errs = _Errors()
    if isinstance(hit, NoRoute):
        code, message = (
            ("not_found", m.NOT_FOUND)
            if hit.status == 404
            else ("method_not_allowed", m.METHOD_NOT_ALLOWED)
        )
        errs.error(code, message, verified=False)
        return ContractResult(
            status=hit.status, route=None, errors=tuple(errs.errors), allowed=hit.allowed
        )
    route = hit.route
    if len(request.body) > m.MAX_BODY_BYTES:
        errs.error("body_too_large", m.BODY_TOO_LARGE, verified=False)
        return ContractResult(status=413, route=route, errors=tuple(errs.errors))
    if route.api == "v2":
        status, ops = _v2(request, route, errs)
    else:
        status, ops = _v1(request, hit, errs)
    return ContractResult(
        status=status,
        route=route,
        operations=tuple(ops),
        errors=tuple(errs.errors),
        warnings=tuple(errs.warnings),
    )
