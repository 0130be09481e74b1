"""Parse a Pipelines API request and check every call in it, in one pass.

``evaluate(request)`` never raises on input. It returns the calls Customer.io would accept
(each kept exactly as sent, minus a body ``writeKey``), the ones it would drop with the reasons,
and warnings for calls it accepts but that will not do what the sender expects in Journeys.
One bad call never drops its batch: in permissive mode (the default) the rest are accepted
and the answer is ``200 {}``; ``X-Strict-Mode: 1`` turns any error into a 400
(:mod:`trackguard.contract.pipelines.responses`). Where Customer.io's behaviour is UNVERIFIED
the check is lenient: it accepts and warns.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import msgspec

from trackguard.contract.check import decode_body
from trackguard.contract.identifiers import is_email
from trackguard.contract.operations import Request
from trackguard.contract.pipelines import messages as m
from trackguard.contract.pipelines.routes import CALL_TYPES, PipelinesRoute, route_for
from trackguard.contract.pipelines.semantic import POSSIBLY_SEMANTIC, semantic_event
from trackguard.contract.pipelines.wire import WriteKey, header, inflate, is_strict, write_key

_encode: Final = msgspec.json.encode
_TYPES: Final = frozenset(CALL_TYPES)
#: Keys that must be JSON objects when present (``null`` counts as absent: Python sends it).
_OBJECT_KEYS: Final = ("context", "integrations", "properties", "traits")
_TIME_KEYS: Final = ("timestamp", "originalTimestamp", "sentAt")
#: ISO-8601 as the SDKs write it: ``Z`` or a ``±hh:mm`` offset, 0 to 9 fractional digits. An
#: offset-less or date-only value is accepted too (UNVERIFIED either way: lenient).
_ISO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(?:[Zz]|[+-](\d{2}):?(\d{2}))?"
)
#: The shape every SDK writes (``…T12:00:00.265+00:00``, ``…T12:00:00.231Z``), read in C.
_SDK_TIME: Final = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)


class Issue(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One error or warning: the registry message, where it is, and which call."""

    code: str
    message: str
    severity: m.Severity
    verified: bool
    field: str = ""
    index: int | None = None

    @property
    def batch_index(self) -> int | None:
        """``index`` under the Track API's name (both APIs' warnings become violations alike)."""
        return self.index

    @property
    def line(self) -> str:
        """``batch[3].event: track requires event``: the form strict answers list."""
        return f"{self.field}: {self.message}" if self.field else self.message


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted call. ``body`` is the call exactly as sent (``type`` filled in from the
    endpoint for a single call; a browser ``writeKey`` removed, since it is a credential)."""

    type: str
    body: dict[str, Any]
    index: int | None = None


class Dropped(msgspec.Struct, frozen=True, kw_only=True):
    """A call Customer.io would drop, as sent, with the errors that drop it."""

    index: int | None
    body: Any
    errors: tuple[Issue, ...]


class PipelinesResult(msgspec.Struct, frozen=True, kw_only=True):
    """What Customer.io would do with a Pipelines request (before the write key is judged)."""

    route: PipelinesRoute | None
    #: 404 (unknown path), 405 (not POST), else 200: the write key and strict mode decide the
    #: rest (:func:`trackguard.contract.pipelines.responses.outcome`).
    status: int = 200
    strict: bool = False
    write_key: WriteKey | None = None
    calls: tuple[Call, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    #: Request-level errors and every call's errors, in order.
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    #: A batch's keys besides ``batch`` (``context``, ``sentAt``, ``_metadata``…; no ``writeKey``).
    envelope: dict[str, Any] = msgspec.field(default_factory=dict)


def issue_of(msg: m.Message, field: str = "", index: int | None = None) -> Issue:
    return Issue(
        code=msg.code,
        message=msg.text,
        severity=msg.severity,
        verified=msg.verified,
        field=field,
        index=index,
    )


def is_iso8601(value: Any) -> bool:
    """A string the SDKs could have written as an ISO-8601 date or date-time."""
    if not isinstance(value, str):
        return False
    if _SDK_TIME.fullmatch(value) is not None:
        try:
            datetime.fromisoformat(value)
            return True
        except ValueError:
            pass  # a leap second, or a day that does not exist: the full check decides
    return full_iso8601(value)


def full_iso8601(value: str) -> bool:
    """:func:`is_iso8601` without its fast path for the SDKs' own shape."""
    found = _ISO.fullmatch(value)
    if found is None:
        return False
    year, month, day, hour, minute, second, _frac, off_h, off_m = found.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    except ValueError:
        return False
    in_range = int(second or 0) <= 60  # a leap second is a valid ISO-8601 time
    return in_range and (off_h is None or (int(off_h) <= 23 and int(off_m) <= 59))


