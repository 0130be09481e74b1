"""What each console page shows, gathered from the store, the plan and the alert rules.

Pure data: no HTML and no HTTP here, so the same figures can be tested exactly and rendered
by the templates. Every read goes through ``trackguard.store`` (which owns the SQL) and is
bounded, so a page costs the same on a large store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.durations import DurationError, parse_instant
from trackguard.monitor.health import DESCRIPTIONS
from trackguard.monitor.rules import AlertConfig, Rule
from trackguard.monitor.state import AlertState
from trackguard.plan.model import Plan
from trackguard.plan.naming import name_key
from trackguard.store import quarantine as q
from trackguard.store import reads
from trackguard.store.base import QuarantineRecord
from trackguard.store.reads import Target
from trackguard.store.sql import is_postgres_url
from trackguard.store.urls import display_url

#: Chart ranges: name -> (seconds shown, bucket seconds).
RANGES: Final[dict[str, tuple[int, int]]] = {
    "1h": (3600, 60),
    "24h": (86_400, 900),
    "7d": (7 * 86_400, 3600),
}
DEFAULT_RANGE: Final = "24h"
#: Events charted on the overview: every planned event, then the busiest others up to this.
MAX_CHARTED: Final = 24
#: Replayed events older than this do not trigger Customer.io campaigns.
LATE_SECONDS: Final = 72 * 3600.0
PAGE_SIZE: Final = 50


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    note: str = ""
    bad: bool = False


@dataclass(frozen=True)
class AlertRow:
    name: str
    kind: str
    severity: str
    state: str
    since: float | None
    value: float | None
    summary: str
    threshold: float | None


@dataclass(frozen=True)
class Overview:
    range: str
    events: list[str]
    figures: list[Figure]
    alerts: list[AlertRow]
    health: list[Figure]


@dataclass(frozen=True)
class Explanation:
    code: str
    kind: str
    when: str
    example: str


@dataclass(frozen=True)
class PlanEventRow:
    name: str
    planned: bool
    description: str = ""
    aliases: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    seen: int = 0
    last_seen: float | None = None
    bad: int = 0
    #: Requests the naming fix renamed onto this event (``event_name_drift`` and
    #: ``event_name_convention`` findings): the drift the plan absorbs.
    renamed: int = 0
    #: Spellings counted under their own name that the plan maps onto this event (seen only
    #: where the plan does not fix naming: fixed names are counted under the event).
    variants: list[tuple[str, int]] = field(default_factory=list)
    failing: list[tuple[str, int]] = field(default_factory=list)


def window(range_name: str, now: float) -> tuple[float, float, int]:
    """``(since, until, bucket)`` of a chart range, aligned to whole buckets."""
    seconds, bucket = RANGES.get(range_name, RANGES[DEFAULT_RANGE])
    until = (int(now) // bucket + 1) * bucket
    return until - seconds, until, bucket


def series(store: Target, range_name: str, now: float, events: list[str]) -> dict[str, Any]:
    """The overview's chart data: per event, bucket starts, requests and the invalid rate."""
    since, until, bucket = window(range_name, now)
    data = reads.event_series(store, since, until, bucket)
    xs = list(range(int(since), int(until), bucket))
    out: dict[str, Any] = {"x": xs, "bucket": bucket, "events": {}}
    for event in events:
        points = {p.at: p for p in data.get(event, [])}
        totals = [points[x].total if x in points else 0 for x in xs]
        rates = [
            round(points[x].bad / points[x].total, 4) if x in points and points[x].total else None
            for x in xs
        ]
        out["events"][event] = {"requests": totals, "invalid_rate": rates}
    return out


def charted_events(store: Target, plan: Plan | None, now: float) -> list[str]:
    """Planned events first (plan order), then the busiest others seen in the last 7 days."""
    planned = list(plan.events) if plan is not None else []
    usage = reads.event_usage(store, now - 7 * 86_400)
    others = sorted((e for e in usage if e not in planned), key=lambda e: (-usage[e][0], e))
    return (planned + others)[: max(MAX_CHARTED, len(planned))]


def rate_thresholds(alerts: AlertConfig | None) -> dict[str, list[tuple[str, float]]]:
    """Per event, the ``rate`` alert rules that watch it, as ``(rule, threshold)``.

    A rule without an event scope watches every event (key ``"*"``).
    """
    out: dict[str, list[tuple[str, float]]] = {}
    for rule in alerts.rules if alerts is not None else ():
        if rule.kind != "rate":
            continue
        for event in sorted(rule.scope.events) if rule.scope.events is not None else ["*"]:
            out.setdefault(event, []).append((rule.name, rule.threshold))
    return out


