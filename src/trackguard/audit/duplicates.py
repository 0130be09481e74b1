"""Events sent more than once: identical requests (retries), repeated event ids, repeated keys,
and Pipelines calls repeated by messageId.

Customer.io drops an event whose ULID ``id`` it has seen, so a repeated ``id`` costs nothing;
an identical request without one, or the plan's business key (``dedupe_key``) arriving again,
is counted twice by Customer.io and fires journeys twice. Every Pipelines SDK resends a batch
with the same messageIds when it retries, so a repeated messageId is a retry. A repeat within
a minute of the previous copy is a *retry burst* (an SDK or webhook retrying). Memory is a
bounded window of recent request hashes: the oldest half is dropped when it fills.
"""

from __future__ import annotations

from itertools import islice
from typing import Final

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import Located
from trackguard.audit.model import Example

#: A repeat within this many seconds of the previous identical request is a retry.
RETRY_WINDOW: Final = 60


def is_burst(before: int, now: int) -> bool:
    """Whether a request seen again at ``now`` after ``before`` (log times; -1: none) is a
    retry burst."""
    return before >= 0 and 0 <= now - before <= RETRY_WINDOW


# The examples' details, here and where ``audit --jobs`` merges them.


def request_detail(gap: int | None) -> str:
    """An identical request, ``gap`` seconds after its previous copy in a retry burst."""
    detail = "identical to an earlier request"
    return detail if gap is None else f"{detail} {gap} s before"


def id_detail(value: str) -> str:
    return f"event id {value!r} was sent before"


def key_detail(key: str) -> str:
    return f"business key {key!r} was sent before"


def message_detail(value: str, copy: int) -> str:
    return f"messageId {value!r} sent again (copy {copy})"


class SeenWindow:
    """A bounded map of hash -> last time, evicting the oldest half when full."""

    __slots__ = ("caps", "label", "limit", "map")

    def __init__(self, limit: int, label: str, caps: CapLog) -> None:
        self.limit = limit
        self.label = label
        self.caps = caps
        self.map: dict[int, int] = {}

    def check(self, h: int, when: int) -> int | None:
        """The previous time ``h`` was seen (or None), recording ``when`` as the latest."""
        seen = self.map
        before = seen.get(h)
        if before is not None:
            del seen[h]  # re-inserted below: the map stays ordered by last sighting
        elif len(seen) >= self.limit:
            self.caps.hit(
                self.label,
                f"{self.label}: only the latest {self.limit // 2}-{self.limit} distinct "
                "values are remembered; repeats further apart are not counted",
            )
            self.map = seen = dict(islice(seen.items(), self.limit // 2, None))
        seen[h] = when
        return before


class DuplicateCensus:
    """Repeated event requests, event ids and plan business keys."""

    __slots__ = (
        "bursts",
        "examples",
        "ids",
        "keys",
        "message_calls",
        "message_ids",
        "messages",
        "requests",
        "seen_ids",
        "seen_keys",
        "seen_messages",
        "seen_requests",
    )

    def __init__(self, limits: Limits, caps: CapLog) -> None:
        window = limits.duplicate_window
        self.seen_requests = SeenWindow(window, "duplicate requests", caps)
        self.seen_ids = SeenWindow(window, "repeated event ids", caps)
        self.seen_keys = SeenWindow(window, "repeated dedupe keys", caps)
        self.seen_messages = SeenWindow(window, "repeated messageIds", caps)  # hash -> copies seen
        self.requests = 0
        self.bursts = 0
        self.ids = 0
        self.keys = 0
        self.message_calls = 0  # Pipelines calls carrying a messageId
        self.messages = 0  # ... that repeat an earlier one
        self.message_ids = 0  # distinct messageIds repeated
        self.examples: dict[str, list[Example]] = {
            "requests": [],
            "ids": [],
            "keys": [],
            "messages": [],
        }

    def _example(self, kind: str, at: Located, detail: str) -> None:
        got = self.examples[kind]
        if len(got) < 3:
            got.append(Example(at.where, detail))

    def request_hash(self, h: int, when: int | None, at: Located) -> None:
        """An event request by the hash of its method, path and body."""
        now = when if when is not None else -1
        window = self.seen_requests
        seen = window.map
        if h not in seen and len(seen) < window.limit:  # the common case: a new request
            seen[h] = now
            return
        before = window.check(h, now)
        if before is None:
            return
        self.requests += 1
        gap = None
        if is_burst(before, now):
            self.bursts += 1
            gap = now - before
        self._example("requests", at, request_detail(gap))

    def event_id(self, value: str, at: Located) -> None:
        if self.seen_ids.check(hash(value), 0) is not None:
            self.ids += 1
            self._example("ids", at, id_detail(value))

    def dedupe_key(self, key: str, at: Located) -> None:
        if self.seen_keys.check(hash(key), 0) is not None:
            self.keys += 1
            self._example("keys", at, key_detail(key))

    def message_id(self, value: str, at: Located) -> None:
        """A Pipelines call's messageId (of any call type, dropped or not)."""
        self.message_calls += 1
        h = hash(value)
        copies = self.seen_messages.map.get(h, 0)
        self.seen_messages.check(h, copies + 1)
        if copies:
            self.messages += 1
            if copies == 1:
                self.message_ids += 1
            self._example("messages", at, message_detail(value, copies + 1))
