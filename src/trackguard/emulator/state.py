"""An in-memory Customer.io workspace that applies accepted Track API operations.

The workspace identifies people by email *or* id, the most common setup. Semantics follow
Customer.io's docs (see ``docs/emulator.md`` for the full list and the choices made where the
docs are silent):

* identify creates or updates a person addressed by id, email or ``cio_<cio_id>``; email is
  case-insensitive, id case-sensitive; ``_update: true`` never creates; a new id with an email
  that already belongs to someone updates that person; ids and emails change only when the
  person is addressed by cio_id; ``_timestamp`` (v2 ``timestamp``) older than the last applied
  update is dropped.
* events of unknown people are kept under the identifier they were sent to, without creating
  anyone; an event ``id`` seen before is ignored and counted as a duplicate.
* anonymous events join a person whose identify carries their ``anonymous_id``: those received
  before it, and those received up to five minutes after it.

Whatever Customer.io answers 200 to but does not do (unknown cio_id, conflicting identifiers,
stale timestamps, merges without a primary...) leaves the state unchanged and is kept as a
*failure*, as Customer.io's activity log would show it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from trackguard.contract.identifiers import classify, is_email
from trackguard.contract.operations import Identifier, Operation
from trackguard.contract.routes import RouteMatch, match
from trackguard.emulator.model import (
    CustomObject,
    Device,
    Event,
    Person,
    as_text,
    merge_attributes,
    unix_seconds,
)

#: Events with an identify's anonymous_id received this long after it still join the person.
ANONYMOUS_WINDOW_SECONDS: Final = 300.0
_PERSON_KINDS: Final = frozenset({"id", "email", "cio_id"})

CONFLICT: Final = "The identifier is already associated with a different profile."
NO_CIO_ID: Final = "no person has this cio_id"
NO_PERSON: Final = "no person matches the identifier"
UPDATE_ONLY: Final = "_update is true and no person matches"
STALE: Final = "an update with a later timestamp was already applied"
SUPPRESSED: Final = "the identifier is suppressed"
EMAIL_MISMATCH: Final = "email attribute and identifier are not the same value"
UNSUPPORTED: Final = "this identifier type cannot address this action"
MERGE_PRIMARY: Final = "the primary person does not exist"
MERGE_SECONDARY: Final = "the secondary person does not exist"
ANONYMOUS_TAKEN: Final = "anonymous_id already belongs to another person"
NO_OBJECT: Final = "no object matches the identifiers"


def _key(ident: Identifier) -> tuple[str, str]:
    return (ident.kind, ident.value.lower() if ident.kind == "email" else ident.value)


def _merge_plain(target: dict[str, Any], attributes: Any) -> None:
    """Object and relationship attributes: ``null`` or ``""`` removes, anything else sets."""
    if not isinstance(attributes, dict):
        return
    for key, value in attributes.items():
        if value is None or value == "":
            target.pop(key, None)
        else:
            target[key] = value


def _merge_side(value: Any) -> Identifier | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, raw),) = value.items()
    text = as_text(raw)
    if text is None or kind not in _PERSON_KINDS:
        return None
    return Identifier(kind, text[4:] if kind == "cio_id" and text.startswith("cio_") else text)


class EmulatorState:
    """People, devices, events, objects, segments and deliveries; every method is thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self.people: dict[str, Person] = {}
            self.events: list[Event] = []
            self.objects: dict[str, CustomObject] = {}
            #: (person cio_id, cio_object_id) -> relationship attributes
            self.relations: dict[tuple[str, str], dict[str, Any]] = {}
            #: segment id -> member cio_ids, in the order they were added
            self.segments: dict[str, dict[str, None]] = {}
            self.forms: list[dict[str, Any]] = []
            self.deliveries: list[dict[str, Any]] = []
            self.failures: list[dict[str, Any]] = []
            self.events_stored = 0
            self.duplicates = 0
            self._by_id: dict[str, str] = {}
            self._by_email: dict[str, str] = {}
            self._device_owner: dict[str, str] = {}
            self._object_keys: dict[tuple[str, str], str] = {}
            self._seen_event_ids: set[str] = set()
            self._anonymous: dict[str, tuple[str, float]] = {}
            self._suppressed: list[frozenset[tuple[str, str]]] = []
            self._next_person = 1
            self._next_object = 1
            self._next_event = 1

    # --- applying operations ------------------------------------------------------------------

    def apply(self, operations: Iterable[Operation]) -> None:
        """Apply accepted operations in order, as one step."""
        with self.lock:
            for op in operations:
                self._apply(op, self.clock())

    def _apply(self, op: Operation, now: float) -> None:
        kind, action = op.type, op.action
        if kind == "person":
            if action in ("event", "page", "screen", "anonymous_event"):
                self._event(op, now)
            elif action == "identify":
                self._identify_op(op, now)
            elif action == "merge":
                self._merge_op(op, now)
            elif action in ("suppress", "unsuppress"):
                self._suppression(op)
            else:
                self._person_op(op, now)
        elif kind == "object":
            self._object_op(op, now)
        elif kind == "segment":
            self._segment_op(op, now)
        elif kind == "form":
            ident = op.identifier
            body = op.body or {}
            form_id = "" if ident is None else ident.value
            self.forms.append({"form_id": form_id, "data": body.get("data"), "received_at": now})
        elif kind in ("metric", "delivery"):
            self._delivery(op, now)

    def _fail(self, action: str, ident: Identifier | None, reason: str, now: float) -> None:
        self.failures.append(
            {
                "action": action,
                "identifier": None if ident is None else {ident.kind: ident.value},
                "reason": reason,
                "received_at": now,
            }
        )

    # --- people -------------------------------------------------------------------------------

    def _find(self, ident: Identifier | None) -> Person | None:
        if ident is None:
            return None
        if ident.kind == "cio_id":
            return self.people.get(ident.value)
        if ident.kind == "id":
            cio = self._by_id.get(ident.value)
        elif ident.kind == "email":
            cio = self._by_email.get(ident.value.lower())
        else:
            return None
        return None if cio is None else self.people.get(cio)

    def _suppressed_any(self, idents: Iterable[Identifier]) -> bool:
        keys = {_key(i) for i in idents}
        return any(keys & group for group in self._suppressed)

    def _create(self, person_id: str | None, email: str | None) -> Person:
        person = Person(cio_id=f"{self._next_person:08x}")
        self._next_person += 1
        self.people[person.cio_id] = person
        self._set_identifiers(person, person_id, email)
        return person

    def _set_identifiers(self, person: Person, person_id: str | None, email: str | None) -> None:
        if person_id is not None and person_id != person.id:
            if person.id is not None:
                self._by_id.pop(person.id, None)
            person.id = person_id
            self._by_id[person_id] = person.cio_id
        if email is not None and (person.email is None or email.lower() != person.email.lower()):
            if person.email is not None:
                self._by_email.pop(person.email.lower(), None)
            person.email = email
            self._by_email[email.lower()] = person.cio_id

    def _unindex(self, person: Person) -> None:
        del self.people[person.cio_id]
        if person.id is not None:
            self._by_id.pop(person.id, None)
        if person.email is not None:
            self._by_email.pop(person.email.lower(), None)

    def _remove_person(self, person: Person) -> None:
        """Delete a person and all their data."""
        cio = person.cio_id
        self._unindex(person)
        for token in person.devices:
            self._device_owner.pop(token, None)
        self.events = [e for e in self.events if e.person != cio]
        for members in self.segments.values():
            members.pop(cio, None)
        for key in [k for k in self.relations if k[0] == cio]:
            del self.relations[key]
        for anonymous_id in person.anonymous_ids:
            self._anonymous.pop(anonymous_id, None)

    def _identify_op(self, op: Operation, now: float) -> None:
        body = op.body or {}
        attributes = op.data if isinstance(op.data, dict) else {}
        if op.api == "v1":
            stamp = attributes.get("_timestamp")
            rels = attributes.get("cio_relationships")
            add = True
            if isinstance(rels, dict):
                add = rels.get("action") != "delete_relationships"
                rels = rels.get("relationships")
        else:
            stamp, rels, add = body.get("timestamp"), body.get("cio_relationships"), True
        person = self._identify(op.identifier, attributes, stamp, now)
        if person is not None and isinstance(rels, list):
            self._relate(person, rels, add=add, now=now)

    def _identify(
        self, ident: Identifier | None, attributes: dict[str, Any], stamp: Any, now: float
    ) -> Person | None:
        if ident is None or ident.kind not in _PERSON_KINDS:
            self._fail("identify", ident, UNSUPPORTED, now)
            return None
        body_id = as_text(attributes.get("id"))
        raw_email = attributes.get("email")
        body_email = raw_email if isinstance(raw_email, str) and raw_email else None
        if ident.kind == "email" and body_email and body_email.lower() != ident.value.lower():
            self._fail("identify", ident, EMAIL_MISMATCH, now)
            return None
        wanted = [ident]
        if body_id is not None:
            wanted.append(Identifier("id", body_id))
        if body_email is not None:
            wanted.append(Identifier("email", body_email))
        if self._suppressed_any(wanted):
            self._fail("identify", ident, SUPPRESSED, now)
            return None
        found: list[Person] = []
        for candidate in wanted:
            person = self._find(candidate)
            if person is not None and all(person is not p for p in found):
                found.append(person)
        by_cio = ident.kind == "cio_id"
        if by_cio and (not found or found[0] is not self.people.get(ident.value)):
            self._fail("identify", ident, NO_CIO_ID, now)
            return None
        if len(found) > 1:
            self._fail("identify", ident, CONFLICT, now)
            return None
        new_id = body_id if body_id is not None else (ident.value if ident.kind == "id" else None)
        new_email = body_email or (ident.value if ident.kind == "email" else None)
        when = float(stamp) if isinstance(stamp, int) and not isinstance(stamp, bool) else now
        if not found:
            if attributes.get("_update") is True:
                self._fail("identify", ident, UPDATE_ONLY, now)
                return None
            person = self._create(new_id, new_email)
        else:
            person = found[0]
            if when < person.updated:
                self._fail("identify", ident, STALE, now)
                return None
            changes_id = person.id is not None and new_id is not None and new_id != person.id
            changes_email = (
                person.email is not None
                and new_email is not None
                and new_email.lower() != person.email.lower()
            )
            if (changes_id or changes_email) and not by_cio:
                self._fail("identify", ident, CONFLICT, now)
                return None
            self._set_identifiers(person, new_id, new_email)
        person.updated = when
        merge_attributes(person.attributes, attributes)
        anonymous_id = as_text(attributes.get("anonymous_id"))
        if anonymous_id is not None:
            self._link_anonymous(person, anonymous_id, now)
        return person

    def _link_anonymous(self, person: Person, anonymous_id: str, now: float) -> None:
        owner = self._anonymous.get(anonymous_id)
        if owner is not None and owner[0] != person.cio_id and owner[0] in self.people:
            self._fail("identify", Identifier("anonymous_id", anonymous_id), ANONYMOUS_TAKEN, now)
            return
        self._anonymous[anonymous_id] = (person.cio_id, now + ANONYMOUS_WINDOW_SECONDS)
        if anonymous_id not in person.anonymous_ids:
            person.anonymous_ids.append(anonymous_id)
        for event in self.events:
            unclaimed = event.person is None and event.identifier is None
            if unclaimed and event.anonymous_id == anonymous_id:
                event.person = person.cio_id
        for obj in self.objects.values():
            if anonymous_id in obj.anonymous_ids:
                obj.anonymous_ids.remove(anonymous_id)
                self.relations.setdefault((person.cio_id, obj.cio_object_id), {})

    def _anonymous_owner(self, anonymous_id: str | None, now: float) -> str | None:
        owner = None if anonymous_id is None else self._anonymous.get(anonymous_id)
        if owner is None or now > owner[1] or owner[0] not in self.people:
            return None
        return owner[0]

    def _person_op(self, op: Operation, now: float) -> None:
        """delete, add_device, delete_device, add_relationships, delete_relationships."""
        ident = op.identifier
        person = self._find(ident)
        body = op.body or {}
        if op.action == "delete":
            if person is not None:
                self._remove_person(person)
            return
        if person is None:
            self._fail(op.action, ident, NO_PERSON, now)
            return
        if op.action == "add_device":
            self._add_device(person, body.get("device"), op.api, now)
        elif op.action == "delete_device":
            token = self._device_token(op)
            if token is not None and token in person.devices:
                del person.devices[token]
                self._device_owner.pop(token, None)
        elif op.action in ("add_relationships", "delete_relationships"):
            rels = body.get("cio_relationships")
            if isinstance(rels, list):
                self._relate(person, rels, add=op.action == "add_relationships", now=now)

    @staticmethod
    def _device_token(op: Operation) -> str | None:
        if op.api == "v2":
            device = (op.body or {}).get("device")
            return as_text(device.get("token")) if isinstance(device, dict) else None
        hit = match(op.method, op.path)
        return hit.params.get("device_id") if isinstance(hit, RouteMatch) else None

    def _add_device(self, person: Person, device: Any, api: str, now: float) -> None:
        if not isinstance(device, dict):
            return
        token_key = "token" if api == "v2" else "id"
        token = as_text(device.get(token_key))
        if token is None:
            return
        attributes: dict[str, Any] = {}
        nested = device.get("attributes")
        if isinstance(nested, dict):
            attributes.update(nested)
        skip = {token_key, "platform", "last_used", "attributes"}
        attributes.update((k, v) for k, v in device.items() if k not in skip)  # flat SDK keys
        platform = str(device.get("platform", ""))
        last_used = unix_seconds(device.get("last_used"), int(now))
        owner = self._device_owner.get(token)
        if owner is not None and owner != person.cio_id and owner in self.people:
            self.people[owner].devices.pop(token, None)
        existing = person.devices.get(token)
        if existing is None:
            person.devices[token] = Device(token, platform, last_used, attributes)
        else:
            existing.platform = platform
            existing.last_used = last_used
            existing.attributes.update(attributes)
        self._device_owner[token] = person.cio_id

    def _suppression(self, op: Operation) -> None:
        ident = op.identifier
        if ident is None or ident.kind not in _PERSON_KINDS:
            return
        key = _key(ident)
        if op.action == "unsuppress":
            self._suppressed = [group for group in self._suppressed if key not in group]
            return
        person = self._find(ident)
        keys = {key}
        if person is not None:
            keys.update(_key(i) for i in person.identifiers())
            self._remove_person(person)
        self._suppressed.append(frozenset(keys))

    def _merge_op(self, op: Operation, now: float) -> None:
        body = op.body or {}
        primary_ident = _merge_side(body.get("primary"))
        secondary_ident = _merge_side(body.get("secondary"))
        primary, secondary = self._find(primary_ident), self._find(secondary_ident)
        if primary is None:
            self._fail("merge", primary_ident, MERGE_PRIMARY, now)
        elif secondary is None:
            self._fail("merge", secondary_ident, MERGE_SECONDARY, now)
        elif primary is not secondary:
            self._merge(primary, secondary)

    def _merge(self, primary: Person, secondary: Person) -> None:
        """Fold ``secondary`` into ``primary``: the primary's set values win."""
        keep, gone = primary.cio_id, secondary.cio_id
        for key, value in secondary.attributes.items():
            if primary.attributes.get(key) in (None, ""):
                primary.attributes[key] = value
        self._unindex(secondary)
        self._set_identifiers(
            primary,
            secondary.id if primary.id is None else None,
            secondary.email if primary.email is None else None,
        )
        for token, device in secondary.devices.items():
            primary.devices.setdefault(token, device)
            self._device_owner[token] = keep
        for event in self.events:
            if event.person == gone:
                event.person = keep
        for members in self.segments.values():
            if gone in members:
                del members[gone]
                members[keep] = None
        for pair in [k for k in self.relations if k[0] == gone]:
            self.relations.setdefault((keep, pair[1]), self.relations.pop(pair))
        for anonymous_id in secondary.anonymous_ids:
            if anonymous_id not in primary.anonymous_ids:
                primary.anonymous_ids.append(anonymous_id)
            owner = self._anonymous.get(anonymous_id)
            if owner is not None:
                self._anonymous[anonymous_id] = (keep, owner[1])

    # --- events -------------------------------------------------------------------------------

    def _event(self, op: Operation, now: float) -> None:
        body = op.body or {}
        ident = op.identifier
        anonymous = op.action == "anonymous_event" or (
            ident is not None and ident.kind == "anonymous_id"
        )
        if anonymous:
            kind = body.get("type") if op.action == "anonymous_event" else op.action
            anonymous_id = ident.value if ident is not None else None
            person = self._anonymous_owner(anonymous_id, now)
            addressed = None
        else:
            kind, anonymous_id, addressed = op.action, None, ident
            if ident is None or ident.kind not in _PERSON_KINDS:
                self._fail(op.action, ident, UNSUPPORTED, now)
                return
            if self._suppressed_any([ident]):
                self._fail(op.action, ident, SUPPRESSED, now)
                return
            found = self._find(ident)
            person = None if found is None else found.cio_id
        event_id = as_text(body.get("id"))
        if event_id is not None:
            if event_id in self._seen_event_ids:
                self.duplicates += 1
                return
            self._seen_event_ids.add(event_id)
        stamp = body.get("timestamp")
        self.events.append(
            Event(
                seq=self._next_event,
                type=kind if kind in ("page", "screen") else "event",
                name=str(op.name).strip(),
                data=op.data if isinstance(op.data, dict) else {},
                timestamp=stamp
                if isinstance(stamp, int) and not isinstance(stamp, bool)
                else int(now),
                received_at=now,
                api=op.api,
                person=person,
                identifier=addressed,
                anonymous_id=anonymous_id,
                event_id=event_id,
            )
        )
        self._next_event += 1
        self.events_stored += 1

    # --- objects, relationships, segments, deliveries -----------------------------------------

    def _object(self, identifiers: Any, *, create: bool) -> CustomObject | None:
        if not isinstance(identifiers, dict):
            return None
        cio = as_text(identifiers.get("cio_object_id"))
        if cio is not None:
            return self.objects.get(cio)
        type_id = as_text(identifiers.get("object_type_id"))
        object_id = as_text(identifiers.get("object_id"))
        if type_id is None or object_id is None:
            return None
        known = self._object_keys.get((type_id, object_id))
        if known is not None:
            return self.objects[known]
        if not create:
            return None
        obj = CustomObject(f"{self._next_object:08x}", type_id, object_id)
        self._next_object += 1
        self.objects[obj.cio_object_id] = obj
        self._object_keys[(type_id, object_id)] = obj.cio_object_id
        return obj

    def _relate(self, person: Person, rels: list[Any], *, add: bool, now: float) -> None:
        for rel in rels:
            if not isinstance(rel, dict):
                continue
            obj = self._object(rel.get("identifiers"), create=add)
            if obj is None:
                if add:
                    self._fail("add_relationships", None, NO_OBJECT, now)
                continue
            key = (person.cio_id, obj.cio_object_id)
            if add:
                _merge_plain(self.relations.setdefault(key, {}), rel.get("relationship_attributes"))
            else:
                self.relations.pop(key, None)

    def _object_op(self, op: Operation, now: float) -> None:
        body = op.body or {}
        action = op.action
        creates = action in ("identify", "identify_anonymous", "add_relationships")
        obj = self._object(body.get("identifiers"), create=creates)
        if obj is None:
            self._fail(action, op.identifier, NO_OBJECT, now)
            return
        if action == "delete":
            del self.objects[obj.cio_object_id]
            del self._object_keys[(obj.object_type_id, obj.object_id)]
            for key in [k for k in self.relations if k[1] == obj.cio_object_id]:
                del self.relations[key]
            return
        if action in ("identify", "identify_anonymous"):
            _merge_plain(obj.attributes, body.get("attributes"))
        rels = body.get("cio_relationships")
        for rel in rels if isinstance(rels, list) else ():
            if not isinstance(rel, dict) or not isinstance(rel.get("identifiers"), dict):
                continue
            identifiers = rel["identifiers"]
            anonymous_id = as_text(identifiers.get("anonymous_id"))
            if action == "identify_anonymous" and anonymous_id is not None:
                owner = self._anonymous_owner(anonymous_id, now)
                if owner is None:
                    if anonymous_id not in obj.anonymous_ids:
                        obj.anonymous_ids.append(anonymous_id)
                    continue
                person: Person | None = self.people[owner]
            else:
                person = self._find(next(iter(self._person_identifiers(identifiers)), None))
            if person is None:
                self._fail(action, None, NO_PERSON, now)
                continue
            key = (person.cio_id, obj.cio_object_id)
            if action == "delete_relationships":
                self.relations.pop(key, None)
            else:
                _merge_plain(self.relations.setdefault(key, {}), rel.get("relationship_attributes"))

    @staticmethod
    def _person_identifiers(identifiers: dict[str, Any]) -> Iterable[Identifier]:
        for kind in ("cio_id", "id", "email"):
            text = as_text(identifiers.get(kind))
            if text is not None:
                yield Identifier(kind, text)

    def _segment_op(self, op: Operation, now: float) -> None:
        segment_id = "" if op.identifier is None else op.identifier.value
        hit = match(op.method, op.path)
        id_type = hit.query.get("id_type", "id") if isinstance(hit, RouteMatch) else "id"
        ids = (op.body or {}).get("ids")
        if id_type not in _PERSON_KINDS or not isinstance(ids, list):
            return
        members = self.segments.setdefault(segment_id, {})
        for raw in ids:
            text = as_text(raw)
            if text is None or (id_type == "email" and not is_email(text)):
                continue  # "entries not matching id_type are ignored"
            if id_type == "cio_id" and text.startswith("cio_"):
                text = text[4:]
            ident = Identifier(id_type, text)
            person = self._find(ident)
            if person is None:
                self._fail(op.action, ident, NO_PERSON, now)
            elif op.action == "add_to_segment":
                members[person.cio_id] = None
            else:
                members.pop(person.cio_id, None)

    def _delivery(self, op: Operation, now: float) -> None:
        body = op.body or {}
        if op.action == "unsubscribe":
            hit = match(op.method, op.path)
            delivery_id = hit.params.get("delivery_id") if isinstance(hit, RouteMatch) else None
            metric: Any = "unsubscribed" if body.get("unsubscribe", True) else "resubscribed"
        elif op.type == "delivery":
            delivery_id = None if op.identifier is None else op.identifier.value
            metric = body.get("name")
        else:
            delivery_id = body.get("delivery_id")
            metric = body.get("metric") if op.action == "metric" else body.get("event")
        self.deliveries.append(
            {
                "kind": op.action if op.type == "metric" else "delivery_event",
                "delivery_id": delivery_id,
                "metric": metric,
                "body": body,
                "received_at": now,
            }
        )

    # --- reading ------------------------------------------------------------------------------

    def _person_view(self, person: Person) -> dict[str, Any]:
        cio = person.cio_id
        relationships = []
        for (owner, object_key), attributes in self.relations.items():
            if owner == cio:
                obj = self.objects[object_key]
                relationships.append(
                    {
                        "object_type_id": obj.object_type_id,
                        "object_id": obj.object_id,
                        "cio_object_id": obj.cio_object_id,
                        "attributes": attributes,
                    }
                )
        return {
            "cio_id": cio,
            "id": person.id,
            "email": person.email,
            "attributes": person.attributes,
            "devices": [d.view() for d in person.devices.values()],
            "segments": sorted(s for s, members in self.segments.items() if cio in members),
            "relationships": relationships,
            "anonymous_ids": person.anonymous_ids,
        }

    def people_view(self) -> list[dict[str, Any]]:
        """Every person, oldest first."""
        with self.lock:
            return copy.deepcopy([self._person_view(p) for p in self.people.values()])

    def person_view(self, identifier: str) -> dict[str, Any] | None:
        """One person by id, email or ``cio_<cio_id>``, or None."""
        with self.lock:
            person = self._find(classify(identifier))
            return None if person is None else copy.deepcopy(self._person_view(person))

    def events_view(
        self,
        *,
        person: str | None = None,
        name: str | None = None,
        anonymous_id: str | None = None,
        type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Events in arrival order, filtered.

        ``person`` names a known person (their events) or, for someone unknown, the identifier
        events were sent to.
        """
        with self.lock:
            events: Iterable[Event] = self.events
            if person is not None:
                ident = classify(person)
                known = self._find(ident)
                if known is not None:
                    events = [e for e in events if e.person == known.cio_id]
                else:
                    key = _key(ident)
                    events = [
                        e
                        for e in events
                        if e.person is None
                        and e.identifier is not None
                        and _key(e.identifier) == key
                    ]
            if name is not None:
                events = [e for e in events if e.name == name]
            if anonymous_id is not None:
                events = [e for e in events if e.anonymous_id == anonymous_id]
            if type is not None:
                events = [e for e in events if e.type == type]
            return copy.deepcopy([e.view() for e in events])

    def objects_view(self) -> list[dict[str, Any]]:
        """Every object with its attributes and related people."""
        with self.lock:
            out = []
            for obj in self.objects.values():
                people = [
                    {"cio_id": owner, "attributes": attributes}
                    for (owner, key), attributes in self.relations.items()
                    if key == obj.cio_object_id
                ]
                out.append(
                    {
                        "cio_object_id": obj.cio_object_id,
                        "object_type_id": obj.object_type_id,
                        "object_id": obj.object_id,
                        "attributes": obj.attributes,
                        "people": people,
                        "anonymous_ids": obj.anonymous_ids,
                    }
                )
            return copy.deepcopy(out)

    def segments_view(self) -> dict[str, list[str]]:
        """Manual segment id -> member cio_ids."""
        with self.lock:
            return {s: list(members) for s, members in sorted(self.segments.items())}

    def activity_view(self) -> dict[str, Any]:
        """Forms, delivery metrics and the silent failures."""
        with self.lock:
            return copy.deepcopy(
                {"forms": self.forms, "deliveries": self.deliveries, "failures": self.failures}
            )

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                "people": len(self.people),
                "events": self.events_stored,
                "duplicates": self.duplicates,
                "failures": len(self.failures),
            }
