"""What ``backfill --as`` makes of each row: a Track API request or a Pipelines API call.

The syntax, one word per API (``pipelines:`` prefixes a Pipelines call type, as ``event:``
prefixes a Track API event name)::

    event:NAME            POST /api/v1/customers/{id}/events
    identify              PUT /api/v1/customers/{id}
    pipelines:track:NAME  a Pipelines track call, event NAME
    pipelines:page:NAME   a page call named NAME
    pipelines:screen:NAME a screen call named NAME
    pipelines:identify    an identify call (the mapping's attributes: become traits)
    pipelines:group       a group call (the mapping's group: gives groupId, attributes: traits)
    pipelines:alias       an alias call (the mapping's previous: gives previousId)

Names are taken as written after the second colon (they may hold colons and spaces, as event
names do), stripped of surrounding blanks, and must not be empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["PIPELINES_TYPES", "Target", "TargetError", "parse_target"]

Api = Literal["track", "pipelines"]
#: Pipelines call types a backfill makes, and whether each takes a name.
PIPELINES_TYPES: Final = {
    "track": True,
    "page": True,
    "screen": True,
    "identify": False,
    "group": False,
    "alias": False,
}
USAGE: Final = (
    "use event:NAME, identify, pipelines:track:NAME, pipelines:page:NAME,"
    " pipelines:screen:NAME, pipelines:identify, pipelines:group or pipelines:alias"
)


class TargetError(ValueError):
    """An ``--as`` value that names nothing a backfill makes (the message says what does)."""


@dataclass(frozen=True, slots=True)
class Target:
    """``api`` and ``kind``: ``event``/``identify`` (Track API) or a Pipelines call type."""

    api: Api
    kind: str
    name: str | None = None

    @property
    def identify(self) -> bool:
        """Whether rows carry attributes (``attributes:`` in the mapping), not event data:
        an identify's traits, or a group's (the object's attributes)."""
        return self.kind in ("identify", "group")

    def text(self) -> str:
        """The canonical ``--as`` text (what checkpoints are keyed on)."""
        head = "pipelines:" if self.api == "pipelines" else ""
        return head + self.kind + ("" if self.name is None else f":{self.name}")


def parse_target(text: str) -> Target:
    """The :class:`Target` ``text`` names; :class:`TargetError` otherwise."""
    if text == "identify":
        return Target("track", "identify")
    head, sep, rest = text.partition(":")
    if sep and head == "event":
        return Target("track", "event", _name(rest))
    if sep and head == "pipelines":
        kind, sep, name = rest.partition(":")
        needs_name = PIPELINES_TYPES.get(kind)
        if needs_name is True and sep:
            return Target("pipelines", kind, _name(name))
        if needs_name is False and not sep:
            return Target("pipelines", kind)
    raise TargetError(USAGE)


def _name(text: str) -> str:
    name = text.strip()
    if not name:
        raise TargetError(USAGE)
    return name
