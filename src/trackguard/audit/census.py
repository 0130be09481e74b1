"""What events look like: names as sent, property types per event, timestamp formats.

Events are grouped by ``naming.name_key`` of their name while streaming (so ``Order Completed``
and ``order_completed`` share statistics); drift clustering later merges keys that are small
edits of each other. Every map here is capped (see :mod:`trackguard.audit.caps`).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.model import Example
from trackguard.contract.pipelines import is_iso8601
from trackguard.core.coerce import timestamp_kind, to_timestamp
from trackguard.plan.naming import name_key

#: JSON type names; int and float are both ``number`` (JSON does not tell them apart).
JSON_TYPES: Final[dict[type, str]] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
}
NO_NAME: Final = "(no name)"
OTHER_EVENTS: Final = "(other events)"
#: Seconds a timestamp may run ahead of the log's clock before it counts as "future".
FUTURE_SLACK: Final = 300
#: Customer.io: "Events with a timestamp in the past 72 hours can trigger campaigns."
CAMPAIGN_WINDOW: Final = 72 * 3600
#: The prefix of a Pipelines call's timestamp kinds (``pipelines_milliseconds``).
PIPELINES: Final = "pipelines_"
#: The one Pipelines timestamp kind that API accepts.
PIPELINES_ISO: Final = PIPELINES + "iso8601"
#: Distinct sources kept per event (evidence for drift clustering; more add nothing).
MAX_SOURCES: Final = 16
#: Distinct data shapes (keys in order, and their value types) kept per event; an event
#: with more shapes than this counts the pairs of the rest as each arrives, keeping no shape.
MAX_SHAPES: Final = 256


class Located(Protocol):
    """Anything that can say where it was read (formatted only when an example is kept)."""

    @property
    def where(self) -> str: ...


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class PropStats:
    """One key of one event: how often present, with which types, and sample values."""

    __slots__ = ("emails", "first", "floats", "ints", "present", "stamps", "types", "values")

    def __init__(self) -> None:
        self.present = 0
        self.types: dict[str, int] = {}
        self.first: dict[str, str] = {}  # type -> where first seen
        self.ints = 0
        self.floats = 0
        self.emails = 0
        self.stamps = 0  # integers in the unix-seconds range
        self.values: set[str] | None = set()  # distinct strings until there are too many

    def merge(self, other: PropStats, enum_limit: int) -> None:
        self.present += other.present
        for t, n in other.types.items():
            self.types[t] = self.types.get(t, 0) + n
        for t, where in other.first.items():
            self.first.setdefault(t, where)
        self.ints += other.ints
        self.floats += other.floats
        self.emails += other.emails
        self.stamps += other.stamps
        if self.values is None or other.values is None:
            self.values = None
        else:
            self.values |= other.values
            if len(self.values) > enum_limit:
                self.values = None


class Shape:
    """One data shape of an event: its keys in order and their value types.

    An app sends each event with a handful of shapes, so the (key, type) pairs are counted
    once per shape and folded into :attr:`EventStats.seen` by :meth:`EventStats.settle`.
    """

    __slots__ = ("count", "ints", "pairs", "strs")

    def __init__(
        self, pairs: tuple[tuple[str, type], ...], strs: tuple[str, ...], ints: tuple[str, ...]
    ) -> None:
        self.count = 0  # events of this shape not yet folded into ``seen``
        self.pairs = pairs  # the (key, type) pairs counted (those within the cap)
        self.strs = strs  # ... of them, the keys with string values
        self.ints = ints  # ... and those with integer values


class EventStats:
    """One event key: how many events, and raw per-(key, Python type) counters.

    The hot loop counts one data shape per event; :attr:`props` turns the counters into
    :class:`PropStats` when the report is built. ``seen`` holds every counted pair in order of
    first sighting; its counts are whole after :meth:`settle`.
    """

    __slots__ = ("count", "emails", "firsts", "seen", "shapes", "sources", "stamps", "strings")

    def __init__(self) -> None:
        self.count = 0
        self.sources: dict[str, None] = {}  # request-log sources, the first MAX_SOURCES
        self.seen: dict[tuple[str, type], int] = {}
        self.firsts: dict[tuple[str, type], str] = {}
        self.shapes: dict[tuple[Any, ...], Shape] = {}
        self.strings: dict[str, set[str]] = {}  # distinct values; _FULL once there are many
        self.emails: dict[str, int] = {}
        self.stamps: dict[str, int] = {}

    def settle(self) -> None:
        """Fold the per-shape counts into ``seen``."""
        seen = self.seen
        for shape in self.shapes.values():
            n = shape.count
            if n:
                for pair in shape.pairs:
                    seen[pair] += n
                shape.count = 0

    @property
    def props(self) -> dict[str, PropStats]:
        self.settle()
        out: dict[str, PropStats] = {}
        for (key, tv), n in self.seen.items():
            p = out.get(key)
            if p is None:
                p = out[key] = PropStats()
                values = self.strings.get(key)
                p.values = None if values is _FULL else set(values or ())
                p.emails = self.emails.get(key, 0)
                p.stamps = self.stamps.get(key, 0)
            t = JSON_TYPES.get(tv, "string")
            p.present += n
            p.types[t] = p.types.get(t, 0) + n
            where = self.firsts.get((key, tv))
            if where is not None and t not in p.first:  # seen is in order of first sighting
                p.first[t] = where
            if tv is int:
                p.ints += n
            elif tv is float:
                p.floats += n
        return out


class _Full(set[str]):
    """The sentinel's type: pickled by name, so it is still the sentinel in another process."""

    def __reduce__(self) -> str:
        return "_FULL"


