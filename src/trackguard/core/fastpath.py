"""The fast paths: a clean v1 event (or, without a plan, identify) checked in one decode.

Most traffic is clean. For it, the full pipeline (generic decode, contract walk, plan walk)
costs ~10 µs in Python; a msgspec decoder compiled from the plan validates the same rules in
C in well under 1 µs. The fast path answers only when it can prove the request has *no*
finding at all, or only an ``event_late`` warning (backfills, offline mobile queues);
anything else (a decode error, a drifted name, an unplanned property, an identifier the
policy flags, a rule msgspec cannot express exactly) returns None and the full pipeline
decides. So the verdict is the same either way, which the tests check by running
both paths over the same corpora.

Without a plan only the contract is checked (``trackguard audit``, a gateway run without a
plan): :class:`FastContract` answers clean v1 track and identify calls from the generic decode
and a few field checks, where the full walk builds a contract result, renders it and wraps it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final, Literal, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType

from trackguard.contract import messages as m
from trackguard.contract.check import (
    _EXEMPT_ATTRIBUTE_VALUES,
    DOUBLE_DIGITS,
    is_ulid,
    out_of_range,
    too_deep,
    utf8_len,
    value_bytes,
)
from trackguard.contract.identifiers import classify
from trackguard.contract.operations import EVENT_ACTIONS, Identifier, Operation, Request
from trackguard.contract.responses import OK_BODY
from trackguard.contract.routes import NoRoute, RouteMatch
from trackguard.core.coerce import MS_THRESHOLD, to_number
from trackguard.core.keys import event_key, value_at
from trackguard.core.plancheck import late_message
from trackguard.core.verdict import Verdict, Violation
from trackguard.plan.model import EventSpec, Plan, PropertySpec

_ULID: Final = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
#: A subset of what ``is_email`` accepts that is also trimmed and lower-case (ASCII only).
_EMAIL: Final = r"^[a-z0-9._%+!#$&'*/=?^`{|}~-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z0-9-]+$"
_SECONDS: Final = Annotated[int, Meta(ge=0, lt=MS_THRESHOLD)]
_generic = msgspec.json.Decoder()


class _Unexpressible(Exception):
    """A rule msgspec cannot check exactly as the full pipeline does."""


def _number_meta(spec: PropertySpec, *, integer: bool, low: float | None = None) -> dict[str, Any]:
    """Bounds for msgspec; integer bounds rounded inwards (an int >= 0.5 is an int >= 1)."""
    meta: dict[str, Any] = {}
    ge = (
        spec.minimum if low is None else max(low, spec.minimum if spec.minimum is not None else low)
    )
    le = spec.maximum
    if ge is not None:
        meta["ge"] = math.ceil(ge) if integer else float(ge)
    if le is not None:
        meta["le"] = math.floor(le) if integer else float(le)
    return meta


def _item_type(kind: str | None) -> Any:
    if kind in (None, "any", "enum"):
        return Any
    return {
        "string": str,
        "number": Union[int, float],  # noqa: UP007 - a runtime type expression
        "integer": int,
        "boolean": bool,
        "timestamp": _SECONDS,
        "object": dict[str, Any],
        "array": list[Any],
    }.get(kind, UnsetType)  # email items: checked loosely by the full path; not expressible


def _annotate(base: Any, meta: dict[str, Any]) -> Any:
    return Annotated[base, Meta(**meta)] if meta else base


def _type_of(spec: PropertySpec, name: str) -> Any:
    """The msgspec type that accepts exactly the values with no finding for ``spec``."""
    kind = spec.type
    length: dict[str, Any] = {}
    if spec.min_length is not None:
        length["min_length"] = spec.min_length
    if spec.max_length is not None:
        length["max_length"] = spec.max_length
    if kind == "string":
        if spec.pattern:
            re.compile(spec.pattern)
            length["pattern"] = spec.pattern
        return _annotate(str, length)
    if kind == "email":
        if spec.pattern:
            raise _Unexpressible(name)
        return _annotate(str, {**length, "pattern": _EMAIL})
    if kind == "number":
        return Union[  # noqa: UP007
            _annotate(int, _number_meta(spec, integer=True)),
            _annotate(float, _number_meta(spec, integer=False)),
        ]
    if kind == "integer":
        return _annotate(int, _number_meta(spec, integer=True))
    if kind == "timestamp":
        meta = _number_meta(spec, integer=True, low=0)
        meta["lt"] = MS_THRESHOLD
        if "le" in meta and meta["le"] >= MS_THRESHOLD:
            del meta["le"]
        return Annotated[int, Meta(**meta)]
    if kind == "boolean":
        return bool
    if kind == "enum":
        values = spec.values or ()
        if values and all(isinstance(v, str) for v in values):
            return Literal[tuple(values)]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return Literal[tuple(values)]
        raise _Unexpressible(name)
    if kind == "array":
        meta = {}
        if spec.min_items is not None:
            meta["min_length"] = spec.min_items
        if spec.max_items is not None:
            meta["max_length"] = spec.max_items
        item = _item_type(spec.items)
        if item is UnsetType:
            raise _Unexpressible(name)
        return _annotate(list[item], meta)  # type: ignore[valid-type]
    if kind == "object":
        if spec.properties:
            return _struct(f"{name}_object", spec.properties, forbid_unknown=False)
        return dict[str, Any]
    if spec.bounded:
        raise _Unexpressible(name)  # "any" with constraints depends on the runtime type
    return Any


def _struct(
    name: str,
    props: tuple[PropertySpec, ...],
    *,
    forbid_unknown: bool,
    versioned: bool = False,
) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for i, prop in enumerate(props):
        attr = f"f{i}"
        rename[attr] = prop.name
        try:
            kind = _type_of(prop, f"{name}_{i}")
        except _Unexpressible:
            if prop.required:
                raise
            kind = UnsetType  # present: let the full path decide
            fields.append((attr, kind, UNSET))
            continue
        if prop.required:
            fields.append((attr, kind))
        else:
            fields.append((attr, Union[kind, None], None))  # noqa: UP007 - null is absent
    if versioned:
        rename["schema_version"] = "schema_version"
        fields.append(("schema_version", UnsetType, UNSET))  # versions: the full path picks
    fields.sort(key=lambda f: len(f) == 3)  # required fields first
    return msgspec.defstruct(
        name, fields, rename=rename, forbid_unknown_fields=forbid_unknown, kw_only=True
    )


def _event_struct(spec: EventSpec, plan: Plan) -> type[msgspec.Struct]:
    unplanned = spec.unplanned_properties or plan.unplanned.properties
    data = _struct(
        f"{spec.name}_data",
        spec.properties,
        forbid_unknown=unplanned != "allow",
        versioned=bool(spec.versions),
    )
    required = any(p.required for p in spec.properties)
    fields: list[Any] = [
        ("data", data) if required else ("data", Union[data, None], None),  # noqa: UP007
        ("timestamp", Union[_SECONDS, None], None),  # noqa: UP007
        ("id", Union[Annotated[str, Meta(pattern=_ULID)], None], None),  # noqa: UP007
        ("type", Union[Literal["event"], None], None),  # noqa: UP007
    ]
    fields.sort(key=lambda f: len(f) == 3)
    return msgspec.defstruct(
        f"{spec.name}_event", fields, tag_field="name", tag=spec.name, kw_only=True
    )


class FastEvents:
    """A typed decoder for the plan's v1 track bodies and the checks around it."""

    __slots__ = (
        "canonical",
        "decoder",
        "dedupe",
        "derive",
        "fallback_keys",
        "people",
        "people_limit",
        "plan_version",
        "timeliness",
    )

    def __init__(self, plan: Plan, *, fallback_keys: bool = True) -> None:
        #: False: an event without the plan's key keeps ``dedupe_key=None`` (no id, no hash).
        self.fallback_keys = fallback_keys
        structs = []
        self.dedupe: dict[str, tuple[str, ...]] = {}
        self.derive: dict[str, tuple[str, ...]] = {}
        for spec in plan.events.values():
            if not spec.name or utf8_len(spec.name) > m.MAX_EVENT_NAME_BYTES:
                continue
            if spec.name != spec.name.strip():
                continue
            try:
                structs.append(_event_struct(spec, plan))
            except (_Unexpressible, re.error, TypeError, ValueError):
                continue
            if spec.dedupe_key:
                self.dedupe[spec.name] = tuple(spec.dedupe_key.split("."))
            if spec.derive_total:
                self.derive[spec.name] = tuple(spec.derive_total.split("."))
        self.decoder: msgspec.json.Decoder[Any] | None = (
            msgspec.json.Decoder(Union[tuple(structs)]) if structs else None  # noqa: UP007
        )
        self.canonical = plan.identity.canonical
        self.timeliness = plan.timeliness
        self.plan_version = plan.version
        #: The path's identifier -> :func:`_path_person` of it (pure, so kept).
        self.people: dict[str, Identifier | None] = {}
        #: How many path identifiers ``people`` keeps before it starts again.
        self.people_limit = PERSON_CACHE

    def _timeliness(self, name: str, ts: Any, now: float) -> tuple[bool, Violation | None]:
        """Whether the fast path may answer, and the one timeliness finding it can give.

        Backfills and offline mobile queues send events older than ``max_age``: under the
        default ``late: warn`` such an event is accepted with only an ``event_late`` warning,
        which needs no state, so it is answered here too. Anything else the full path (with
        state) decides.
        """
        t = self.timeliness
        if t.stale != "allow" and name in t.stale_events:
            return False, None
        if not isinstance(ts, int):
            return True, None
        if t.future != "allow" and ts - now > t.future_skew:
            return False, None
        if t.late == "allow" or now - ts <= t.max_age:
            return True, None
        if t.late != "warn":
            return False, None
        message = late_message(now - ts, t.max_age)
        return True, Violation(
            code="event_late",
            rule="timeliness.max_age",
            path="timestamp",
            message=message,
            action="warn",
        )

    def check(
        self, request: Request, hit: RouteMatch | NoRoute, now: float | None = None
    ) -> Verdict | None:
        """The verdict for a clean planned event, or None: the full pipeline must decide.

        ``hit`` is the request's route match (the caller needs it either way).
        """
        body = request.body
        if (
            self.decoder is None
            or not isinstance(hit, RouteMatch)
            or hit.not_utf8  # held whole by the full path (path_not_utf8)
            or hit.route.action != "event"
            or len(body) > m.MAX_EVENT_DATA_BYTES
        ):
            return None
        ident = _person(self.people, self.people_limit, hit)
        if ident is None or ident.kind != self.canonical:
            return None
        if too_deep(body):
            return None
        try:
            typed = self.decoder.decode(body)
            generic = _generic.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
            return None
        if out_of_range(body, generic):
            return None
        name = type(typed).__struct_config__.tag
        if not isinstance(generic, dict) or generic.get("name") != name:
            return None  # a repeated "name" key: the generic decode kept another one
        late = None
        if now is not None:
            answerable, late = self._timeliness(name, generic.get("timestamp"), now)
            if not answerable:
                return None
        dedupe = total = None
        path = self.dedupe.get(name)
        if path is not None:
            node = value_at(generic, path)
            if node is not None and not isinstance(node, dict | list) and node != "":
                dedupe = f"{name}:{node}"
        derive = self.derive.get(name)
        if derive is not None:
            ok, amount = to_number(value_at(generic, derive))
            total = float(amount) if ok else None
        if dedupe is None and self.fallback_keys:  # fallback_key() of the operation below
            dedupe = event_key(generic, ident, "event", name, generic.get("data"))
        route = hit.route
        op = Operation(
            api="v1",
            type="person",
            action="event",
            route=route.key,
            method="POST",
            path=request.path,
            identifier=ident,
            body=generic,
            data_key="data",
            dedupe_key=dedupe,
            derive_total=total,
        )
        return Verdict(
            outcome="accepted" if late is None else "warned",
            status=200,
            response=OK_BODY,
            route=route.key,
            operations=(op,),
            violations=() if late is None else (late,),
            plan_version=self.plan_version,
        )


