"""Check and fix operations against a tracking plan, compiled once for speed.

``CompiledPlan(plan).apply(op)`` returns an :class:`OpResult`: the operation as it should be
sent (a new one when something was fixed), the violations found, the changes made, and
whether the plan rejects it. Bodies are never mutated: a fix copies only the containers on
the path it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import msgspec

from trackguard.contract.check import utf8_len
from trackguard.contract.identifiers import is_email
from trackguard.contract.messages import MAX_EVENT_NAME_BYTES
from trackguard.contract.operations import Identifier, Operation
from trackguard.contract.pipelines.operations import person_of
from trackguard.contract.pipelines.semantic import Semantic, semantic_event
from trackguard.core import coerce
from trackguard.core.keys import person_key, value_at
from trackguard.core.state import NO_STATE, StateView
from trackguard.core.verdict import Change, Violation
from trackguard.plan.model import EVERY_VIEW, EventSpec, Plan, PropertySpec, with_every
from trackguard.plan.naming import follows, name_key, to_convention

Coercer = Callable[[Any], tuple[bool, Any]]

_COERCERS: Final[dict[str, Coercer]] = {
    "string": coerce.to_string,
    "number": coerce.to_number,
    "integer": coerce.to_integer,
    "boolean": coerce.to_boolean,
    "timestamp": coerce.to_timestamp,
    "email": coerce.to_email,
}

#: Identify keys with a meaning to Customer.io; never "unplanned attributes".
RESERVED_ATTRIBUTES: Final = frozenset(
    {
        "id",
        "email",
        "anonymous_id",
        "created_at",
        "_timestamp",
        "_update",
        "cio_id",
        "cio_relationships",
        "cio_subscription_preferences",
        "unsubscribed",
    }
)


def _is_type(value: Any, kind: str) -> bool:
    """Strict type test: is ``value`` already what ``kind`` asks for (no coercion)?"""
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return coerce.is_number(value)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "timestamp":
        return coerce.timestamp_kind(value) == "seconds"
    if kind == "email":
        return isinstance(value, str) and is_email(value.strip())
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return True  # any, enum (checked by values)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def late_message(late_by: float, max_age: float) -> str:
    """What an ``event_late`` finding says (the fast path words it alike)."""
    return (
        f"event is {_age(late_by)} old: Customer.io does not trigger campaigns on "
        f"events older than {_age(max_age)}"
    )


def _age(seconds: float) -> str:
    """A duration as people say it: ``3d 4h``, ``12m``, ``45s``."""
    s = int(seconds)
    if s >= 86_400:
        return f"{s // 86_400}d {s % 86_400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def _readdress(op: Operation, ident: Identifier | None) -> str:
    """A v1 path with its person segment replaced by ``ident`` (v2 paths never change)."""
    if op.api != "v1" or ident is None:
        return op.path
    parts = op.path.split("/")
    if len(parts) > 4 and parts[1:4] == ["api", "v1", "customers"]:
        parts[4] = quote(ident.value, safe="")
    return "/".join(parts)


class _Prop:
    """A property rule compiled for the hot path."""

    __slots__ = (
        "action",
        "checked",
        "coercer",
        "enum",
        "enum_folded",
        "items",
        "name",
        "nested",
        "nested_names",
        "pattern",
        "rule",
        "spec",
        "type",
    )

    def __init__(self, spec: PropertySpec, rule: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.rule = rule
        self.type = spec.type
        self.action = spec.action
        self.coercer = _COERCERS.get(spec.type)
        self.enum = frozenset(_hashable(v) for v in spec.values) if spec.values else None
        self.enum_folded: dict[str, Any] = {
            v.casefold(): v for v in spec.values or () if isinstance(v, str)
        }
        self.pattern = re.compile(spec.pattern) if spec.pattern else None
        self.items = spec.items
        self.nested = (
            tuple(_Prop(p, f"{rule}.properties.{p.name}") for p in spec.properties)
            if spec.properties
            else None
        )
        self.nested_names = frozenset(p.name for p in spec.properties or ())
        #: Whether any constraint applies beyond the type (most properties have none).
        self.checked = (
            spec.bounded or spec.properties is not None or spec.items not in (None, "any", "enum")
        )


def _hashable(v: Any) -> Any:
    return msgspec.json.encode(v) if isinstance(v, dict | list) else (type(v).__name__, v)


class _Event:
    __slots__ = (
        "dedupe",
        "derive",
        "name",
        "names",
        "props",
        "rule",
        "spec",
        "unplanned",
        "versions",
    )

    def __init__(
        self, spec: EventSpec, plan: Plan, section: str = "events", every: _Event | None = None
    ) -> None:
        """``every``: the section's ``"*"`` entry, whose properties this entry has too unless
        it declares them itself (its own spec wins)."""
        self.spec = spec
        self.name = spec.name
        self.rule = f"{section}.{spec.name}"
        props = tuple(_Prop(p, f"{self.rule}.properties.{p.name}") for p in spec.properties)
        if every is not None:
            props = with_every(props, every.props)
        self.props: tuple[_Prop, ...] = props
        self.names: frozenset[str] = frozenset(p.name for p in props)
        self.unplanned = spec.unplanned_properties or plan.unplanned.properties
        self.dedupe = tuple(spec.dedupe_key.split(".")) if spec.dedupe_key else None
        self.derive = tuple(spec.derive_total.split(".")) if spec.derive_total else None
        self.versions: dict[str, tuple[tuple[_Prop, ...], frozenset[str], str]] = {}
        for v in spec.versions:
            vrule = f"{self.rule}.versions.{v.version}"
            props = tuple(_Prop(p, f"{vrule}.properties.{p.name}") for p in v.properties)
            names = frozenset(p.name for p in v.properties)
            self.versions[v.version] = (props, names, v.unplanned_properties or self.unplanned)


class _Catalog:
    """One section of planned names (events, pages or screens): each name and alias, and
    every name by its words (``Order Completed`` is ``order_completed`` written otherwise).
    ``every`` is a pages or screens section's ``"*"`` entry: checked on every call of it."""

    __slots__ = ("by_key", "by_name", "every", "noun")

    def __init__(self, specs: dict[str, EventSpec], plan: Plan, section: str, noun: str) -> None:
        self.noun = noun
        self.by_name: dict[str, _Event] = {}
        self.by_key: dict[str, _Event] = {}
        self.every: _Event | None = None
        if section != "events" and EVERY_VIEW in specs:
            self.every = _Event(specs[EVERY_VIEW], plan, section)
        for spec in specs.values():
            if self.every is not None and spec is self.every.spec:
                continue
            ev = _Event(spec, plan, section, self.every)
            self.by_name[ev.name] = ev
            self.by_key.setdefault(name_key(ev.name), ev)
            for alias in spec.aliases:
                self.by_name.setdefault(alias, ev)
                self.by_key.setdefault(name_key(alias), ev)


