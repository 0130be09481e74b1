"""Drafting a tracking plan from observed traffic, as YAML that ``plan lint`` accepts.

For each event (under its drift cluster's canonical name, with the cluster's certain and strong
variants as aliases when their name key differs) every top-level property gets:

* a type from the values seen: the most frequent JSON type; ``integer`` when no number had a
  fraction; ``timestamp`` for ``*_at``/``*_time`` integers in the unix-seconds range; ``email``
  for ``*email*`` strings holding ``@``; ``enum`` for strings with at most
  :attr:`Limits.enum_values` distinct values seen at least :data:`ENUM_MIN_SEEN` times (not
  for identifier-like keys such as ``*_id``, ``sku``, ``url``, ``name``);
* ``required: true`` when present (non-null) in at least :data:`REQUIRED_SHARE` of the events;
* ``action: fix`` where trackguard can coerce (numbers, integers, timestamps, booleans, emails,
  enum case), so the draft normalizes strays instead of rejecting them.

A comment on each line says what was seen, so a reviewer can judge the draft. A name that only
*possibly* is an event (a typo-like edit, see :mod:`trackguard.audit.drift`) is never aliased:
it is a comment beside the event, with its evidence, for a reviewer to decide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from trackguard.audit.census import PropStats
from trackguard.audit.model import DriftMatch
from trackguard.plan.naming import name_key

REQUIRED_SHARE: Final = 0.95
ENUM_MIN_SEEN: Final = 20
_FIXABLE: Final = frozenset({"number", "integer", "timestamp", "boolean", "email", "enum"})
_ID_LIKE: Final = re.compile(r"(^|_)(id|ids|sku|url|urls|name|title|email|key|token|uuid)$|Id$")
_PLAIN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_YAML_WORDS: Final = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"})
#: Identify keys Customer.io reserves; a plan does not declare them as attributes.
_RESERVED: Final = frozenset({"id", "anonymous_id", "cio_id", "_update", "_timestamp"})
MAX_EVENT_NAME_BYTES: Final = 100


class EventDraft:
    """What inference knows about one planned event."""

    __slots__ = ("aliases", "count", "name", "possible", "props")

    def __init__(
        self,
        name: str,
        count: int,
        props: Mapping[str, PropStats],
        aliases: list[str],
        possible: list[str] | None = None,
    ) -> None:
        self.name = name
        self.count = count
        self.props = props
        self.aliases = aliases
        self.possible = possible or []  # comments: names that may be this event


def possible_comment(match: DriftMatch) -> str:
    """The YAML comment for a name that may be an event: what it is, and the evidence."""
    name = json.dumps(match.name, ensure_ascii=False)
    return f"possibly the same as {name}: {match.evidence}; review before adding an alias"


def _q(text: str) -> str:
    """A YAML scalar for ``text``: plain when safe, else a JSON (double-quoted) string."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _type(key: str, p: PropStats, enum_limit: int) -> tuple[str, list[str] | None]:
    types = {t: n for t, n in p.types.items() if t != "null"}
    if not types:
        return "any", None
    dominant = max(sorted(types), key=lambda t: types[t])
    lowered = key.lower()
    if dominant == "number":
        if p.floats == 0 and p.ints:
            if p.stamps == p.ints and lowered.endswith(("_at", "_time", "date")):
                return "timestamp", None
            return "integer", None
        return "number", None
    if dominant == "string":
        strings = types["string"]
        if "email" in lowered and p.emails >= REQUIRED_SHARE * strings:
            return "email", None
        values = p.values
        if (
            values
            and len(types) == 1
            and len(values) <= enum_limit
            and strings >= ENUM_MIN_SEEN * len(values)
            and _ID_LIKE.search(key) is None
        ):
            return "enum", sorted(values)
        return "string", None
    return dominant, None


def _seen(p: PropStats, count: int | None) -> str:
    parts = ", ".join(f"{t} {n}" for t, n in sorted(p.types.items(), key=lambda kv: -kv[1]))
    if count is None:
        return f"seen {p.present} times: {parts}"
    return f"in {p.present} of {count} events: {parts}"


def _property(key: str, p: PropStats, count: int | None, enum_limit: int) -> str:
    kind, values = _type(key, p, enum_limit)
    rules = [f"type: {kind}"]
    if values is not None:
        rules.append(
            "values: [" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"
        )
    non_null = p.present - p.types.get("null", 0)
    if count is not None and count and non_null >= REQUIRED_SHARE * count:
        rules.append("required: true")
    if kind in _FIXABLE:
        rules.append("action: fix")
    return f"{_q(key)}: {{{', '.join(rules)}}}  # {_seen(p, count)}"


def render_plan(
    events: list[EventDraft],
    attributes: Mapping[str, PropStats],
    *,
    canonical_id: str,
    requests: int,
    enum_limit: int,
    name: str = "inferred",
) -> str:
    """The draft plan as YAML text (format 1, see docs/plan.md)."""
    lines = [
        f"# Drafted by `trackguard audit --infer-plan` from {requests} requests.",
        "# Review it before use: types, required properties and enums are guesses from",
        "# traffic, and each line's comment says what they are based on.",
        "version: 1",
        f"name: {_q(name)}",
        "naming:",
        "  convention: snake_case",
        "  action: fix",
        "identity:",
        f"  canonical: {canonical_id}",
        "  email_keyed: warn",
        "  email_in_id: reject",
        "  anonymous: allow",
        "timestamps:",
        "  action: fix",
        "unplanned:",
        "  events: warn",
        "  properties: warn",
        "  attributes: allow",
    ]
    planned = [e for e in events if len(e.name.encode()) <= MAX_EVENT_NAME_BYTES]
    lines.append("events:" if planned else "events: {}")
    for ev in sorted(planned, key=lambda e: e.name):
        lines.append(f"  {_q(ev.name)}:  # {ev.count} events")
        lines.extend(f"    # {comment}" for comment in sorted(ev.possible))
        if ev.aliases:
            lines.append(
                "    aliases: ["
                + ", ".join(json.dumps(a, ensure_ascii=False) for a in ev.aliases)
                + "]"
            )
        if not ev.props:
            lines.append("    properties: {}")
            continue
        lines.append("    properties:")
        for key in sorted(ev.props):
            lines.append("      " + _property(key, ev.props[key], ev.count, enum_limit))
    attrs = {k: p for k, p in attributes.items() if k not in _RESERVED and not k.startswith("cio_")}
    lines.append("attributes:" if attrs else "attributes: {}")
    for key in sorted(attrs):
        lines.append("  " + _property(key, attrs[key], None, enum_limit))
    return "\n".join(lines) + "\n"


def aliases_for(canonical: str, variants: list[str]) -> list[str]:
    """Variants a plan must list as aliases: those whose name key differs from the event's."""
    key = name_key(canonical)
    return sorted(v for v in variants if name_key(v) != key)
