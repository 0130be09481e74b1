"""The audit report as immutable data: what every renderer (terminal, HTML, JSON) reads.

Renderers never recompute anything; the JSON report is this structure encoded as is, so CI
scripts see exactly what the terminal and HTML reports show.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

Severity = Literal["info", "warning", "error", "critical"]
#: From least to most severe; ``--fail-on`` compares positions in this tuple.
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "error", "critical")
_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """Position in :data:`SEVERITIES` (raises KeyError for an unknown name)."""
    return _RANK[severity]


class Example(msgspec.Struct, frozen=True, gc=False):
    """Where a finding was seen (``file:line`` or ``file:entry[N]``) and what was there."""

    where: str
    detail: str


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found in the traffic, with how much traffic it touches.

    ``id`` is stable across runs (``contract.event_data_not_hash``, ``naming_drift``): CI
    scripts and ``--fail-on`` key on it. ``share`` is ``count`` over the total named by ``of``
    (``requests`` for whole requests, ``events`` for event operations, ``lines`` for lines).
    """

    id: str
    kind: str
    severity: Severity
    title: str
    count: int
    share: float
    of: str
    examples: tuple[Example, ...] = ()


class NameCount(msgspec.Struct, frozen=True, gc=False):
    name: str
    count: int


#: How sure the audit is that a name is its cluster's event (docs/audit.md, "Naming drift").
Confidence = Literal["certain", "strong", "possible"]


class DriftMatch(msgspec.Struct, frozen=True, gc=False):
    """Why one variant is its cluster's event, and how sure that is."""

    name: str
    confidence: Confidence
    evidence: str


class DriftCluster(msgspec.Struct, frozen=True):
    """Event names that are one event written differently, and the name to keep.

    ``matches`` has one entry per variant other than the canonical name: ``certain`` and
    ``strong`` variants are the event (a plan may alias them); ``possible`` ones only may be.
    """

    canonical: str
    variants: tuple[NameCount, ...]  # sorted by name
    total: int
    from_plan: bool = False
    matches: tuple[DriftMatch, ...] = ()  # sorted by name

    def confidence_of(self, name: str) -> Confidence:
        """The confidence for one variant (the canonical name itself is certain)."""
        for m in self.matches:
            if m.name == name:
                return m.confidence
        return "certain"


class TypeDrift(msgspec.Struct, frozen=True):
    """A key seen with more than one JSON type. ``event`` is ``*`` for the cross-event view."""

    event: str
    key: str
    types: dict[str, int]
    examples: dict[str, str]  # type -> where it was first seen


class Series(msgspec.Struct, frozen=True):
    """Per-bucket counts for one event; ``invalid`` counts what the verdict rejected."""

    name: str
    total: tuple[int, ...]
    invalid: tuple[int, ...]


class Gap(msgspec.Struct, frozen=True, gc=False):
    """A run of empty buckets where the event's own rate made silence very unlikely."""

    name: str
    start: int  # unix seconds of the first empty bucket
    end: int  # unix seconds just after the last empty bucket
    expected: float


class Timeline(msgspec.Struct, frozen=True):
    """Volume over log time. ``start`` is the first bucket's unix time."""

    bucket_seconds: int
    start: int
    series: tuple[Series, ...]
    gaps: tuple[Gap, ...]


class FileTotals(msgspec.Struct, frozen=True, gc=False):
    """What one input held: every line or HAR entry is in exactly one of the counts."""

    path: str
    format: str
    bytes: int
    records: int
    readable: int
    unreadable: int
    skipped: int
    blank: int


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    records: int  # lines or HAR entries
    bytes: int
    readable: int
    unreadable: int
    skipped: int
    blank: int
    requests: int  # readable records checked
    pipelines: int  # ... of them Pipelines API requests (``/v1/``)
    events: int  # event operations (accepted or not) seen
    seconds: float

    @property
    def pipelines_note(self) -> str:
        """`` (12 to the Pipelines API)`` when any request was: what renderers add."""
        return f" ({self.pipelines} to the Pipelines API)" if self.pipelines else ""


class AuditReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``trackguard audit`` found, ready to render."""

    version: str
    plan: str | None
    inputs: tuple[FileTotals, ...]
    totals: Totals
    outcomes: dict[str, int]
    statuses: dict[str, int]  # the log's own status codes ("none" when absent)
    findings: tuple[Finding, ...]  # most severe first, then by count
    drift: tuple[DriftCluster, ...]
    type_drift: tuple[TypeDrift, ...]
    timestamps: dict[str, int]  # format census of event timestamps
    recency: dict[str, int]  # future / older_than_72h / recent / absent / unparseable
    identifiers: dict[str, int]
    event_names: tuple[NameCount, ...]
    timeline: Timeline | None
    caps: tuple[str, ...]  # every bounded structure that filled up, in words

    def worst(self) -> Severity | None:
        """The most severe finding's severity, or None when nothing was found."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=severity_rank)

    def fails(self, threshold: str) -> bool:
        """True when any finding is at or above ``threshold``."""
        limit = severity_rank(threshold)
        return any(severity_rank(f.severity) >= limit for f in self.findings)