class OpResult(msgspec.Struct, frozen=True, kw_only=True):
    operation: Operation
    violations: tuple[Violation, ...] = ()
    changes: tuple[Change, ...] = ()
    rejected: bool = False
    dedupe_key: str | None = None


class _Work:
    """Findings for one operation, and its body rewritten copy-on-write."""

    __slots__ = ("body", "changes", "index", "reject", "violations")

    def __init__(self, body: dict[str, Any] | None, index: int | None) -> None:
        self.body = body
        self.index = index
        self.violations: list[Violation] = []
        self.changes: list[Change] = []
        self.reject = False

    def flag(self, code: str, rule: str, path: str, message: str, action: str) -> None:
        if action == "reject":
            self.reject = True
        self.violations.append(
            Violation(
                code=code,
                rule=rule,
                path=path,
                message=message,
                action=action,
                batch_index=self.index,
            )
        )

    def set(self, keys: tuple[str, ...], before: Any, after: Any, rule: str) -> None:
        """Replace the value at ``keys`` in a copy of the body."""
        assert self.body is not None
        root = dict(self.body)
        node = root
        for key in keys[:-1]:
            child = dict(node[key])
            node[key] = child
            node = child
        node[keys[-1]] = after
        self.body = root
        self.changes.append(
            Change(
                path=".".join(keys), before=before, after=after, rule=rule, batch_index=self.index
            )
        )