def overview(
    store: Target, plan: Plan | None, alerts: AlertConfig | None, range_name: str, now: float
) -> Overview:
    counts = reads.outbox_counts(store)
    age = None if counts.oldest_pending_at is None else max(0.0, now - counts.oldest_pending_at)
    recent = reads.delivery_series(store, now - 900, now + 60, 900)
    sent = sum(n for _, n in recent.get("upstream_request", []))
    errors = sum(n for _, n in recent.get("upstream_error", []))
    rejected = sum(n for _, n in recent.get("upstream_rejected", []))
    delivered = sum(n for _, n in recent.get("delivered", []))
    error_rate = errors / sent if sent else 0.0
    figures = [
        Figure("outbox backlog", f"{counts.pending:,}", "operations waiting", counts.pending > 0),
        Figure("oldest pending", duration(age), "age of the oldest waiting operation"),
        Figure("quarantined", f"{counts.quarantine:,}", "records kept"),
        Figure("delivered (15 min)", f"{delivered:,}", f"{rejected:,} rejected upstream"),
        Figure(
            "upstream (15 min)",
            "no requests" if not sent else f"{error_rate:.1%} errors",
            f"{sent:,} requests, {errors:,} failed",
            bad=error_rate > 0.05,
        ),
    ]
    return Overview(
        range=range_name if range_name in RANGES else DEFAULT_RANGE,
        events=charted_events(store, plan, now),
        figures=figures,
        alerts=alert_rows(store, alerts),
        health=health_figures(store),
    )


def alert_rows(store: Target, alerts: AlertConfig | None) -> list[AlertRow]:
    """Every rule with its state: rules of the alert file, then states of rules it lacks."""
    blobs = reads.alert_states(store)
    rules: dict[str, Rule] = {r.name: r for r in (alerts.rules if alerts is not None else ())}
    rows = []
    for name in list(rules) + sorted(set(blobs) - set(rules)):
        rule = rules.get(name)
        state = AlertState()
        if name in blobs:
            try:
                state = msgspec.json.decode(blobs[name], type=AlertState)
            except msgspec.DecodeError:
                state = AlertState(summary="(unreadable state)")
        rows.append(
            AlertRow(
                name=name,
                kind=rule.kind if rule else "?",
                severity=rule.severity if rule else "?",
                state=state.state,
                since=state.since,
                value=state.value,
                summary=state.summary,
                threshold=rule.threshold if rule else None,
            )
        )
    order = {"firing": 0, "pending": 1, "resolved": 2, "ok": 3}
    rows.sort(key=lambda r: (order.get(r.state, 4), r.name))
    return rows


def health_figures(store: Target) -> list[Figure]:
    latest = reads.health_latest(store)
    return [
        Figure(DESCRIPTIONS.get(metric, metric), f"{value:,}", f"measured {iso(at)}", value > 0)
        for metric, (at, value) in sorted(latest.items())
    ]


# -- quarantine ------------------------------------------------------------------------------