#: Path identifiers kept classified by each fast path (a log or a busy gateway sends the same
#: people again and again). Cleared when full.
PERSON_CACHE: Final = 4096
_UNSEEN: Final = Identifier("", "")  # a classification no path gives


def _person(people: dict[str, Identifier | None], limit: int, hit: RouteMatch) -> Identifier | None:
    """:func:`_path_person` of the path's identifier, kept in ``people`` (a log or a busy
    gateway sends the same people again and again), which starts again at ``limit``."""
    raw = hit.params.get("identifier", "")
    ident = people.get(raw, _UNSEEN)  # one lookup: safe beside a clear() in another thread
    if ident is not _UNSEEN:
        return ident
    ident = _path_person(raw)
    if len(people) >= limit:
        people.clear()
    people[raw] = ident
    return ident


def _path_person(raw: str) -> Identifier | None:
    """The path's person, or None when the contract reports on it (missing, id too long)."""
    if not raw:
        return None
    ident = classify(raw)
    if ident.kind == "id" and utf8_len(raw) > m.MAX_PERSON_ID_BYTES:
        return None  # the person_id_too_long warning
    return ident


def _object(raw: bytes) -> dict[str, Any] | None:
    """The body decoded as the contract check decodes it, or None unless it is an object."""
    if too_deep(raw):
        return None
    try:
        body = _generic.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None
    if len(raw) >= DOUBLE_DIGITS and out_of_range(raw, body):  # no call for a short body
        return None
    return body if isinstance(body, dict) else None


