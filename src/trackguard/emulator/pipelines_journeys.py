"""What a Pipelines call does to the Journeys workspace: the Track operations it stands for.

Customer.io's "Actions Customerio" destination turns Pipelines calls into Track API v2 calls
(inferred from its code: see ``docs/pipelines.md``); the emulator applies the same mapping to
its workspace, so ``/_emulator/people`` and ``/_emulator/events`` show what Journeys would
hold. The operations are v2-shaped with ``api="pipelines"``:

* identify: the person by userId (``cio_…`` a cio_id, an email an email, else an id), else by
  ``traits.email``; traits become attributes; ``anonymousId`` links anonymous activity; an
  identify with only an anonymousId does nothing (Journeys ignores it).
* track: an event named ``event``, data ``properties``, id ``messageId``, time ``timestamp``;
  anonymous when there is no userId.
* page: a page event named ``properties.url``; screen: a screen event named ``name``; without
  them nothing happens (the destination requires them).
* group: the object ``objectTypeId`` (default ``"1"``) / ``groupId`` with ``traits`` (minus the
  control keys, plus ``objectAttributes``) and a relationship to the userId.
* alias: ``previousId`` merged into ``userId``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from trackguard.contract.identifiers import classify
from trackguard.contract.operations import Identifier, Operation
from trackguard.contract.pipelines import Call
from trackguard.contract.pipelines.check import text_of

_GROUP_CONTROL: Final = frozenset({"objectTypeId", "relationshipAttributes", "objectAttributes"})


def unix_time(value: Any) -> int | None:
    """Unix seconds of an ISO-8601 string (naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _who(ident: Identifier) -> dict[str, str]:
    return {ident.kind: ident.value}


def _op(
    action: str, ident: Identifier | None, body: dict[str, Any], kind: str = "person"
) -> Operation:
    return Operation(
        api="pipelines",
        type=kind,
        action=action,
        route="POST /v1/batch",
        method="POST",
        path="/v1/batch",
        identifier=ident,
        body=body,
        data_key="attributes",
    )


def _person(call: Call) -> Identifier | None:
    user = text_of(call.body.get("userId"))
    if user is not None:
        return classify(user)
    anonymous = text_of(call.body.get("anonymousId"))
    return None if anonymous is None else Identifier("anonymous_id", anonymous)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _identify(call: Call) -> list[Operation]:
    body = call.body
    traits = _dict(body.get("traits"))
    ident = _person(call)
    if ident is None or ident.kind == "anonymous_id":
        email = text_of(traits.get("email"))
        if text_of(body.get("userId")) is None and email is None:
            return []  # anonymous identify: Journeys ignores it
        ident = Identifier("email", email) if email is not None else ident
    assert ident is not None
    attributes = dict(traits)
    anonymous = text_of(body.get("anonymousId"))
    if anonymous is not None:
        attributes["anonymous_id"] = anonymous
    item: dict[str, Any] = {"identifiers": _who(ident), "attributes": attributes}
    stamp = unix_time(body.get("timestamp"))
    if stamp is not None:
        item["timestamp"] = stamp
    return [_op("identify", ident, item)]


def _event(call: Call, action: str, name: Any) -> list[Operation]:
    ident = _person(call)
    if ident is None or text_of(name) is None:
        return []
    item: dict[str, Any] = {
        "identifiers": _who(ident),
        "name": name,
        "attributes": _dict(call.body.get("properties")),
    }
    message_id = call.body.get("messageId")
    if isinstance(message_id, str):
        item["id"] = message_id
    stamp = unix_time(call.body.get("timestamp"))
    if stamp is not None:
        item["timestamp"] = stamp
    return [_op(action, ident, item)]


def _group(call: Call) -> list[Operation]:
    body = call.body
    group = text_of(body.get("groupId"))
    if group is None:
        return []
    traits = _dict(body.get("traits"))
    type_id = text_of(traits.get("objectTypeId")) or "1"
    attributes = {k: v for k, v in traits.items() if k not in _GROUP_CONTROL}
    attributes.update(_dict(traits.get("objectAttributes")))
    item: dict[str, Any] = {
        "identifiers": {"object_type_id": type_id, "object_id": group},
        "attributes": attributes,
    }
    user = text_of(body.get("userId"))
    if user is not None:
        item["cio_relationships"] = [
            {
                "identifiers": _who(classify(user)),
                "relationship_attributes": _dict(traits.get("relationshipAttributes")),
            }
        ]
    return [_op("identify", Identifier("object", f"{type_id}:{group}"), item, "object")]


def _alias(call: Call) -> list[Operation]:
    user, previous = text_of(call.body.get("userId")), text_of(call.body.get("previousId"))
    if user is None or previous is None:
        return []
    primary, secondary = classify(user), classify(previous)
    item = {"primary": _who(primary), "secondary": _who(secondary)}
    return [_op("merge", primary, item)]


def journeys_operations(call: Call) -> list[Operation]:
    """The workspace operations an accepted call stands for (none when Journeys ignores it)."""
    body = call.body
    if call.type == "identify":
        return _identify(call)
    if call.type == "track":
        return _event(call, "event", body.get("event"))
    if call.type == "page":
        return _event(call, "page", _dict(body.get("properties")).get("url"))
    if call.type == "screen":
        return _event(call, "screen", body.get("name"))
    if call.type == "group":
        return _group(call)
    return _alias(call)
