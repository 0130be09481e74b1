"""The emulator's records (people, devices, events, objects) and how attributes merge.

Attribute rules, from Customer.io's docs: names are case-sensitive; a later value replaces an
earlier one; ``null`` or ``""`` removes an attribute (documented for objects and applied to
people too); ``unsubscribed`` accepts any case of ``true``, ``1`` or ``"1"``;
``cio_subscription_preferences`` merges key by key and may be written in dot notation
(``"cio_subscription_preferences.topics.topic_1": true``). Identifiers and control keys
(``id``, ``email``, ``anonymous_id``, ``_update``, ``_timestamp``, ``cio_relationships``) are
not attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from trackguard.contract.operations import Identifier

NOT_ATTRIBUTES: Final = frozenset(
    {"id", "email", "cio_id", "anonymous_id", "_update", "_timestamp", "cio_relationships"}
)
_PREFERENCES: Final = "cio_subscription_preferences"


def truthy(value: Any) -> bool:
    """Customer.io's reading of ``unsubscribed``: any case of true, 1 or "1"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in ("true", "1")


def _deep_merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _deep_merge(current, value)
        else:
            target[key] = value


def merge_attributes(target: dict[str, Any], attributes: dict[str, Any]) -> None:
    """Apply an identify's attributes to stored ones, in Customer.io's way."""
    for key, value in attributes.items():
        if key in NOT_ATTRIBUTES:
            continue
        if key.startswith(_PREFERENCES + "."):
            *parents, leaf = key.split(".")[1:]
            node = target.get(_PREFERENCES)
            if not isinstance(node, dict):
                node = target[_PREFERENCES] = {}
            for part in parents:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node[leaf] = value
            continue
        if key == _PREFERENCES and isinstance(value, dict):
            current = target.get(key)
            if isinstance(current, dict):
                _deep_merge(current, value)
                continue
        if value is None or value == "":
            target.pop(key, None)
        elif key == "unsubscribed":
            target[key] = truthy(value)
        else:
            target[key] = value


def as_text(value: Any) -> str | None:
    """A non-empty identifier string from a JSON value (numbers stringified), or None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text or None


def unix_seconds(value: Any, default: int) -> int:
    """An integer Unix time from an int or a numeric string (Go sends ``last_used`` as text)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except (ValueError, OverflowError):
            return default
    return default


@dataclass(slots=True)
class Device:
    token: str
    platform: str
    last_used: int
    attributes: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.token,
            "platform": self.platform,
            "last_used": self.last_used,
            "attributes": self.attributes,
        }


@dataclass(slots=True)
class Person:
    cio_id: str
    id: str | None = None
    email: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    anonymous_ids: list[str] = field(default_factory=list)
    #: Time of the latest applied update (``_timestamp``/v2 ``timestamp`` or receipt time).
    updated: float = 0.0

    def identifiers(self) -> list[Identifier]:
        found = [Identifier("cio_id", self.cio_id)]
        if self.id is not None:
            found.append(Identifier("id", self.id))
        if self.email is not None:
            found.append(Identifier("email", self.email))
        return found


@dataclass(slots=True)
class Event:
    seq: int
    type: str  # event | page | screen
    name: str
    data: dict[str, Any]
    timestamp: int
    received_at: float
    api: str
    #: The person's cio_id when the event belongs to a known person.
    person: str | None
    #: The identifier the event was sent to (None for anonymous events).
    identifier: Identifier | None
    anonymous_id: str | None
    event_id: str | None

    def view(self) -> dict[str, Any]:
        ident = self.identifier
        return {
            "seq": self.seq,
            "type": self.type,
            "name": self.name,
            "data": self.data,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
            "api": self.api,
            "person": self.person,
            "identifier": None if ident is None else {ident.kind: ident.value},
            "anonymous_id": self.anonymous_id,
            "id": self.event_id,
        }


@dataclass(slots=True)
class CustomObject:
    cio_object_id: str
    object_type_id: str
    object_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    anonymous_ids: list[str] = field(default_factory=list)
