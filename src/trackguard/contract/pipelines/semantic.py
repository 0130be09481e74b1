"""Customer.io's semantic event names: track calls that perform an action in Journeys.

A Pipelines ``track`` whose ``event`` is one of these names (compared without case and
surrounding spaces) is not a record of something that happened: it adds or deletes a device,
deletes or suppresses a person, deletes an object or a relationship (reference §2.9, from the
OpenAPI document's ``info.description`` table and its ``/track`` schemas). A custom event that
happens to be called ``User Deleted`` deletes the person.
"""

from __future__ import annotations

from typing import Final

import msgspec


class Semantic(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One semantic event: its name as Customer.io writes it, what it does, what it needs."""

    name: str
    effect: str
    destructive: bool
    #: Dotted paths into the call that Customer.io needs to perform it.
    required: tuple[str, ...] = ()


SEMANTIC_EVENTS: Final[tuple[Semantic, ...]] = (
    Semantic(
        name="Device Created or Updated",
        effect="adds or updates a push device",
        destructive=False,
        required=("userId", "context.device.token"),
    ),
    Semantic(
        name="Device Deleted",
        effect="deletes a push device",
        destructive=True,
        required=("userId", "context.device.token"),
    ),
    Semantic(
        name="User Deleted", effect="deletes the person", destructive=True, required=("userId",)
    ),
    Semantic(
        name="User Suppressed",
        effect="suppresses the person",
        destructive=True,
        required=("userId",),
    ),
    Semantic(
        name="User Unsuppressed",
        effect="unsuppresses the person",
        destructive=False,
        required=("userId",),
    ),
    Semantic(
        name="Relationship Deleted",
        effect="removes a person's relationship to an object",
        destructive=True,
    ),
    Semantic(
        name="Object Deleted", effect="deletes an object", destructive=True, required=("groupId",)
    ),
    Semantic(
        name="Report Delivery Event",
        effect="records in-app message delivery metrics",
        destructive=False,
    ),
)
_BY_KEY: Final = {s.name.lower(): s for s in SEMANTIC_EVENTS}
#: Device events for Segment's version of the destination; Customer.io's is UNVERIFIED.
POSSIBLY_SEMANTIC: Final = frozenset(
    {"application installed", "application opened", "application uninstalled"}
)


def semantic_event(name: object) -> Semantic | None:
    """The semantic event an ``event`` value names, or None (any value, never raises)."""
    return _BY_KEY.get(name.strip().lower()) if isinstance(name, str) else None


__all__ = ["POSSIBLY_SEMANTIC", "SEMANTIC_EVENTS", "Semantic", "semantic_event"]