#: Names of at most this many characters are within ``MAX_EVENT_NAME_BYTES`` in any encoding.
_SHORT_NAME: Final = m.MAX_EVENT_NAME_BYTES // 4


def _event_action(body: dict[str, Any]) -> str | None:
    """The action of a v1 track body with no contract error or warning, else None.

    The checks of ``contract.check._v1_event`` (name, data, type, timestamp, id), for bodies
    of at most ``MAX_EVENT_DATA_BYTES`` (so the data cannot be too long).
    """
    name = body.get("name")
    if not isinstance(name, str):
        return None  # missing, blank, or a number the full path stringifies
    trimmed = name.strip()
    # A name of at most 100 bytes has fewer than 500 characters: one test covers both limits.
    # No character takes more than 4 bytes, so a short name needs no byte count at all.
    if not trimmed or (len(trimmed) > _SHORT_NAME and utf8_len(trimmed) > m.MAX_EVENT_NAME_BYTES):
        return None
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        return None
    kind = body.get("type")
    if kind is None or kind == "event":
        action = "event"
    elif kind == "page" or kind == "screen":
        action = kind
    else:
        return None  # the event_type_unknown warning
    ts = body.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        return None  # the timestamp_replaced warning
    event_id = body.get("id")
    if event_id is not None and not is_ulid(event_id):
        return None  # the event_id_not_ulid warning
    return action


