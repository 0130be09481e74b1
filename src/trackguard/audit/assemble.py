"""Putting the report together once the stream ends: clusters, drift, timeline, findings."""

from __future__ import annotations

from trackguard import __version__
from trackguard.audit import findings as f
from trackguard.audit.census import PropStats
from trackguard.audit.drift import Traffic, cluster, display_names, event_key
from trackguard.audit.engine import Auditor
from trackguard.audit.infer import EventDraft, aliases_for, possible_comment, render_plan
from trackguard.audit.model import (
    AuditReport,
    FileTotals,
    Finding,
    NameCount,
    Totals,
    severity_rank,
)
from trackguard.audit.readers import FileCounter


def _names(a: Auditor) -> dict[str, int]:
    skip = f.placeholders()
    return {n: c for n, c in a.events.names.items() if n not in skip}


def _traffic(a: Auditor) -> dict[str, Traffic]:
    """Property keys and sources per event key: the evidence drift clustering weighs."""
    return {
        key: Traffic((k for k, _ in stats.seen), stats.sources)
        for key, stats in a.events.events.items()
    }


def _sort(found: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(found, key=lambda x: (-severity_rank(x.severity), -x.count, x.id)))


def build_report(a: Auditor, counters: list[FileCounter], seconds: float) -> AuditReport:
    """The finished report."""
    names = _names(a)
    traffic = _traffic(a)
    clusters = cluster(names, a.plan, traffic)
    display = display_names(names, a.plan, traffic)
    events_total = a.events.total
    inputs = tuple(
        FileTotals(
            path=c.path,
            format=c.format,
            bytes=c.bytes,
            records=c.records,
            readable=c.readable,
            unreadable=c.unreadable,
            skipped=c.skipped,
            blank=c.blank,
        )
        for c in counters
    )
    records = sum(c.records for c in counters)
    totals = Totals(
        records=records,
        bytes=sum(c.bytes for c in counters),
        readable=sum(c.readable for c in counters),
        unreadable=sum(c.unreadable for c in counters),
        skipped=sum(c.skipped for c in counters),
        blank=sum(c.blank for c in counters),
        requests=a.requests,
        pipelines=a.pipelines,
        events=events_total,
        seconds=round(seconds, 3),
    )
    stats = _merged(a, display)
    attr_stats = {k: e.props for k, e in a.attribute_census.events.items()}
    per_event, cross = f.type_drift(stats, {})
    attr_drift, _ = f.type_drift(attr_stats, {})
    timeline = a.timeline.build(display)
    found = f.from_tallies(a, records)
    found += f.from_drift(clusters, events_total, a.events.first_where)
    found += f.from_type_drift(per_event + attr_drift, cross, events_total)
    found += f.from_timestamps(a)
    found += f.from_identity(a)
    found += f.from_duplicates(a)
    if timeline is not None:
        buckets = len(timeline.series[0].total) if timeline.series else 0
        found += f.from_gaps(timeline.gaps, buckets)
    statuses = {
        ("none" if s is None else str(s)): n
        for s, n in sorted(a.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    }
    return AuditReport(
        version=__version__,
        plan=a.plan.name if a.plan is not None else None,
        inputs=inputs,
        totals=totals,
        outcomes={
            o: a.outcomes.get(o, 0) for o in ("accepted", "fixed", "warned", "rejected", "invalid")
        },
        statuses=statuses,
        findings=_sort(found),
        drift=tuple(clusters),
        type_drift=tuple(per_event + attr_drift + cross),
        timestamps=dict(sorted(a.events.timestamps.items(), key=lambda kv: (-kv[1], kv[0]))),
        recency=dict(sorted(a.events.recency.items(), key=lambda kv: (-kv[1], kv[0]))),
        identifiers=dict(sorted(a.identity.kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        event_names=tuple(
            NameCount(n, c)
            for n, c in sorted(a.events.names.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        timeline=timeline,
        caps=a.caps.messages()
        + ((f"{a.bad_times} log times could not be read",) if a.bad_times else ()),
    )


def _merged(a: Auditor, display: dict[str, str]) -> dict[str, dict[str, PropStats]]:
    """Property statistics per event under its shown (canonical) name."""
    merged: dict[str, dict[str, PropStats]] = {}
    for key, stats in a.events.events.items():
        if key in f.placeholders():
            continue
        props = merged.setdefault(display.get(key, key), {})
        for prop, p in stats.props.items():
            props.setdefault(prop, PropStats()).merge(p, a.limits.enum_values)
    return merged


def infer_plan(a: Auditor) -> str:
    """A draft tracking plan (YAML) from what the audit saw."""
    names = _names(a)
    traffic = _traffic(a)
    display = display_names(names, a.plan, traffic)
    possible: dict[str, list[str]] = {}  # event -> comments on names that may be it
    skip: set[str] = set()
    for c in cluster(names, a.plan, traffic):
        for m in c.matches:
            if m.confidence == "possible":
                possible.setdefault(c.canonical, []).append(possible_comment(m))
                skip.add(event_key(m.name))
    merged: dict[str, tuple[int, dict[str, PropStats]]] = {}
    variants: dict[str, list[str]] = {}
    for name in names:
        key = event_key(name)
        if key not in skip:
            variants.setdefault(display.get(key, name), []).append(name)
    for key, stats in a.events.events.items():
        if key in f.placeholders() or key in skip:
            continue
        canonical = display.get(key, key)
        count, props = merged.get(canonical, (0, {}))
        for prop, p in stats.props.items():
            into = props.setdefault(prop, PropStats())
            into.merge(p, a.limits.enum_values)
        merged[canonical] = (count + stats.count, props)
    drafts = [
        EventDraft(
            name, count, props, aliases_for(name, variants.get(name, [])), possible.get(name, [])
        )
        for name, (count, props) in merged.items()
    ]
    attrs = a.attribute_census.events.get("(attributes)")
    by_id, by_email = a.identity.kinds.get("id", 0), a.identity.kinds.get("email", 0)
    return render_plan(
        drafts,
        attrs.props if attrs is not None else {},
        canonical_id="email" if by_email > by_id else "id",
        requests=a.requests,
        enum_limit=a.limits.enum_values,
    )
