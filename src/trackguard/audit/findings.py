"""Turning the accumulated counts into findings, each with a severity.

Severities (``docs/audit.md`` has the table): data Customer.io drops or mis-files is an
``error``; data that arrives but misbehaves (drift, duplicates, orphans, replaced timestamps)
is a ``warning``; context is ``info``. An ``error`` that touches at least
:data:`CRITICAL_SHARE` of its traffic, and any authentication failure in the log, is
``critical``: that is the "Customer.io is missing people" case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, cast

from trackguard.audit.census import NO_NAME, OTHER_EVENTS, PIPELINES, PropStats
from trackguard.audit.duplicates import RETRY_WINDOW
from trackguard.audit.engine import Auditor
from trackguard.audit.identity import IdentityCensus
from trackguard.audit.model import DriftCluster, Example, Finding, Gap, Severity, TypeDrift
from trackguard.audit.tally import Tally

CRITICAL_SHARE: Final = 0.10
#: Contract warnings the timestamp census reports more precisely.
_CENSUS_COVERED: Final = frozenset({"timestamp_replaced"})
_ACTION_SEVERITY: Final[dict[str, Severity]] = {"reject": "error", "warn": "warning", "fix": "info"}
_TIMESTAMP_SEVERITY: Final[dict[str, tuple[Severity, str]]] = {
    "milliseconds": ("error", "event timestamps in milliseconds (Customer.io wants seconds)"),
    "microseconds": ("error", "event timestamps in microseconds (Customer.io wants seconds)"),
    "nanoseconds": ("error", "event timestamps in nanoseconds (Customer.io wants seconds)"),
    "negative": ("error", "negative event timestamps"),
    "iso8601": (
        "warning",
        "ISO-8601 event timestamps: Customer.io replaces them with the time of receipt",
    ),
    "numeric_string": (
        "warning",
        "event timestamps as strings: Customer.io replaces them with the time of receipt",
    ),
    "float_seconds": (
        "warning",
        "fractional event timestamps: Customer.io replaces them with the time of receipt",
    ),
    "invalid": (
        "warning",
        "unparseable event timestamps: Customer.io replaces them with the time of receipt",
    ),
}

_PIPELINES_FORMS: Final = {
    "seconds": "unix seconds",
    "milliseconds": "milliseconds",
    "microseconds": "microseconds",
    "nanoseconds": "nanoseconds",
    "negative": "negative numbers",
    "float_seconds": "fractional seconds",
    "numeric_string": "numeric strings",
    "invalid": "unparseable strings",
}
#: A Pipelines call whose timestamp is not ISO-8601 is dropped (the API's contract).
_TIMESTAMP_SEVERITY.update(
    {
        PIPELINES + kind: (
            "error",
            f"Pipelines timestamps as {form}: the Pipelines API wants ISO-8601 and drops the call",
        )
        for kind, form in _PIPELINES_FORMS.items()
    }
)


def _share(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def finding(
    id: str,
    kind: str,
    severity: Severity,
    title: str,
    count: int,
    total: int,
    of: str,
    examples: list[Example] | tuple[Example, ...] = (),
) -> Finding:
    """A finding, escalated to critical when an error touches a large share of traffic."""
    share = _share(count, total)
    if severity == "error" and share >= CRITICAL_SHARE:
        severity = "critical"
    return Finding(
        id=id,
        kind=kind,
        severity=severity,
        title=title,
        count=count,
        share=share,
        of=of,
        examples=tuple(examples),
    )


def _tally_items(tally: Tally) -> list[tuple[object, int, list[Example]]]:
    return [(k, n, tally.examples.get(k, [])) for k, n in tally.counts.items()]


def from_tallies(a: Auditor, lines: int) -> list[Finding]:
    """Unreadable lines, contract errors and warnings, plan violations, log rejections."""
    out: list[Finding] = []
    requests = a.requests
    for key, n, ex in _tally_items(a.unreadable):
        out.append(
            finding(
                f"unreadable.{_slug(str(key))}",
                "unreadable",
                "warning",
                f"unreadable: {key}",
                n,
                lines,
                "lines",
                ex,
            )
        )
    for key, n, ex in _tally_items(a.contract):
        code = str(key)
        kind = "invalid_json" if code == "invalid_json" else "contract"
        title = ex[0].detail if ex else code
        if code == "invalid_json":
            title = "request body is not valid JSON"
        elif code.startswith("attribute_value_too_long"):
            title = "value for an attribute cannot be longer than 1000 bytes"
        out.append(
            finding(
                f"contract.{code}",
                kind,
                "error",
                f"Customer.io rejects: {title}",
                n,
                requests,
                "requests",
                ex,
            )
        )
    for key, n, ex in _tally_items(a.warnings):
        if key in _CENSUS_COVERED:
            continue
        title = ex[0].detail if ex else str(key)
        out.append(
            finding(
                f"contract_warning.{key}",
                "contract_warning",
                "warning",
                title,
                n,
                requests,
                "requests",
                ex,
            )
        )
    for key, n, ex in _tally_items(a.violations):
        code, rule, action = cast(tuple[str, str, str], key)
        title = _plan_title(str(code), str(rule), ex)
        out.append(
            finding(
                f"plan.{code}.{rule}.{action}",
                "plan",
                _ACTION_SEVERITY.get(str(action), "warning"),
                f"{title} (plan: {action})",
                n,
                requests,
                "requests",
                ex,
            )
        )
    for key, n, ex in _tally_items(a.rejected_by_log):
        status, message = cast(tuple[int, str], key)
        out.append(_log_finding(int(status), str(message), n, requests, ex))
    for key, n, ex in _tally_items(a.disagreements):
        out.append(
            finding(
                f"disagreement.{key}",
                "disagreement",
                "info",
                str(key).replace("_", " "),
                n,
                requests,
                "requests",
                ex,
            )
        )
    return out


def _plan_title(code: str, rule: str, ex: list[Example]) -> str:
    parts = rule.split(".")
    if code == "property_missing" and len(parts) >= 4 and parts[0] == "events":
        return f"missing required property {parts[-1]!r} in {parts[1]}"
    return ex[0].detail if ex else f"{code} ({rule})"


def _log_finding(status: int, message: str, n: int, total: int, ex: list[Example]) -> Finding:
    severity: Severity
    if status in (401, 403):
        severity = "critical"
    elif status == 429 or status >= 500:
        severity = "warning"
    else:
        severity = "error"
    what = f"the log shows {status}" + (f": {message}" if message else "")
    return finding(
        f"log.{status}.{_slug(message) or 'no_message'}",
        "log_rejected",
        severity,
        what,
        n,
        total,
        "requests",
        ex,
    )


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    return out[:60]


def from_drift(clusters: list[DriftCluster], events: int, first: dict[str, str]) -> list[Finding]:
    """One finding per cluster for its certain and strong names, one per possible name."""
    out = []
    for c in clusters:
        firm = [v for v in c.variants if c.confidence_of(v.name) != "possible"]
        strays = [v for v in firm if v.name != c.canonical]
        if len(firm) > 1:
            names = ", ".join(repr(v.name) for v in firm)
            strong = [m for m in c.matches if m.confidence == "strong"]
            why = "".join(f"; strong match {m.name!r}: {m.evidence}" for m in strong)
            ex = [Example(first.get(v.name, "?"), f"{v.name!r} ({v.count} events)") for v in strays]
            out.append(
                finding(
                    f"naming_drift.{c.canonical}",
                    "naming_drift",
                    "warning",
                    f"one event under {len(firm)} names: {names}; suggested {c.canonical!r}{why}",
                    sum(v.count for v in strays),
                    events,
                    "events",
                    ex[:3],
                )
            )
        counts = {v.name: v.count for v in c.variants}
        for m in c.matches:
            if m.confidence != "possible":
                continue
            out.append(
                finding(
                    f"naming_drift_possible.{c.canonical}.{m.name}",
                    "naming_drift",
                    "info",
                    f"possible naming drift: {m.name!r} may be {c.canonical!r} ({m.evidence})",
                    counts[m.name],
                    events,
                    "events",
                    [Example(first.get(m.name, "?"), f"{m.name!r} ({counts[m.name]} events)")],
                )
            )
    return out


def type_drift(
    stats: dict[str, dict[str, PropStats]], display: dict[str, str]
) -> tuple[list[TypeDrift], list[TypeDrift]]:
    """Per-event and cross-event keys seen with more than one non-null JSON type."""
    per_event: list[TypeDrift] = []
    across: dict[str, PropStats] = {}
    for event_key in sorted(stats):
        for key in sorted(stats[event_key]):
            p = stats[event_key][key]
            if _drifts(p):
                per_event.append(_drift_row(display.get(event_key, event_key), key, p))
            merged = across.setdefault(key, PropStats())
            merged.merge(p, 0)
    cross = [_drift_row("*", k, p) for k, p in sorted(across.items()) if _drifts(p)]
    return per_event, cross


def _drifts(p: PropStats) -> bool:
    return sum(1 for t in p.types if t != "null") > 1


def _drift_row(event: str, key: str, p: PropStats) -> TypeDrift:
    types = dict(sorted(p.types.items(), key=lambda kv: (-kv[1], kv[0])))
    return TypeDrift(
        event=event, key=key, types=types, examples={t: p.first[t] for t in types if t in p.first}
    )


def from_type_drift(rows: list[TypeDrift], cross: list[TypeDrift], events: int) -> list[Finding]:
    out = []
    tagged: list[tuple[TypeDrift, Severity]] = [(r, "warning") for r in rows]
    tagged += [(r, "info") for r in cross]
    for row, severity in tagged:
        non_null = {t: n for t, n in row.types.items() if t != "null"}
        main = max(sorted(non_null), key=lambda t: non_null[t])
        minority = sum(n for t, n in non_null.items() if t != main)
        seen = ", ".join(f"{t} {n}" for t, n in row.types.items())
        where = "across events" if row.event == "*" else f"in {row.event}"
        ex = [Example(w, f"{row.key!r} as {t}") for t, w in row.examples.items() if t != main]
        out.append(
            finding(
                f"type_drift.{row.event}.{row.key}",
                "type_drift",
                severity,
                f"{row.key!r} {where} has several types: {seen}",
                minority,
                events,
                "events",
                ex[:3],
            )
        )
    return out


def from_timestamps(a: Auditor) -> list[Finding]:
    census = a.events
    total = census.total
    out = []
    for kind, (severity, title) in _TIMESTAMP_SEVERITY.items():
        n = census.timestamps.get(kind, 0)
        if n:
            out.append(
                finding(
                    f"timestamp.{kind}",
                    "timestamp",
                    severity,
                    title,
                    n,
                    total,
                    "events",
                    census.stamp_examples.get(kind, []),
                )
            )
    future = census.recency.get("future", 0)
    if future:
        out.append(
            finding(
                "timestamp.future",
                "timestamp",
                "warning",
                "event timestamps in the future of the log's clock",
                future,
                total,
                "events",
                census.stamp_examples.get("future", []),
            )
        )
    old = census.recency.get("older_than_72h", 0)
    if old:
        out.append(
            finding(
                "timestamp.older_than_72h",
                "timestamp",
                "info",
                "events older than 72 h when sent: they cannot trigger campaigns",
                old,
                total,
                "events",
                census.stamp_examples.get("older_than_72h", []),
            )
        )
    return out


def from_identity(a: Auditor) -> list[Finding]:
    ident = a.identity
    people_ops = sum(ident.kinds.values())
    out = []
    by_id, by_email = ident.kinds.get("id", 0), ident.kinds.get("email", 0)
    if by_id and by_email:
        out.append(
            finding(
                "identity.mixed_keys",
                "identity",
                "warning",
                f"people are keyed by id in {by_id} calls and by email in {by_email}",
                min(by_id, by_email),
                people_ops,
                "person calls",
                _minority_examples(ident, by_email <= by_id),
            )
        )
    both = ident.people_under_both()
    if both:
        out.append(
            finding(
                "identity.people_under_both",
                "identity",
                "warning",
                "people seen under both their email and their id",
                both,
                len(ident.by_email),
                "email-keyed people",
                ident.mixed_examples,
            )
        )
    if ident.email_in_id:
        out.append(
            finding(
                "identity.email_in_id",
                "identity",
                "error",
                "email addresses used as the person id",
                ident.email_in_id,
                people_ops,
                "person calls",
                ident.email_in_id_examples,
            )
        )
    numeric, text = ident.id_shapes.get("numeric", 0), ident.id_shapes.get("text", 0)
    if numeric and text:
        out.append(
            finding(
                "identity.numeric_and_text_ids",
                "identity",
                "warning",
                f"ids are numeric in {numeric} calls and text in {text}: two id schemes?",
                min(numeric, text),
                numeric + text,
                "id-keyed calls",
                ident.shape_examples["numeric" if numeric <= text else "text"],
            )
        )
    as_number = ident.body_id_types.get("number", 0)
    as_string = ident.body_id_types.get("string", 0)
    if as_number and as_string:
        out.append(
            finding(
                "identity.id_types",
                "identity",
                "warning",
                f"identify bodies send id as a number {as_number} times and as a "
                f"string {as_string} times",
                min(as_number, as_string),
                as_number + as_string,
                "identify calls with id",
            )
        )
    orphans, orphan_ids, ex = a.anonymous.orphans()
    if orphans:
        out.append(
            finding(
                "anonymous.orphaned",
                "anonymous",
                "warning",
                f"anonymous events never followed by an identify with their "
                f"anonymous_id ({orphan_ids} anonymous ids)",
                orphans,
                a.anonymous.events,
                "anonymous events",
                ex,
            )
        )
    return out


def _minority_examples(ident: IdentityCensus, email: bool) -> list[Example]:
    if email:
        return [Example(w, "person keyed by email") for w in list(ident.by_email.values())[:3]]
    ids = ident.shape_examples["text"] + ident.shape_examples["numeric"]
    return [Example(x.where, "person keyed by id") for x in ids[:3]]


def from_duplicates(a: Auditor) -> list[Finding]:
    d = a.duplicates
    events = a.events.total
    out = []
    if d.requests:
        out.append(
            finding(
                "duplicates.requests",
                "duplicates",
                "warning",
                f"identical event requests sent again ({d.bursts} within {RETRY_WINDOW} s:"
                " retry bursts)",
                d.requests,
                events,
                "events",
                d.examples["requests"],
            )
        )
    if d.keys:
        out.append(
            finding(
                "duplicates.dedupe_keys",
                "duplicates",
                "warning",
                "the plan's business key (dedupe_key) repeated",
                d.keys,
                events,
                "events",
                d.examples["keys"],
            )
        )
    if d.messages:
        out.append(
            finding(
                "duplicates.message_ids",
                "duplicates",
                "warning",
                f"Pipelines calls sent again with the same messageId ({d.message_ids} messageIds "
                "repeated: SDK retries)",
                d.messages,
                d.message_calls,
                "Pipelines calls with a messageId",
                d.examples["messages"],
            )
        )
    if d.ids:
        out.append(
            finding(
                "duplicates.event_ids",
                "duplicates",
                "info",
                "event ids repeated (Customer.io drops the repeats)",
                d.ids,
                events,
                "events",
                d.examples["ids"],
            )
        )
    return out


def from_gaps(gaps: tuple[Gap, ...], buckets: int) -> list[Finding]:
    by_name: dict[str, list[Gap]] = {}
    for g in gaps:
        by_name.setdefault(g.name, []).append(g)
    out = []
    for name, found in sorted(by_name.items()):
        ex = [
            Example(
                f"{_iso(g.start)} to {_iso(g.end)}", f"no events where {g.expected:g} were expected"
            )
            for g in found
        ]
        out.append(
            finding(
                f"volume_gap.{name}",
                "volume_gap",
                "warning",
                f"{name}: {len(found)} silent period(s) in its volume",
                len(found),
                buckets,
                "buckets",
                ex[:3],
            )
        )
    return out


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def placeholders() -> frozenset[str]:
    """Census names that are not event names (excluded from drift and inference)."""
    return frozenset({NO_NAME, OTHER_EVENTS})
