"""The tracking plan as data: what a team promises to send to Customer.io.

A plan is loaded from YAML (``trackguard.plan.loader``) into these frozen structs. Every rule
carries an *action*: ``reject`` (quarantine), ``fix`` (normalize and pass) or ``warn`` (pass
and record). Unplanned events, properties and attributes take a *policy*: ``allow``, ``warn``
or ``reject``. ``line`` fields keep the YAML line a rule came from, for messages that point
at the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, Protocol, TypeVar

import msgspec

Action = Literal["reject", "fix", "warn"]
Policy = Literal["allow", "warn", "reject"]
PropertyType = Literal[
    "string", "number", "integer", "boolean", "timestamp", "email", "enum", "object", "array", "any"
]
Convention = Literal["snake_case", "camelCase", "PascalCase", "kebab-case", "none"]

ACTIONS: Final = ("reject", "fix", "warn")
POLICIES: Final = ("allow", "warn", "reject")
PROPERTY_TYPES: Final = (
    "string",
    "number",
    "integer",
    "boolean",
    "timestamp",
    "email",
    "enum",
    "object",
    "array",
    "any",
)
CONVENTIONS: Final = ("snake_case", "camelCase", "PascalCase", "kebab-case", "none")
#: The ``pages:``/``screens:`` entry whose properties apply to every page (screen) call.
EVERY_VIEW: Final = "*"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def with_every(own: tuple[_N, ...], every: Iterable[_N]) -> tuple[_N, ...]:
    """A page's (screen's) properties ``own`` and then those of the ``"*"`` entry, ``every``,
    that it does not declare itself: its own spec wins. For property specs or their compiled
    forms alike."""
    names = {item.name for item in own}
    return own + tuple(item for item in every if item.name not in names)


#: Customer.io's semantic event names on the Pipelines API, as it writes them: a track call
#: named so performs an action (deletes the person, a device, an object...). The plan cannot
#: import the contract, so the names are repeated here; a test keeps the two lists equal.
SEMANTIC_EVENT_NAMES: Final = (
    "Device Created or Updated",
    "Device Deleted",
    "User Deleted",
    "User Suppressed",
    "User Unsuppressed",
    "Relationship Deleted",
    "Object Deleted",
    "Report Delivery Event",
)


class PropertySpec(msgspec.Struct, frozen=True, kw_only=True):
    """One event property or profile attribute.

    ``action`` governs every violation of this property. With ``fix``, trackguard coerces the
    value (``"49.90"`` → ``49.9``, ISO-8601 → unix seconds, emails trimmed and lower-cased,
    enum case); a value it cannot coerce, a missing required value or a broken constraint is
    then rejected, since no fix exists for it.
    """

    name: str
    type: PropertyType = "any"
    required: bool = False
    action: Action = "reject"
    description: str = ""
    values: tuple[Any, ...] | None = None  # enum
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: PropertyType | None = None  # array item type
    min_items: int | None = None
    max_items: int | None = None
    properties: tuple[PropertySpec, ...] | None = None  # object members
    line: int = 0

    @property
    def bounded(self) -> bool:
        """Whether a value constraint applies beyond the type (most properties have none)."""
        return any(
            x is not None
            for x in (
                self.minimum,
                self.maximum,
                self.min_length,
                self.max_length,
                self.pattern,
                self.min_items,
                self.max_items,
            )
        )


class EventVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A ``schema_version`` variant of an event: its own property list."""

    version: str
    properties: tuple[PropertySpec, ...] = ()
    unplanned_properties: Policy | None = None
    line: int = 0


class EventSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A planned event under its canonical name."""

    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    properties: tuple[PropertySpec, ...] = ()
    unplanned_properties: Policy | None = None  # None: the plan's default
    #: Where the business key lives, e.g. ``data.order_id`` (a dotted path into the event).
    dedupe_key: str | None = None
    versions: tuple[EventVersion, ...] = ()
    #: ``derive.total``: where the order total lives (``data.total``). When set, each new order
    #: updates the person's last/first order date, order count and lifetime value.
    derive_total: str | None = None
    line: int = 0


class IdentityPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Which identifier addresses people, and what to do with calls that use another.

    ``canonical``: ``id`` (email is an attribute) or ``email`` (email-first workspaces).
    ``email_keyed``: a call addressed by email when the canonical identifier is ``id``.
    ``email_in_id``: an email-shaped value used as an ``id``.
    ``anonymous``: anonymous events (``/api/v1/events``, v2 ``anonymous_id`` identifiers).
    """

    canonical: Literal["id", "email"] = "id"
    #: ``fix`` rewrites an email-keyed call to the id learned for that email (identify calls
    #: carrying both, or ``trackguard identity import``); unknown emails then take
    #: ``unknown_email``.
    email_keyed: Literal["allow", "warn", "reject", "fix"] = "warn"
    unknown_email: Policy = "warn"
    email_in_id: Action = "reject"
    anonymous: Policy = "allow"
    #: An identify binding an email that is already bound to another id: never merged.
    conflict: Literal["warn", "reject"] = "reject"
    #: An id sent as a number (``42`` for ``"42"``) or differing only in case from a known id.
    id_type: Policy = "warn"
    #: Anonymous activity not linked to a person within this long is reported (seconds).
    unlinked_after: float = 86_400.0
    line: int = 0


class NamingPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How event names are written; ``fix`` rewrites drifted names to the canonical form."""

    convention: Convention = "snake_case"
    action: Action = "fix"
    line: int = 0


class TimestampPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Event ``timestamp`` must be unix seconds; ``fix`` converts ms, ISO-8601, numeric strings."""

    action: Action = "fix"
    line: int = 0


class UnplannedPolicy(msgspec.Struct, frozen=True, kw_only=True):
    events: Policy = "warn"
    properties: Policy = "warn"
    attributes: Policy = "allow"
    #: Pipelines page and screen calls whose name the plan's ``pages:``/``screens:`` lack.
    pages: Policy = "allow"
    screens: Policy = "allow"
    line: int = 0


class SemanticPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Which Customer.io semantic events (``User Deleted``...) Pipelines track calls may send.

    Every other semantic event name is quarantined: a custom event that happens to be named
    ``User Deleted`` would delete the person. Names are kept as Customer.io writes them.
    """

    allow: tuple[str, ...] = ()
    line: int = 0


class TimelinessPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Events too old to trigger campaigns, from the future, or stale after a purchase.

    Judged against the time a request was received (the gateway), never against a log's
    replay time. ``stale_events`` that happened before the person's latest
    ``purchase_event`` arrive too late to matter: a cart reminder after the purchase.
    """

    max_age: float = 72 * 3600.0
    late: Policy = "warn"
    future_skew: float = 600.0
    future: Policy = "warn"
    purchase_event: str = "order_completed"
    stale_events: tuple[str, ...] = ()
    stale: Policy = "warn"
    line: int = 0


class DedupePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long duplicates are recognised (seconds).

    Events are deduplicated on the plan's ``dedupe_key``, else on the client's event ``id``
    (both remembered for ``window``), else on their content within ``retry_window``.
    """

    window: float = 7 * 86_400.0
    retry_window: float = 600.0
    line: int = 0


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """A whole tracking plan. ``events`` is keyed by canonical name."""

    name: str = "plan"
    version: str = ""
    identity: IdentityPolicy = msgspec.field(default_factory=IdentityPolicy)
    naming: NamingPolicy = msgspec.field(default_factory=NamingPolicy)
    timestamps: TimestampPolicy = msgspec.field(default_factory=TimestampPolicy)
    unplanned: UnplannedPolicy = msgspec.field(default_factory=UnplannedPolicy)
    dedupe: DedupePolicy = msgspec.field(default_factory=DedupePolicy)
    timeliness: TimelinessPolicy = msgspec.field(default_factory=TimelinessPolicy)
    events: dict[str, EventSpec] = msgspec.field(default_factory=dict)
    attributes: dict[str, PropertySpec] = msgspec.field(default_factory=dict)
    #: Pipelines page and screen calls, keyed by their ``name`` (same rules as events). The
    #: entry :data:`EVERY_VIEW` (``"*"``), when present, holds properties every page (screen)
    #: call must have, named or not, planned or not: :meth:`every_view` reads it.
    pages: dict[str, EventSpec] = msgspec.field(default_factory=dict)
    screens: dict[str, EventSpec] = msgspec.field(default_factory=dict)
    semantic_events: SemanticPolicy = msgspec.field(default_factory=SemanticPolicy)
    source: str = ""

    def every_view(self, section: Literal["pages", "screens"]) -> EventSpec | None:
        """The ``"*"`` entry of ``pages:`` or ``screens:``, or None."""
        return (self.pages if section == "pages" else self.screens).get(EVERY_VIEW)

    def named_views(self, section: Literal["pages", "screens"]) -> dict[str, EventSpec]:
        """The planned pages (or screens) by name, without the ``"*"`` entry."""
        views = self.pages if section == "pages" else self.screens
        return {name: spec for name, spec in views.items() if name != EVERY_VIEW}