_FULL: Final[set[str]] = _Full()  # sentinel: too many distinct values to be an enum


class EventCensus:
    """Names, property types and timestamps of every event operation."""

    __slots__ = (
        "ages",
        "caps",
        "events",
        "first_where",
        "formats",
        "full_examples",
        "keys",
        "limits",
        "names",
        "names_overflow",
        "recent_seconds",
        "stamp_examples",
        "uncounted",
    )

    def __init__(self, limits: Limits, caps: CapLog) -> None:
        self.limits = limits
        self.caps = caps
        self.names: dict[str, int] = {}
        self.keys: dict[str, str] = {}  # counted name -> event key
        self.first_where: dict[str, str] = {}
        self.stamp_examples: dict[str, list[Example]] = {}
        self.full_examples: set[str] = set()  # kinds whose examples are all taken
        self.names_overflow = 0
        self.events: dict[str, EventStats] = {}
        self.formats: dict[str, int] = {}  # timestamp format -> events (see timestamps)
        self.ages: dict[str, int] = {}  # recency -> events (see recency)
        self.recent_seconds = 0  # events in neither: unix seconds, recent (the common case)
        self.uncounted = 0  # events past the event_keys cap (not in any EventStats.count)

    @property
    def total(self) -> int:
        """Every event counted (those of events past the cap too)."""
        return sum(stats.count for stats in self.events.values()) + self.uncounted

    def event(
        self,
        raw: Any,
        data: Any,
        stamp: Any,
        reference: int,
        at: Located,
        source: str | None,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """One Track API event: :meth:`key_for`, :meth:`add` and :meth:`timestamp` in one call
        (the audit's hot path; the common cases of each are inlined). Returns its event key."""
        key = self.keys.get(raw) if type(raw) is str else None
        if key is not None:  # a name seen before, already trimmed
            self.names[raw] += 1
        else:
            key = self.key_for(raw, at)
        stats = self.events.get(key)
        if (
            stats is None
            or overrides is not None
            or (source is not None and source not in stats.sources)
        ):
            self.add(key, data, at, overrides, source)
        else:  # add()'s common case: a known event from a known source, as sent
            stats.count += 1
            if type(data) is dict and data:
                self._data(stats, data, at)
        if (
            type(stamp) is int
            and -FUTURE_SLACK <= reference - stamp <= CAMPAIGN_WINDOW
            and 0 <= stamp < 100_000_000_000  # unix seconds
        ):
            self.recent_seconds += 1
        else:
            self.timestamp(stamp, reference, at)
        return key

    @property
    def timestamps(self) -> dict[str, int]:
        """Events per timestamp format."""
        return self._with_recent(self.formats, "seconds")

    @property
    def recency(self) -> dict[str, int]:
        """Events per recency against the log's clock (``recent``, ``future``...)."""
        return self._with_recent(self.ages, "recent")

    def _with_recent(self, counts: dict[str, int], bucket: str) -> dict[str, int]:
        """A copy of ``counts`` with the hot path's :attr:`recent_seconds` added to ``bucket``."""
        out = dict(counts)
        if self.recent_seconds:
            out[bucket] = out.get(bucket, 0) + self.recent_seconds
        return out

    def key_for(self, raw: Any, at: Located) -> str:
        """Count the name as sent and return its event key (the grouping for statistics)."""
        if type(raw) is str:
            key = self.keys.get(raw)
            if key is not None:  # the common case: a name seen before, already trimmed
                self.names[raw] += 1
                return key
        name = self.name_of(raw, at)
        key = self.keys.get(name)
        if key is None:
            key = (
                NO_NAME
                if name == NO_NAME
                else OTHER_EVENTS
                if name == OTHER_EVENTS
                else (name_key(name) or name)
            )
            if name != OTHER_EVENTS:
                self.keys[name] = key
        return key

    def name_of(self, raw: Any, at: Located) -> str:
        """The name as Customer.io sees it (trimmed), counted; a placeholder when blank."""
        if isinstance(raw, str):
            name = raw.strip() or NO_NAME
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            name = str(raw)
        else:
            name = NO_NAME
        names = self.names
        if name in names:
            names[name] += 1
        elif len(names) < self.limits.event_names:
            names[name] = 1
            self.first_where[name] = at.where
        else:
            self.names_overflow += 1
            self.caps.hit(
                "event_names",
                f"more than {self.limits.event_names} distinct event names: names beyond "
                "that are counted but not clustered",
            )
            return OTHER_EVENTS
        return name

    def add(
        self,
        key: str,
        data: Any,
        at: Located,
        overrides: dict[str, Any] | None,
        source: str | None = None,
    ) -> None:
        """Count one event, its source, and the JSON types of its top-level data values."""
        stats = self.events.get(key)
        if stats is None:
            if len(self.events) >= self.limits.event_keys:
                self.uncounted += 1
                self.caps.hit(
                    "event_keys",
                    f"more than {self.limits.event_keys} distinct events: property types "
                    "of the rest are not tracked",
                )
                return
            stats = self.events[key] = EventStats()
        stats.count += 1
        sources = stats.sources
        if source is not None and source not in sources and len(sources) < MAX_SOURCES:
            sources[source] = None
        if type(data) is not dict or not data:
            return
        if overrides is not None:
            data = {**data, **{k: v for k, v in overrides.items() if k in data}}
        self._data(stats, data, at)

    def _data(self, stats: EventStats, data: dict[str, Any], at: Located) -> None:
        """The JSON types of one event's top-level data values (a non-empty dict)."""
        shapes = stats.shapes
        spelled = (*data, *map(type, data.values()))
        shape = shapes.get(spelled)
        if shape is None:
            shape = self._shape(stats, data, at)
            if len(shapes) < MAX_SHAPES:
                shapes[spelled] = shape
            else:  # past the cap: the shape is not kept, its pairs are counted now
                seen = stats.seen
                for pair in shape.pairs:
                    seen[pair] += 1
        shape.count += 1
        if shape.strs:
            strings = stats.strings
            for k in shape.strs:
                v = data[k]
                values = strings[k]
                if values is not _FULL and v not in values:
                    if len(values) >= self.limits.enum_values:
                        strings[k] = _FULL
                    else:
                        values.add(v)
                if "@" in v:
                    stats.emails[k] = stats.emails.get(k, 0) + 1
        for k in shape.ints:
            if 1_000_000_000 <= data[k] < 100_000_000_000:
                stats.stamps[k] = stats.stamps.get(k, 0) + 1

    def _pair(self, stats: EventStats, pair: tuple[str, type], at: Located) -> bool:
        """Whether ``pair`` is counted: seen before, or new and within the cap."""
        if pair in stats.seen:
            return True
        if len(stats.seen) >= self.limits.properties_per_event:
            self.caps.hit(
                "properties",
                f"an event has more than {self.limits.properties_per_event} "
                "distinct (property, type) pairs: the rest are not tracked",
            )
            return False
        stats.seen[pair] = 0
        stats.firsts[pair] = at.where
        if pair[1] is str:
            stats.strings.setdefault(pair[0], set())
        return True

    def _shape(self, stats: EventStats, data: dict[str, Any], at: Located) -> Shape:
        """A data shape seen for the first time: its new pairs join ``seen`` in order."""
        pairs: list[tuple[str, type]] = []
        strs: list[str] = []
        ints: list[str] = []
        for k, v in data.items():
            t = type(v)
            pair = (k, t)
            if self._pair(stats, pair, at):
                pairs.append(pair)
                if t is str:
                    strs.append(k)
                elif t is int:
                    ints.append(k)
        return Shape(tuple(pairs), tuple(strs), tuple(ints))

    def timestamp(self, value: Any, reference: int, at: Located) -> None:
        """The format of an event timestamp, and how old it is against ``reference``."""
        counts, recency = self.formats, self.ages
        if type(value) is int and 0 <= value < 100_000_000_000:
            counts["seconds"] = counts.get("seconds", 0) + 1
            if value > reference + FUTURE_SLACK:
                late = "future"
            elif value < reference - CAMPAIGN_WINDOW:
                late = "older_than_72h"
            else:
                recency["recent"] = recency.get("recent", 0) + 1
                return
            recency[late] = recency.get(late, 0) + 1
            if late not in self.full_examples:
                self._example(late, at, value)
            return
        if value is None:
            counts["absent"] = counts.get("absent", 0) + 1
            recency["absent"] = recency.get("absent", 0) + 1
            return
        kind = timestamp_kind(value)
        counts[kind] = counts.get(kind, 0) + 1
        self._example(kind, at, value)
        self._recency(value, reference, at)

    def pipelines_timestamp(self, value: Any, reference: int, at: Located) -> None:
        """A Pipelines call's timestamp: ISO-8601 is what that API wants
        (``pipelines_iso8601``); any other form (``pipelines_milliseconds``...) it drops the
        call for. Its age is judged as a Track API event's is."""
        counts = self.formats
        if value is None:
            counts["absent"] = counts.get("absent", 0) + 1
            self.ages["absent"] = self.ages.get("absent", 0) + 1
            return
        if is_iso8601(value):
            kind = PIPELINES_ISO
        else:
            kind = PIPELINES + timestamp_kind(value)
            self._example(kind, at, value)
        counts[kind] = counts.get(kind, 0) + 1
        self._recency(value, reference, at)

    def _recency(self, value: Any, reference: int, at: Located) -> None:
        recency = self.ages
        ok, seconds = to_timestamp(value)
        if not ok:
            late = "unparseable"
        elif seconds > reference + FUTURE_SLACK:
            late = "future"
            self._example(late, at, value)
        elif seconds < reference - CAMPAIGN_WINDOW:
            late = "older_than_72h"
            self._example(late, at, value)
        else:
            late = "recent"
        recency[late] = recency.get(late, 0) + 1

    def _example(self, kind: str, at: Located, value: Any) -> None:
        if kind in self.full_examples:
            return
        got = self.stamp_examples.get(kind)
        if got is None:
            got = self.stamp_examples[kind] = []
        got.append(Example(at.where, f"timestamp {_show(value)}"))
        if len(got) >= self.limits.examples:
            self.full_examples.add(kind)