def text_of(value: Any) -> str | None:
    """A non-blank string, or an integer as its text (numeric ids are read as strings)."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _dig(body: dict[str, Any], dotted: str) -> Any:
    node: Any = body
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


class _Checker:
    """The issues of one call, each placed at ``prefix + field``."""

    __slots__ = ("body", "errors", "index", "prefix", "warnings")

    def __init__(self, body: dict[str, Any], index: int | None) -> None:
        self.body = body
        self.index = index
        self.prefix = "" if index is None else f"batch[{index}]."
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    def _at(self, field: str) -> str:
        return self.prefix + field if field else self.prefix.rstrip(".")

    def error(self, msg: m.Message, field: str = "") -> None:
        self.errors.append(issue_of(msg, self._at(field), self.index))

    def warn(self, msg: m.Message, field: str = "") -> None:
        self.warnings.append(issue_of(msg, self._at(field), self.index))

    # --- fields every call shares -----------------------------------------------------------

    def common(self) -> None:
        body = self.body
        for key in _OBJECT_KEYS:
            value = body.get(key)
            if value is not None and not isinstance(value, dict):
                self.error(m.NOT_AN_OBJECT, key)
        for key in _TIME_KEYS:
            value = body.get(key)
            if value is not None and not is_iso8601(value):
                self.error(m.TIMESTAMP_INVALID, key)
        message_id = body.get("messageId")
        if message_id is not None and (not isinstance(message_id, str) or not message_id):
            self.error(m.MESSAGE_ID_INVALID, "messageId")

    def user(self, *, required: bool) -> str | None:
        """The userId as text (flagging its shape); requires it or an anonymousId if asked."""
        body = self.body
        user_id, anonymous_id = body.get("userId"), body.get("anonymousId")
        user = text_of(user_id)
        if not isinstance(user_id, str | None) and user is None:
            self.error(m.USER_ID_INVALID, "userId")
        if not isinstance(anonymous_id, str | None) and text_of(anonymous_id) is None:
            self.error(m.ANONYMOUS_ID_INVALID, "anonymousId")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            self.warn(m.USER_ID_NUMBER, "userId")
        if user is not None:
            if user.startswith("cio_"):
                self.warn(m.USER_ID_CIO, "userId")
            elif is_email(user):
                self.warn(m.USER_ID_EMAIL, "userId")
        if required and user is None and text_of(anonymous_id) is None:
            self.error(m.USER_MISSING, "userId")
        return user

    # --- per type -----------------------------------------------------------------------------

    def identify(self) -> None:
        user = self.user(required=False)
        traits = self.body.get("traits")
        email = traits.get("email") if isinstance(traits, dict) else None
        anonymous = text_of(self.body.get("anonymousId"))
        has_email = isinstance(email, str) and email.strip() != ""
        if user is None and anonymous is None and not has_email:
            # The spec allows an empty userId and anonymousId when traits.email names the person.
            self.error(m.USER_MISSING, "userId")
        elif user is None and not has_email:
            self.warn(m.ANONYMOUS_IDENTIFY, "userId")

    def track(self) -> None:
        user = self.user(required=True)
        event = self.body.get("event")
        if event is None:
            self.error(m.EVENT_MISSING, "event")
            return
        if not isinstance(event, str) or not event.strip():
            self.error(m.EVENT_INVALID, "event")
            return
        semantic = semantic_event(event)
        if semantic is not None:
            self.warn(m.DESTRUCTIVE_EVENT if semantic.destructive else m.SEMANTIC_EVENT, "event")
            for path in semantic.required:
                value = user if path == "userId" else text_of(_dig(self.body, path))
                if value is None and path == "groupId":
                    value = text_of(_dig(self.body, "properties.groupId"))
                if value is None:
                    self.warn(m.SEMANTIC_FIELD_MISSING, path)
        elif event.strip().lower() in POSSIBLY_SEMANTIC:
            self.warn(m.POSSIBLY_SEMANTIC, "event")

    def page(self) -> None:
        self.user(required=True)
        self._name()
        url = _dig(self.body, "properties.url")
        if not isinstance(url, str) or not url.strip():
            self.warn(m.PAGE_WITHOUT_URL, "properties.url")

    def screen(self) -> None:
        self.user(required=True)
        name = self.body.get("name")
        self._name()
        if not isinstance(name, str) or not name.strip():
            self.warn(m.SCREEN_WITHOUT_NAME, "name")

    def _name(self) -> None:
        name = self.body.get("name")
        if name is not None and not isinstance(name, str):
            self.error(m.NAME_INVALID, "name")

    def group(self) -> None:
        self.user(required=False)  # the spec's Known User variant requires only groupId
        if text_of(self.body.get("groupId")) is None:
            self.error(m.GROUP_ID_MISSING, "groupId")
        type_id = _dig(self.body, "traits.objectTypeId")
        if type_id is not None and not (isinstance(type_id, str) and type_id.isdigit()):
            self.warn(m.OBJECT_TYPE_ID_INVALID, "traits.objectTypeId")
        relations = _dig(self.body, "traits.relationshipAttributes")
        if relations is not None and not isinstance(relations, dict):
            self.error(m.NOT_AN_OBJECT, "traits.relationshipAttributes")

    def alias(self) -> None:
        if text_of(self.body.get("userId")) is None:
            self.error(m.ALIAS_USER_ID_MISSING, "userId")
        else:
            self.user(required=False)
        if text_of(self.body.get("previousId")) is None:
            self.error(m.PREVIOUS_ID_MISSING, "previousId")


def _check_call(item: Any, kind: str | None, index: int | None, size: int) -> _Checker:
    """Every issue of one call; ``kind`` is the endpoint's type (None inside a batch)."""
    if not isinstance(item, dict):
        checker = _Checker({}, index)
        checker.error(m.CALL_NOT_OBJECT)
        return checker
    checker = _Checker(item, index)
    if size > m.MAX_CALL_BYTES:
        checker.error(m.CALL_TOO_LARGE)
        return checker
    given = item.get("type")
    if kind is None:
        if not isinstance(given, str) or given not in _TYPES:
            checker.error(m.TYPE_INVALID, "type")
            return checker
        kind = given
    elif given is not None and given != kind:
        checker.warn(m.TYPE_MISMATCH, "type")
    checker.common()
    getattr(checker, kind)()
    return checker


