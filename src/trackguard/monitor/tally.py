"""Per-minute counters on the request path: attribute a verdict to keys, add them in memory.

The gateway calls :meth:`Tally.add` on its event loop for every answered request, so it only
increments a dict under an uncontended lock; the monitor thread swaps the dict out and writes
it to the store (:meth:`Tally.take`). Keys carry the minute, so a late flush never smears
counts into the wrong bucket.

Event names come from clients, so their number is bounded: at most
:data:`MAX_EVENTS_PER_MINUTE` distinct events are counted under their own name in a minute, and
at most :data:`MAX_TOTAL_EVENTS` in the running totals; the rest are counted as
:data:`OTHER` (and :attr:`Tally.folded` says how many were). A client sending endless distinct
names (ids or emails in the name slot) therefore grows neither memory, nor the monitor's table,
nor the console's queries without bound, and loses no count.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Final, Literal

from trackguard.contract.operations import Operation
from trackguard.core.verdict import Outcome, Verdict, Violation

Kind = Literal["outcome", "code"]
#: (minute, event, route, source, kind, name): ``name`` is an outcome or a finding code.
Key = tuple[int, str, str, str, Kind, str]

#: The event of a request whose verdict names none (a missing or blank name, an auth failure).
UNKNOWN: Final = "(unknown)"
#: Event and route of the rows polled from delivery.
DELIVERY: Final = "(delivery)"
#: Event and route of the request log's dropped lines (polled from the gateway's writer).
REQUEST_LOG: Final = "(request-log)"
NO_SOURCE: Final = "-"
#: The event of counts beyond the bounds below.
OTHER: Final = "(other)"
#: Distinct events counted under their own name in one minute.
MAX_EVENTS_PER_MINUTE: Final = 1_000
#: Distinct events kept in the running totals (``/metrics``) since the start.
MAX_TOTAL_EVENTS: Final = 10_000
#: Request outcomes, as counted per operation; ``refused`` is a request with no verdict (401,
#: 413) and ``duplicate`` is kept for the dedupe step of the identity work.
REQUEST_OUTCOMES: Final = (
    "accepted",
    "fixed",
    "warned",
    "rejected",
    "invalid",
    "duplicate",
    "refused",
)
#: Outcomes polled from the delivery worker: rows settled, and upstream requests.
DELIVERY_OUTCOMES: Final = ("delivered", "upstream_rejected", "upstream_request", "upstream_error")
_ACTION_OUTCOME: Final[dict[str, Outcome]] = {
    "fix": "fixed",
    "warn": "warned",
    "reject": "rejected",
}
_RANK: Final = {o: i for i, o in enumerate(REQUEST_OUTCOMES)}


def event_of(op: Operation) -> str:
    """An event's name, or ``@action`` for operations that are not events (``@identify``)."""
    name = op.name
    if not op.is_event:
        return "@" + op.action
    if type(name) is str:  # the common case first: one check instead of three
        return name[:100] or UNKNOWN
    if isinstance(name, (str, int)) and not isinstance(name, bool):
        return str(name)[:100] or UNKNOWN
    return "@" + op.action


def _op_outcome(op: Operation, violations: tuple[Violation, ...]) -> str:
    outcome = "accepted"
    for v in violations:
        if op.batch_index is not None and v.batch_index not in (None, op.batch_index):
            continue
        mapped = _ACTION_OUTCOME.get(v.action, "warned")
        if _RANK[mapped] > _RANK[outcome]:
            outcome = mapped
    return outcome


def attribute(
    verdict: Verdict | None, route: str, source: str | None, minute: int, hint: str | None
) -> list[Key]:
    """The counter keys of one answered request: one outcome per operation, one per finding.

    A request without operations (a contract error, an auth failure) counts once, under
    ``hint`` (the raw body's ``name`` when the caller has it) or ``(unknown)``.
    """
    src = source or NO_SOURCE
    fallback = hint[:100] if hint else UNKNOWN
    if verdict is None:
        return [(minute, fallback, route, src, "outcome", "refused")]
    violations, ops = verdict.violations, verdict.operations
    if len(ops) == 1 and not verdict.contract_errors and not verdict.rejected:
        # Most requests: one operation, and findings (if any) that are all its own. The keys
        # are what the general walk gives, without its bookkeeping (tests compare the two).
        op = ops[0]
        event = event_of(op)
        if not violations:
            return [(minute, event, route, src, "outcome", "accepted")]
        keys: list[Key] = [(minute, event, route, src, "outcome", _op_outcome(op, violations))]
        for v in violations:
            if v.batch_index is not None:
                break  # a batch item's finding: the walk decides whose it is
            keys.append((minute, event, route, src, "code", v.code))
        else:
            return keys
    return walk(verdict, route, src, minute, fallback)