class CompiledPlan:
    """A plan prepared for checking many operations fast."""

    __slots__ = ("attributes", "events", "pages", "plan", "screens", "semantic_allowed")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.events = _Catalog(plan.events, plan, "events", "event")
        self.pages = _Catalog(plan.pages, plan, "pages", "page")
        self.screens = _Catalog(plan.screens, plan, "screens", "screen")
        self.semantic_allowed = frozenset(plan.semantic_events.allow)
        self.attributes = {
            name: _Prop(spec, f"attributes.{name}") for name, spec in plan.attributes.items()
        }

    # --- entry point ----------------------------------------------------------------------------

    def apply(
        self, op: Operation, state: StateView = NO_STATE, now: float | None = None
    ) -> OpResult:
        """Check and fix one operation; ``state`` is what earlier traffic taught, ``now`` the
        time it was received (timeliness is judged only when it is given)."""
        work = _Work(op.body, op.batch_index)
        ident = self._identity(op, work, state)
        ev: _Event | None = None
        if op.action in ("event", "anonymous_event") and op.body is not None:
            ev = self._event(op, work)
        elif op.action in ("page", "screen") and op.api == "pipelines" and op.body is not None:
            self._view(op, work)
        elif op.action == "identify" and op.type == "person" and isinstance(op.data, dict):
            self._identify(op, work)
        if op.is_event and op.body is not None and "timestamp" in op.body and op.api != "pipelines":
            self._timestamp(op, work)  # Pipelines timestamps are ISO-8601 strings, as they must be
        if now is not None and op.is_event and work.body is not None:
            self._timeliness(op, work, state, now)
        dedupe = total = None
        if ev is not None:  # keys and totals read from the body as fixed
            dedupe = self._dedupe_key(ev, work.body)
            total = self._derive_total(ev, work.body)
        if work.body is op.body and ident is op.identifier and dedupe is None and total is None:
            new_op = op
        else:
            path = op.path if ident is op.identifier else _readdress(op, ident)
            new_op = msgspec.structs.replace(
                op,
                body=work.body,
                identifier=ident,
                path=path,
                dedupe_key=dedupe,
                derive_total=total,
            )
        return OpResult(
            operation=new_op,
            violations=tuple(work.violations),
            changes=tuple(work.changes),
            rejected=work.reject,
            dedupe_key=dedupe,
        )

    # --- identity -------------------------------------------------------------------------------

    def _identity(self, op: Operation, work: _Work, state: StateView) -> Identifier | None:
        policy = self.plan.identity
        ident = op.identifier
        if op.api == "pipelines" and op.type == "object" and op.body is not None:
            self._group_member(op, work, state)
            return ident
        if op.action == "anonymous_event" or (ident is not None and ident.kind == "anonymous_id"):
            if policy.anonymous != "allow":
                work.flag(
                    "identity_anonymous",
                    "identity.anonymous",
                    "anonymous_id",
                    "anonymous event: the plan does not allow anonymous activity",
                    policy.anonymous,
                )
            return ident
        if ident is None or op.type != "person":
            return ident
        if (
            ident.kind in ("id", "email")
            and ident.kind != policy.canonical
            and policy.email_keyed != "allow"
        ):
            ident = self._not_canonical(op, work, state, ident)
        if ident.kind == "id" and is_email(ident.value):
            self._email_in_id(work, "identifiers.id", ident.value)
        body = op.body
        if (
            op.api == "v1"
            and op.action == "identify"
            and body is not None
            and isinstance(body.get("id"), str)
            and is_email(body["id"])
        ):
            self._email_in_id(work, "id", body["id"])
        if op.action == "identify" and body is not None:
            self._identify_checks(op, work, state, ident)
        return ident

    def _group_member(self, op: Operation, work: _Work, state: StateView) -> None:
        """A Pipelines group call relates a person to the object: that person (``userId``, else
        ``anonymousId``) is checked like the person of any call; the object stays the call's
        identifier."""
        assert op.body is not None
        member = person_of(op.body)
        if member is not None:
            as_person = msgspec.structs.replace(
                op, type="person", action="relate", identifier=member
            )
            self._identity(as_person, work, state)

    def _not_canonical(
        self, op: Operation, work: _Work, state: StateView, ident: Identifier
    ) -> Identifier:
        """An email-keyed call where ids are canonical: rewritten when the id is known."""
        policy = self.plan.identity
        where = {"v1": "identifier", "pipelines": "userId"}.get(op.api, f"identifiers.{ident.kind}")
        message = (
            f"person addressed by {ident.kind}; the plan's canonical identifier is "
            f"{policy.canonical}"
        )
        if policy.email_keyed != "fix" or ident.kind != "email":
            action = policy.email_keyed if policy.email_keyed != "fix" else "warn"
            work.flag("identity_not_canonical", "identity.email_keyed", where, message, action)
            return ident
        known = state.id_for_email(ident.value.strip().lower())
        if known is None:
            if policy.unknown_email != "allow":
                work.flag(
                    "identity_not_canonical",
                    "identity.unknown_email",
                    where,
                    message + f"; no id is known for {_show(ident.value)} yet",
                    policy.unknown_email,
                )
            return ident
        work.flag(
            "identity_not_canonical",
            "identity.email_keyed",
            where,
            message + f"; rewritten to id {_show(known)}",
            "fix",
        )
        if op.api == "v2" and work.body is not None:
            work.set(
                ("identifiers",), {"email": ident.value}, {"id": known}, "identity.email_keyed"
            )
        elif op.api == "pipelines" and work.body is not None:
            work.set(("userId",), work.body.get("userId"), known, "identity.email_keyed")
        else:
            work.changes.append(
                Change(
                    path="identifier",
                    before=ident.value,
                    after=known,
                    rule="identity.email_keyed",
                    batch_index=work.index,
                )
            )
        return Identifier("id", known)

    def _identify_checks(
        self, op: Operation, work: _Work, state: StateView, ident: Identifier
    ) -> None:
        """Conflicts, numeric ids and ids differing only in case, on identify calls."""
        policy = self.plan.identity
        body = op.body
        assert body is not None
        attrs = body.get("attributes") if op.api == "v2" else body
        raw_id = (
            body.get("identifiers", {}).get("id")
            if op.api == "v2" and isinstance(body.get("identifiers"), dict)
            else body.get("id")
        )
        if op.api == "pipelines":
            attrs, raw_id = op.data, body.get("userId")
        if policy.id_type != "allow" and isinstance(raw_id, int) and not isinstance(raw_id, bool):
            work.flag(
                "identity_id_type",
                "identity.id_type",
                "identifiers.id" if op.api == "v2" else "id",
                f"id {raw_id} is a number; ids are strings ({_show(str(raw_id))})",
                policy.id_type,
            )
        if ident.kind != "id":
            return
        known_case = state.id_for_folded(ident.value.casefold())
        if policy.id_type != "allow" and known_case is not None and known_case != ident.value:
            work.flag(
                "identity_id_case",
                "identity.id_type",
                "identifier",
                f"id {_show(ident.value)} differs only in case from known id {_show(known_case)}",
                policy.id_type,
            )
        email = attrs.get("email") if isinstance(attrs, dict) else None
        if not isinstance(email, str) or not is_email(email.strip()):
            return
        bound = state.id_for_email(email.strip().lower())
        if bound is not None and bound != ident.value:
            work.flag(
                "identity_conflict",
                "identity.conflict",
                "email",
                f"email {_show(email.strip().lower())} is already bound to id {_show(bound)}; "
                f"this identify binds it to id {_show(ident.value)} (not merged)",
                policy.conflict,
            )

    def _email_in_id(self, work: _Work, path: str, value: str) -> None:
        action = self.plan.identity.email_in_id
        work.flag(
            "identity_email_in_id",
            "identity.email_in_id",
            path,
            f"an email address ({_show(value)}) is used as the person id",
            "reject" if action == "fix" else action,
        )

    # --- events ---------------------------------------------------------------------------------

    def _event(self, op: Operation, work: _Work) -> _Event | None:
        body = op.body
        assert body is not None
        raw = body.get(op.name_key)
        if not isinstance(raw, str):
            return None
        if op.api == "pipelines":
            semantic = semantic_event(raw)
            if semantic is not None:  # an action, not a record: never renamed or matched
                self._semantic(work, raw, semantic, op.name_key)
                return None
        name = raw.strip()
        naming = self.plan.naming
        ev = self._lookup(work, self.events, raw, op.name_key)
        if ev is None:
            policy = self.plan.unplanned.events
            if policy != "allow":
                work.flag(
                    "event_unplanned",
                    "unplanned.events",
                    op.name_key,
                    f"event {_show(raw)} is not in the tracking plan",
                    policy,
                )
            if not follows(name, naming.convention):
                fixed = to_convention(name, naming.convention)
                self._rename(
                    work,
                    raw,
                    fixed,
                    "event_name_convention",
                    "naming",
                    f"event {_show(raw)} does not follow {naming.convention}",
                    key=op.name_key,
                )
        else:
            self._planned_properties(op, work, ev)
        if op.api == "pipelines" and work.body is not None:
            final = work.body.get(op.name_key)
            semantic = semantic_event(final) if final != raw else None
            if semantic is not None:  # renamed into a semantic event: that needs an allow too
                self._semantic(work, final, semantic, op.name_key)
        return ev

    def _semantic(self, work: _Work, raw: Any, semantic: Semantic, key: str) -> None:
        """A Customer.io semantic event the plan does not allow is quarantined."""
        if semantic.name in self.semantic_allowed:
            return
        work.flag(
            "semantic_event_not_allowed",
            "semantic_events.allow",
            key,
            f"event {_show(raw)} is Customer.io's semantic event {semantic.name!r}, which "
            f"{semantic.effect}; the plan does not list it in semantic_events.allow",
            "reject",
        )

    def _view(self, op: Operation, work: _Work) -> None:
        """A Pipelines page or screen call, matched by its ``name`` in ``pages:``/``screens:``."""
        assert work.body is not None
        page = op.action == "page"
        catalog = self.pages if page else self.screens
        raw = work.body.get("name")
        ev = None
        if isinstance(raw, str) and raw.strip():
            ev = self._lookup(work, catalog, raw, "name")
        if ev is not None:
            self._planned_properties(op, work, ev)
            return
        every = catalog.every
        if every is not None:  # a call no entry names still has the "*" entry's properties
            data = work.body.get("properties")
            if data is None or isinstance(data, dict):
                self._properties(
                    work, ("properties",), data or {}, every.props, every.names, "allow", every.rule
                )
        policy = self.plan.unplanned.pages if page else self.plan.unplanned.screens
        if policy == "allow":
            return
        code = "page_unplanned" if page else "screen_unplanned"
        if isinstance(raw, str) and raw.strip():
            message = f"{catalog.noun} {_show(raw)} is not in the tracking plan"
        else:
            message = (
                f"{catalog.noun} without a name: the plan's {catalog.noun}s are matched by name"
            )
        work.flag(code, f"unplanned.{catalog.noun}s", "name", message, policy)

    def _lookup(self, work: _Work, catalog: _Catalog, raw: str, key: str) -> _Event | None:
        """The planned entry ``raw`` names, renamed to it per ``naming.action`` when ``raw`` is
        an alias or the name written differently; None when the section has no such name."""
        name = raw.strip()
        noun = catalog.noun
        ev = catalog.by_name.get(name)
        if ev is not None and ev.name != name:
            self._rename(
                work,
                raw,
                ev.name,
                "event_alias",
                f"{ev.rule}.aliases",
                f"{noun} {_show(raw)} is an alias of {ev.name!r}",
                key=key,
            )
        elif ev is None:
            ev = catalog.by_key.get(name_key(name))
            if ev is not None:
                self._rename(
                    work,
                    raw,
                    ev.name,
                    "event_name_drift",
                    "naming",
                    f"{noun} {_show(raw)} is {ev.name!r} written differently",
                    key=key,
                )
        return ev

    def _planned_properties(self, op: Operation, work: _Work, ev: _Event) -> None:
        """The call's data against the entry's properties (or its ``schema_version``'s)."""
        data = work.body.get(op.data_key) if work.body is not None and op.data_key else None
        props, names = ev.props, ev.names
        unplanned: str = ev.unplanned
        if isinstance(data, dict) and "schema_version" in data and ev.versions:
            version = str(data["schema_version"])
            found = ev.versions.get(version)
            if found is None:
                work.flag(
                    "schema_version_unknown",
                    f"{ev.rule}.versions",
                    f"{op.data_key}.schema_version",
                    f"{ev.name} has no schema_version {_show(data['schema_version'])}; "
                    f"checked against the base version",
                    "warn",
                )
            else:
                props, names, unplanned = found
        if data is None or isinstance(data, dict):
            self._properties(
                work, (op.data_key or "data",), data or {}, props, names, unplanned, ev.rule
            )

    def _rename(
        self,
        work: _Work,
        raw: str,
        fixed: str,
        code: str,
        rule: str,
        message: str,
        key: str = "name",
    ) -> None:
        """Rename the event at ``key`` of the body (``event`` in a Pipelines track call)."""
        action = self.plan.naming.action
        if action == "fix" and utf8_len(fixed) > MAX_EVENT_NAME_BYTES:
            # Renaming would turn an accepted name into one Customer.io rejects: keep it.
            work.flag(
                code,
                rule,
                key,
                message + f"; not renamed: {fixed!r} would be longer than "
                f"{MAX_EVENT_NAME_BYTES} bytes",
                "warn",
            )
        elif action == "fix":
            work.flag(code, rule, key, message + f"; renamed to {fixed!r}", "fix")
            work.set((key,), raw, fixed, rule)
        else:
            work.flag(code, rule, key, message, action)

    def _dedupe_key(self, ev: _Event, body: dict[str, Any] | None) -> str | None:
        if ev.dedupe is None:
            return None
        node = value_at(body, ev.dedupe)
        if node is None or isinstance(node, dict | list) or node == "":
            return None
        return f"{ev.name}:{node}"

    def _derive_total(self, ev: _Event, body: dict[str, Any] | None) -> float | None:
        """The order total to add to lifetime value (after fixes), or None."""
        if ev.derive is None:
            return None
        ok, total = coerce.to_number(value_at(body, ev.derive))
        return float(total) if ok else None

    # --- properties -----------------------------------------------------------------------------

    def _properties(
        self,
        work: _Work,
        base: tuple[str, ...],
        data: dict[str, Any],
        props: tuple[_Prop, ...],
        known: frozenset[str],
        unplanned: str,
        rule: str,
    ) -> None:
        for prop in props:
            value = data.get(prop.name)
            if value is None:
                if prop.spec.required:
                    work.flag(
                        "property_missing",
                        prop.rule,
                        ".".join((*base, prop.name)),
                        f"required property {prop.name!r} is missing",
                        "reject" if prop.action == "fix" else prop.action,
                    )
                continue
            if (
                prop.type != "enum"
                and not prop.checked
                and _is_type(value, prop.type)
                and (prop.type != "email" or value == value.strip().lower())
            ):
                continue  # the common case: right type, nothing more to check
            self._value(work, (*base, prop.name), value, prop)
        if unplanned != "allow" and not known.issuperset(data):
            for key in data:
                if key not in known and key != "schema_version":
                    work.flag(
                        "property_unplanned",
                        f"{rule}.unplanned_properties",
                        ".".join((*base, key)),
                        f"property {key!r} is not in the tracking plan",
                        unplanned,
                    )

    def _value(self, work: _Work, keys: tuple[str, ...], value: Any, prop: _Prop) -> None:
        path = ".".join(keys)
        action = prop.action
        kind = prop.type
        if kind == "enum":
            self._enum(work, keys, value, prop)
            return
        if not _is_type(value, kind):
            ok, fixed = (False, None)
            if action == "fix" and prop.coercer is not None:
                ok, fixed = prop.coercer(value)
            if ok:
                code = "timestamp_format" if kind == "timestamp" else "property_type"
                work.flag(
                    code,
                    prop.rule,
                    path,
                    f"{prop.name!r} should be {kind}, got {_describe(value)} "
                    f"{_show(value)}; converted to {_show(fixed)}",
                    "fix",
                )
                work.set(keys, value, fixed, prop.rule)
                value = fixed
            else:
                work.flag(
                    "property_type",
                    prop.rule,
                    path,
                    f"{prop.name!r} should be {kind}, got {_describe(value)} {_show(value)}",
                    "reject" if action == "fix" else action,
                )
                return
        elif kind == "email" and value != value.strip().lower():
            fixed = value.strip().lower()
            if action == "fix":
                work.flag(
                    "email_not_normalized",
                    prop.rule,
                    path,
                    f"{prop.name!r} email is not trimmed and lower-case; normalized",
                    "fix",
                )
                work.set(keys, value, fixed, prop.rule)
                value = fixed
            else:
                work.flag(
                    "email_not_normalized",
                    prop.rule,
                    path,
                    f"{prop.name!r} email is not trimmed and lower-case",
                    action,
                )
        if prop.checked:
            self._constraints(work, keys, value, prop)

    def _enum(self, work: _Work, keys: tuple[str, ...], value: Any, prop: _Prop) -> None:
        assert prop.enum is not None
        if _hashable(value) in prop.enum:
            return
        path = ".".join(keys)
        folded = prop.enum_folded.get(value.strip().casefold()) if isinstance(value, str) else None
        if folded is not None and prop.action == "fix":
            work.flag(
                "property_enum",
                prop.rule,
                path,
                f"{prop.name!r} {_show(value)} is not one of the allowed values; "
                f"normalized to {_show(folded)}",
                "fix",
            )
            work.set(keys, value, folded, prop.rule)
            return
        allowed = ", ".join(str(v) for v in prop.spec.values or ())
        work.flag(
            "property_enum",
            prop.rule,
            path,
            f"{prop.name!r} {_show(value)} is not one of: {allowed}",
            "reject" if prop.action == "fix" else prop.action,
        )

    def _constraints(self, work: _Work, keys: tuple[str, ...], value: Any, prop: _Prop) -> None:
        spec = prop.spec
        problems: list[str] = []
        if coerce.is_number(value):
            if spec.minimum is not None and value < spec.minimum:
                problems.append(f"is less than the minimum {spec.minimum:g}")
            if spec.maximum is not None and value > spec.maximum:
                problems.append(f"is more than the maximum {spec.maximum:g}")
        elif isinstance(value, str):
            if spec.min_length is not None and len(value) < spec.min_length:
                problems.append(f"is shorter than {spec.min_length} characters")
            if spec.max_length is not None and len(value) > spec.max_length:
                problems.append(f"is longer than {spec.max_length} characters")
            if prop.pattern is not None and prop.pattern.search(value) is None:
                problems.append(f"does not match {spec.pattern!r}")
        elif isinstance(value, list):
            if spec.min_items is not None and len(value) < spec.min_items:
                problems.append(f"has fewer than {spec.min_items} items")
            if spec.max_items is not None and len(value) > spec.max_items:
                problems.append(f"has more than {spec.max_items} items")
            if prop.items is not None and prop.items not in ("any", "enum"):
                bad = [i for i, item in enumerate(value) if not _is_type(item, prop.items)]
                if bad:
                    problems.append(f"item {bad[0]} is not {prop.items}")
        elif isinstance(value, dict) and prop.nested is not None:
            self._properties(work, keys, value, prop.nested, prop.nested_names, "allow", prop.rule)
        if problems:
            path = ".".join(keys)
            action = "reject" if prop.action == "fix" else prop.action
            for problem in problems:
                work.flag(
                    "property_constraint",
                    prop.rule,
                    path,
                    f"{prop.name!r} {_show(value)} {problem}",
                    action,
                )

    # --- identify -------------------------------------------------------------------------------

    def _identify(self, op: Operation, work: _Work) -> None:
        attrs = op.data
        assert isinstance(attrs, dict)
        base: tuple[str, ...] = (op.data_key,) if op.data_key else ()
        policy = self.plan.unplanned.attributes
        for key, value in attrs.items():
            prop = self.attributes.get(key)
            if prop is not None:
                if value is not None:
                    self._value(work, (*base, key), value, prop)
            elif (
                policy != "allow"
                and key not in RESERVED_ATTRIBUTES
                and not key.startswith("cio_subscription_preferences.")
            ):
                work.flag(
                    "attribute_unplanned",
                    "unplanned.attributes",
                    ".".join((*base, key)),
                    f"attribute {key!r} is not in the tracking plan",
                    policy,
                )

    # --- timeliness -----------------------------------------------------------------------------

    def _timeliness(self, op: Operation, work: _Work, state: StateView, now: float) -> None:
        """Too old to trigger campaigns, from the future, or stale after a purchase."""
        assert work.body is not None
        ts = work.body.get("timestamp")
        if not isinstance(ts, int) or isinstance(ts, bool):
            return  # no timestamp: Customer.io uses the time of receipt
        policy = self.plan.timeliness
        if policy.late != "allow" and now - ts > policy.max_age:
            work.flag(
                "event_late",
                "timeliness.max_age",
                "timestamp",
                late_message(now - ts, policy.max_age),
                policy.late,
            )
        if policy.future != "allow" and ts - now > policy.future_skew:
            work.flag(
                "event_future",
                "timeliness.future_skew",
                "timestamp",
                f"event timestamp is {_age(ts - now)} in the future",
                policy.future,
            )
        if policy.stale != "allow" and policy.stale_events:
            name = work.body.get("name")
            if name in policy.stale_events:
                last = state.last_order_at(person_key(op))
                if last is not None and ts < last:
                    work.flag(
                        "stale_after_purchase",
                        "timeliness.stale_after_purchase",
                        "timestamp",
                        f"{name} happened before the person's {policy.purchase_event} "
                        f"({_age(last - ts)} earlier) and arrived after it",
                        policy.stale,
                    )

    # --- event timestamp ------------------------------------------------------------------------

    def _timestamp(self, op: Operation, work: _Work) -> None:
        assert work.body is not None
        value = work.body.get("timestamp")
        if value is None:
            return
        kind = coerce.timestamp_kind(value)
        if kind == "seconds":
            return
        action = self.plan.timestamps.action
        if action == "fix":
            ok, fixed = coerce.to_timestamp(value)
            if ok:
                work.flag(
                    "timestamp_format",
                    "timestamps",
                    "timestamp",
                    f"timestamp {_show(value)} is {kind.replace('_', ' ')}, not unix "
                    f"seconds; converted to {fixed}",
                    "fix",
                )
                work.set(("timestamp",), value, fixed, "timestamps")
                return
        work.flag(
            "timestamp_format",
            "timestamps",
            "timestamp",
            f"timestamp {_show(value)} is {kind.replace('_', ' ')}, not unix seconds",
            "reject" if action == "fix" else action,
        )