def quarantine_filter(params: Mapping[str, str], now: float) -> q.QuarantineFilter:
    """A filter from query parameters; blank fields select everything, and so does a time
    that cannot be read. ``since`` and ``until`` take what ``quarantine list --since`` takes
    (``7d`` ago from ``now``, ``2026-12-01``, ``2026-12-01T10:00``, UTC unless an offset is
    given) or Unix seconds (the replay form's own bound)."""

    def text(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    def when(name: str) -> float | None:
        value = text(name)
        if value is None:
            return None
        return parse_time(value, now)

    kind = text("kind")
    state = text("state")
    return q.QuarantineFilter(
        event=text("event"),
        code=text("code"),
        source=text("source"),
        route=text("route"),
        plan_version=text("plan_version"),
        kind=kind if kind in ("contract", "plan", "upstream") else None,  # type: ignore[arg-type]
        state=state if state in ("quarantined", "replayed", "still_invalid") else None,  # type: ignore[arg-type]
        since=when("since"),
        until=when("until"),
    )


def parse_time(value: str, now: float) -> float | None:
    """Unix seconds from a number, else :func:`~trackguard.durations.parse_instant`'s
    reading of ``value``; None when neither reads it."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_instant(value, now)
    except DurationError:
        return None


#: Record ids one list page may scan through: a filter that matches few records stops after
#: this many and offers to go on, so every page costs about the same however sparse it is.
SCAN_IDS: Final = 100_000


def quarantine_page(
    store: Target, flt: q.QuarantineFilter, before: int | None
) -> tuple[list[QuarantineRecord], int | None, bool]:
    """One page of records, the keyset cursor of the next page (None on the last), and whether
    the page stopped at its scan budget before filling (the cursor then goes on scanning)."""
    top = reads.quarantine_max_id(store) + 1 if before is None else before
    records: list[QuarantineRecord] = []
    cursor = top
    while len(records) <= PAGE_SIZE and cursor > 1 and top - cursor < SCAN_IDS:
        low = max(0, cursor - SCAN_IDS // 4)
        records += q.page(store, flt, before=cursor, after=low, limit=PAGE_SIZE + 1 - len(records))
        cursor = low + 1
    if len(records) > PAGE_SIZE:
        return records[:PAGE_SIZE], records[PAGE_SIZE - 1].id, False
    if cursor > 1:
        return records, cursor, True
    return records, None, False


def body_view(body: bytes) -> tuple[str, bool]:
    """The body as text to show, and whether it was valid UTF-8 (else shown as hex bytes)."""
    try:
        return body.decode("utf-8"), True
    except UnicodeDecodeError:
        return body.hex(" ", 1), False


def findings(record: QuarantineRecord) -> list[dict[str, Any]]:
    """The record's findings, each with its explanation from the violation codes' docs."""
    try:
        items = msgspec.json.decode(record.findings)
    except msgspec.DecodeError:
        items = []
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        code = str(item.get("code", ""))
        explained = explanations().get(code)
        out.append({**item, "explanation": explained})
    if not out:
        out = [{"code": c, "explanation": explanations().get(c)} for c in record.codes]
    return out


def recheck(record: QuarantineRecord, checker: Checker, now: float) -> dict[str, Any]:
    """What the current plan would do with the record if it arrived now."""
    request = Request(
        method=record.method, path=record.path, body=record.body, source=record.source
    )
    verdict = checker.check(request, now=now)
    return {
        "outcome": verdict.outcome,
        "status": verdict.status,
        "codes": list(verdict.codes),
        "changes": [
            {"path": c.path, "before": c.before, "after": c.after, "rule": c.rule}
            for c in verdict.changes
        ],
        "operations": len(verdict.operations),
    }


_ROW: Final = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \|")


@lru_cache(maxsize=1)
def explanations() -> dict[str, Explanation]:
    """Each violation code's kind, when it fires and an example, from ``violations.md``."""
    text = _violations_doc()
    out: dict[str, Explanation] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            code, kind, when, example = (g.strip() for g in m.groups())
            out[code] = Explanation(code, kind, when.replace("`", ""), example.strip("`"))
    return out


def _violations_doc() -> str:
    """``docs/violations.md``: shipped in the wheel beside this module, or read from a checkout."""
    shipped = resources.files("trackguard.console").joinpath("violations.md")
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[3] / "docs" / "violations.md"
    return checkout.read_text(encoding="utf-8") if checkout.is_file() else ""


# -- plan ------------------------------------------------------------------------------------

_RENAMES: Final = ("event_name_drift", "event_name_convention")


def plan_rows(store: Target, plan: Plan | None, now: float) -> list[PlanEventRow]:
    """Planned events with what traffic did against them, then unplanned events seen."""
    usage = reads.event_usage(store, now - 7 * 86_400)
    codes = reads.code_counts(store, now - 7 * 86_400)
    failing: dict[str, list[tuple[str, int]]] = {}
    for event, code, n in codes:
        failing.setdefault(event, []).append((code, n))
    rows: list[PlanEventRow] = []
    planned_keys: dict[str, str] = {}
    if plan is not None:
        for name, spec in plan.events.items():
            planned_keys[name_key(name)] = name
            for alias in spec.aliases:
                planned_keys[name_key(alias)] = name
    variants: dict[str, list[tuple[str, int]]] = {}
    unplanned = []
    for event, (n, _, _) in usage.items():
        target = plan.events.get(event) if plan is not None else None
        if target is not None:
            continue
        owner = planned_keys.get(name_key(event))
        if owner is not None:
            variants.setdefault(owner, []).append((event, n))
        elif not event.startswith("@") and not event.startswith("("):
            unplanned.append(event)
    if plan is not None:
        for name, spec in plan.events.items():
            seen, last, bad = usage.get(name, (0, None, 0))
            rows.append(
                PlanEventRow(
                    name=name,
                    planned=True,
                    description=spec.description,
                    aliases=spec.aliases,
                    versions=tuple(v.version for v in spec.versions),
                    properties=tuple(p.name for p in spec.properties),
                    seen=seen,
                    last_seen=last,
                    bad=bad,
                    renamed=sum(n for c, n in failing.get(name, []) if c in _RENAMES),
                    variants=sorted(variants.get(name, []), key=lambda v: -v[1]),
                    failing=failing.get(name, [])[:5],
                )
            )
    for event in sorted(unplanned, key=lambda e: (-usage[e][0], e)):
        seen, last, bad = usage[event]
        rows.append(
            PlanEventRow(
                name=event,
                planned=False,
                seen=seen,
                last_seen=last,
                bad=bad,
                failing=failing.get(event, [])[:5],
            )
        )
    return rows


# -- formatting ------------------------------------------------------------------------------


def iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172_800:
        return f"{s // 3600} h"
    return f"{s // 86_400} d"


def store_label(store: str) -> str:
    """The store in the page header: a file's name, or a URL without its password."""
    return display_url(store) if is_postgres_url(store) else os.path.basename(store)