def walk(verdict: Verdict, route: str, src: str, minute: int, fallback: str) -> list[Key]:
    """:func:`attribute`'s keys of any verdict (``src`` and ``fallback`` already resolved)."""
    violations, errors = verdict.violations, verdict.contract_errors
    keys: list[Key] = []
    events: dict[int | None, str] = {}
    for op in verdict.operations:
        event = event_of(op)
        events[op.batch_index] = event
        outcome = _op_outcome(op, violations) if violations else "accepted"
        keys.append((minute, event, route, src, "outcome", outcome))
    for op in verdict.rejected:
        event = event_of(op)
        events[op.batch_index] = event
        keys.append((minute, event, route, src, "outcome", "rejected"))
    if not keys:
        keys.append((minute, fallback, route, src, "outcome", verdict.outcome))
    elif errors:
        broken = {e.batch_index for e in errors if e.batch_index is not None}
        keys.extend((minute, UNKNOWN, route, src, "outcome", "invalid") for _ in broken)
    if not errors and not violations:  # a clean request: its outcomes are all there is
        return keys
    single = next(iter(events.values())) if len(events) == 1 else fallback
    findings = [(e.batch_index, e.code) for e in errors]
    findings.extend((v.batch_index, v.code) for v in violations)
    for index, code in findings:
        event = events.get(index, fallback) if index is not None else single
        keys.append((minute, event, route, src, "code", code))
    return keys


class Tally:
    """Counts waiting to be flushed, plus running totals of what was flushed (for /metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[Key] = Counter()
        self.totals: Counter[tuple[str, str, str, str, str]] = Counter()
        #: The events counted under their own name, for the minutes still being counted.
        self._named: dict[int, set[str]] = {}
        self._total_events: set[str] = set()
        #: Counts moved to :data:`OTHER` because a bound was reached (module docstring).
        self.folded = 0

    def _bounded(self, key: Key) -> Key:
        """``key``, or the same key under :data:`OTHER` when its minute is full (lock held)."""
        minute, event = key[0], key[1]
        named = self._named.get(minute)
        if named is None:
            named = self._named[minute] = set()
            for old in [m for m in self._named if m < minute - 1]:
                del self._named[old]  # a late flush may still add to the minute before
        if event in named or event == OTHER:
            return key
        if len(named) < MAX_EVENTS_PER_MINUTE:
            named.add(event)
            return key
        self.folded += 1
        return (minute, OTHER, *key[2:])

    def add(self, keys: list[Key]) -> None:
        with self._lock:
            pending, named = self._pending, self._named
            for key in keys:
                seen = named.get(key[0])
                if seen is not None and key[1] in seen:
                    pending[key] += 1  # an event already counted this minute: within bounds
                else:
                    pending[self._bounded(key)] += 1

    def add_counts(self, counts: dict[Key, int]) -> None:
        with self._lock:
            pending = self._pending
            for key, n in counts.items():
                pending[self._bounded(key)] += n

    def take(self) -> Counter[Key]:
        """Everything added since the last take; the caller writes it (or gives it back)."""
        with self._lock:
            taken, self._pending = self._pending, Counter()
        return taken

    def settle(self, flushed: Counter[Key]) -> None:
        """Fold flushed counts into the running totals (read at scrape time)."""
        known = self._total_events
        for (_, event, route, source, kind, name), n in flushed.items():
            if event not in known:
                if len(known) < MAX_TOTAL_EVENTS:
                    known.add(event)
                else:
                    event = OTHER
            self.totals[kind, event, route, source, name] += n