def _call_body(item: dict[str, Any], kind: str) -> dict[str, Any]:
    """The call as it is kept: ``type`` set from the endpoint, no ``writeKey``."""
    if item.get("type") == kind and "writeKey" not in item:
        return item
    body = {k: v for k, v in item.items() if k != "writeKey"}
    body["type"] = kind
    return body


class _Collect:
    __slots__ = ("calls", "dropped", "errors", "warnings")

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.dropped: list[Dropped] = []
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    def add(self, item: Any, kind: str | None, index: int | None, size: int) -> None:
        checker = _check_call(item, kind, index, size)
        self.warnings.extend(checker.warnings)
        if checker.errors:
            self.errors.extend(checker.errors)
            self.dropped.append(Dropped(index=index, body=item, errors=tuple(checker.errors)))
            return
        assert isinstance(item, dict)
        final = kind or item["type"]
        self.calls.append(Call(type=final, body=_call_body(item, final), index=index))


def _request_error(
    route: PipelinesRoute, strict: bool, key: WriteKey | None, msg: m.Message, body: Any = None
) -> PipelinesResult:
    issue = issue_of(msg)
    return PipelinesResult(
        route=route,
        strict=strict,
        write_key=key,
        errors=(issue,),
        dropped=(Dropped(index=None, body=body, errors=(issue,)),),
    )


def evaluate(request: Request, *, oversize: bool = False) -> PipelinesResult:
    """What Customer.io's Pipelines API would accept, drop and flag in ``request``.

    ``oversize`` says the door refused the body unread because it was too large.
    """
    route = route_for(request.path)
    headers = request.headers
    strict = is_strict(headers)
    if route is None:
        issue = issue_of(m.NOT_FOUND)
        return PipelinesResult(route=None, status=404, strict=strict, errors=(issue,))
    if request.method.upper() != "POST":
        issue = issue_of(m.METHOD_NOT_ALLOWED)
        return PipelinesResult(route=route, status=405, strict=strict, errors=(issue,))
    if route.kind == "metrics":
        return PipelinesResult(route=route, strict=strict)
    raw, problem = inflate(request.body, header(headers, "content-encoding"))
    key = write_key(headers, None)
    if oversize:
        problem = m.REQUEST_TOO_LARGE
    if problem is not None:
        return _request_error(route, strict, key, problem)
    ok, decoded = decode_body(raw)
    if not ok:
        return _request_error(route, strict, key, m.INVALID_JSON, raw.decode("utf-8", "replace"))
    key = write_key(headers, decoded)
    if not isinstance(decoded, dict):
        return _request_error(route, strict, key, m.BODY_NOT_OBJECT, decoded)
    found = _Collect()
    envelope: dict[str, Any] = {}
    if route.is_batch:
        items = decoded.get("batch")
        if not isinstance(items, list):
            return _request_error(route, strict, key, m.BATCH_NOT_LIST, decoded)
        envelope = {k: v for k, v in decoded.items() if k not in ("batch", "writeKey")}
        sent_at = envelope.get("sentAt")
        if sent_at is not None and not is_iso8601(sent_at):
            found.errors.append(issue_of(m.TIMESTAMP_INVALID, "sentAt"))
        context = envelope.get("context")
        if context is not None and not isinstance(context, dict):
            found.errors.append(issue_of(m.NOT_AN_OBJECT, "context"))
        if not items:
            found.warnings.append(issue_of(m.EMPTY_BATCH, "batch"))
        small = len(raw) <= m.MAX_CALL_BYTES
        for index, item in enumerate(items):
            found.add(item, None, index, len(raw) if small else len(_encode(item)))
    else:
        found.add(decoded, route.kind, None, len(raw))
    return PipelinesResult(
        route=route,
        strict=strict,
        write_key=key,
        calls=tuple(found.calls),
        dropped=tuple(found.dropped),
        errors=tuple(found.errors),
        warnings=tuple(found.warnings),
        envelope=envelope,
    )