def _identify_clean(ident: Identifier, body: dict[str, Any]) -> bool:
    """No contract error for a v1 identify body (``_v1_identify`` and ``_check_attributes``)."""
    body_id = body.get("id")
    if body_id is not None:
        if isinstance(body_id, bool) or not isinstance(body_id, str | int) or body_id == "":
            return False
        if ident.kind == "id" and str(body_id) != ident.value:
            return False
    if len(body) > m.MAX_ATTRIBUTES:
        return False
    for name, value in body.items():
        if utf8_len(name) > m.MAX_ATTRIBUTE_NAME_BYTES:
            return False
        if name in _EXEMPT_ATTRIBUTE_VALUES:
            continue
        if isinstance(value, str) and len(value) <= m.MAX_ATTRIBUTE_VALUE_BYTES // 4:
            continue  # cannot exceed 1000 bytes
        if value_bytes(value) > m.MAX_ATTRIBUTE_VALUE_BYTES:
            return False
    return True


class FastContract:
    """Contract-only checking (no plan) of clean v1 track and identify calls.

    Answers the verdict the full pipeline gives a request with no contract error and no
    contract warning; anything else returns None and the full pipeline decides.
    """

    __slots__ = ("fallback_keys", "people", "people_limit")

    def __init__(self, *, fallback_keys: bool = True) -> None:
        #: False: events keep ``dedupe_key=None`` (no ``id:``/``retry:`` key is computed).
        self.fallback_keys = fallback_keys
        #: The path's identifier -> :func:`_path_person` of it (pure, so kept).
        self.people: dict[str, Identifier | None] = {}
        #: How many path identifiers ``people`` keeps before it starts again.
        self.people_limit = PERSON_CACHE

    def clean_event(
        self, request: Request, hit: RouteMatch
    ) -> tuple[Identifier, dict[str, Any], str] | None:
        """A v1 track call (``hit`` the event route, its path UTF-8) with no contract error or
        warning: its person, its decoded body and its action (``event``, ``page`` or
        ``screen``), from which :meth:`check` builds its verdict; None when check declines it.
        ``trackguard audit`` counts such a call from these alone, without the verdict."""
        raw = request.body
        if len(raw) > m.MAX_EVENT_DATA_BYTES:
            return None
        ident = _person(self.people, self.people_limit, hit)
        if ident is None:
            return None
        body = _object(raw)
        if body is None:
            return None
        action = _event_action(body)
        return None if action is None else (ident, body, action)

    def check(
        self, request: Request, hit: RouteMatch | NoRoute, now: float | None = None
    ) -> Verdict | None:
        """The verdict for a clean v1 track or identify call, or None.

        ``hit`` is the request's route match; ``now`` plays no part without a plan.
        """
        if not isinstance(hit, RouteMatch) or hit.not_utf8:
            return None
        route = hit.route
        raw = request.body
        ident: Identifier | None
        body: dict[str, Any] | None
        if route.action == "event":
            clean = self.clean_event(request, hit)
            if clean is None:
                return None
            ident, body, action = clean
            data_key = "data"
        elif route.action == "identify":
            if len(raw) > m.MAX_BODY_BYTES:
                return None
            ident = _person(self.people, self.people_limit, hit)
            if ident is None:
                return None
            body = _object(raw) if raw.strip() else {}  # no body: an identify that sets nothing
            if body is None or not _identify_clean(ident, body):
                return None
            action, data_key = "identify", ""
        else:
            return None
        dedupe = None
        if self.fallback_keys and action in EVENT_ACTIONS:  # fallback_key() of the operation
            dedupe = event_key(body, ident, action, body.get("name"), body.get(data_key))
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
            dedupe_key=dedupe,
        )
        return Verdict(
            outcome="accepted",
            status=200,
            response=OK_BODY,
            route=route.key,
            operations=(op,),
        )
