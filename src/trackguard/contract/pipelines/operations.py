"""A Pipelines call as the core's :class:`Operation`, losslessly.

The operation's ``body`` is the call exactly as accepted (``context``, ``integrations``,
``messageId``, ``timestamp`` and every unknown key included), so it can be forwarded unchanged;
the operation only says what the call *is* to the rest of trackguard:

=========  =====================================  =================  ======================
call       type / action                          data (``data_key``)  identifier
=========  =====================================  =================  ======================
identify   person / ``identify``                  ``traits``         userId, else anonymousId
track      person / ``event`` (name: ``event``)   ``properties``     userId, else anonymousId
page       person / ``page``                      ``properties``     userId, else anonymousId
screen     person / ``screen``                    ``properties``     userId, else anonymousId
group      object / ``add_relationships``         ``traits``         ``objectTypeId:groupId``
alias      person / ``merge``                     none               userId (the one kept)
=========  =====================================  =================  ======================

A userId is classified the way the Journeys destination reads it: ``cio_…`` is a cio_id, an
email-shaped value an email, anything else an id.
"""

from __future__ import annotations

from typing import Any, Final

from trackguard.contract.identifiers import classify
from trackguard.contract.operations import Identifier, Operation
from trackguard.contract.pipelines.check import Call, is_iso8601, text_of

#: call type -> (operation type, action, data key, name key)
_MAPPING: Final[dict[str, tuple[str, str, str | None, str]]] = {
    "identify": ("person", "identify", "traits", "name"),
    "track": ("person", "event", "properties", "event"),
    "page": ("person", "page", "properties", "name"),
    "screen": ("person", "screen", "properties", "name"),
    "group": ("object", "add_relationships", "traits", "name"),
    "alias": ("person", "merge", None, "name"),
}


def payload_key(call_type: object) -> str:
    """Where a call of ``call_type`` carries its data: ``traits`` (identify, group), else
    ``properties``."""
    entry = _MAPPING.get(call_type) if isinstance(call_type, str) else None
    return (entry[2] if entry is not None else None) or "properties"


def identifier_of(call: Call) -> Identifier | None:
    """Who (or which object) the call addresses."""
    body = call.body
    if call.type == "group":
        group = text_of(body.get("groupId"))
        traits = body.get("traits")
        type_id = traits.get("objectTypeId") if isinstance(traits, dict) else None
        return None if group is None else Identifier("object", f"{text_of(type_id) or 1}:{group}")
    return person_of(body)


def person_of(body: dict[str, Any]) -> Identifier | None:
    """The person a call names: its userId (classified), else its anonymousId. For a group
    call, the person related to the object."""
    user = text_of(body.get("userId"))
    if user is not None:
        return classify(user)
    anonymous = text_of(body.get("anonymousId"))
    return None if anonymous is None else Identifier("anonymous_id", anonymous)


def with_envelope(call: Call, envelope: dict[str, Any]) -> Call:
    """The call as its batch's envelope completes it, so it means the same sent on alone or in
    another batch: the batch's ``sentAt`` when the call has none of its own, and the batch's
    ``context`` as the default its own ``context`` keys override (reference §2.10). An envelope
    value the contract refused (not ISO-8601, not an object) is not copied."""
    body = call.body
    sent_at = envelope.get("sentAt")
    add_sent = body.get("sentAt") is None and sent_at is not None and is_iso8601(sent_at)
    context = envelope.get("context")
    add_context = isinstance(context, dict) and bool(context)
    if not add_sent and not add_context:
        return call
    out = dict(body)
    if add_context:
        assert isinstance(context, dict)
        own = body.get("context")
        out["context"] = {**context, **own} if isinstance(own, dict) else dict(context)
    if add_sent:
        out["sentAt"] = sent_at
    return Call(type=call.type, body=out, index=call.index)


def to_operation(call: Call, path: str) -> Operation:
    """The operation for an accepted ``call`` that arrived on ``path``."""
    kind, action, data_key, name_key = _MAPPING[call.type]
    return Operation(
        api="pipelines",
        type=kind,
        action=action,
        route=f"POST /v1/{call.type}",
        method="POST",
        path=path,
        identifier=identifier_of(call),
        body=call.body,
        batch_index=call.index,
        data_key=data_key,
        name_key=name_key,
    )
