"""The audit over a log whose defects are known exactly (see audit_known_log.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_known_log import KNOWN_PLAN, T0, write_known_log

from trackguard.audit import AuditReport, AuditRun, audit, run_audit
from trackguard.audit.report_html import render_html
from trackguard.check.inputs import Located, iter_requests
from trackguard.core.pipeline import Checker
from trackguard.plan.loader import lint_plan, parse_plan


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_known_log(tmp_path_factory.mktemp("known") / "requests.jsonl")


@pytest.fixture(scope="module")
def report(log: Path) -> AuditReport:
    return audit([log], now=T0)


@pytest.fixture(scope="module")
def planned(log: Path) -> AuditRun:
    return run_audit([log], parse_plan(KNOWN_PLAN), now=T0)


def _counts(report: AuditReport) -> dict[str, tuple[str, int]]:
    return {f.id: (f.severity, f.count) for f in report.findings}


def test_totals_add_up(report: AuditReport) -> None:
    t = report.totals
    assert (t.records, t.readable, t.unreadable, t.skipped, t.blank) == (112, 112, 0, 0, 0)
    assert (t.requests, t.events) == (112, 102)
    assert report.outcomes == {
        "accepted": 102,
        "fixed": 0,
        "warned": 3,
        "rejected": 0,
        "invalid": 7,
    }
    assert report.statuses == {"200": 108, "400": 2, "401": 1, "500": 1}


def test_every_finding_and_its_count(report: AuditReport) -> None:
    assert _counts(report) == {
        "log.401.no_message": ("critical", 1),
        "contract.invalid_json": ("error", 3),
        "timestamp.milliseconds": ("error", 3),
        "contract.event_data_not_hash": ("error", 2),
        "contract.event_name_blank": ("error", 2),
        "log.400.event_data_must_be_a_hash": ("error", 2),
        "identity.email_in_id": ("error", 1),
        "naming_drift.order_completed": ("warning", 10),
        "type_drift.order_completed.total": ("warning", 5),
        "duplicates.requests": ("warning", 3),
        "identity.mixed_keys": ("warning", 3),
        "anonymous.orphaned": ("warning", 2),
        "identity.numeric_and_text_ids": ("warning", 2),
        "identity.people_under_both": ("warning", 2),
        "timestamp.iso8601": ("warning", 2),
        "log.500.no_message": ("warning", 1),
        "timestamp.future": ("warning", 1),
        "timestamp.invalid": ("warning", 1),
        "disagreement.log_accepted_contract_rejects": ("info", 5),
        "naming_drift_possible.order_completed.order_complete": ("info", 3),
        "type_drift.*.total": ("info", 5),
        "timestamp.older_than_72h": ("info", 2),
        "type_drift.*.price": ("info", 2),
        "duplicates.event_ids": ("info", 1),
    }
    assert [f.severity for f in report.findings][:2] == ["critical", "error"]


def test_shares_and_examples_point_at_lines(report: AuditReport, log: Path) -> None:
    by_id = {f.id: f for f in report.findings}
    invalid = by_id["contract.invalid_json"]
    assert (invalid.share, invalid.of) == (round(3 / 112, 6), "requests")
    assert [x.where for x in invalid.examples] == [f"{log}:{n}" for n in (82, 83, 84)]
    assert by_id["log.400.event_data_must_be_a_hash"].examples[0].detail == (
        "event data must be a hash"
    )
    drift = by_id["naming_drift.order_completed"]
    assert [x.where for x in drift.examples] == [f"{log}:{n}" for n in (41, 47)]
    possible = by_id["naming_drift_possible.order_completed.order_complete"]
    assert possible.title == (
        "possible naming drift: 'order_complete' may be 'order_completed' "
        "(1 edit (complete / completed), 3 events vs 54 (5.6%), same keys, same source)"
    )
    assert [x.where for x in possible.examples] == [f"{log}:51"]
    assert by_id["duplicates.requests"].title.startswith(
        "identical event requests sent again (3 within 60 s"
    )
    assert by_id["timestamp.milliseconds"].examples[0] == type(
        by_id["timestamp.milliseconds"].examples[0]
    )(f"{log}:54", f"timestamp {(T0 + 53) * 1000}")


def test_identity_examples(report: AuditReport, log: Path) -> None:
    by_id = {f.id: f for f in report.findings}
    assert [x.where for x in by_id["identity.mixed_keys"].examples] == [
        f"{log}:{n}" for n in (96, 97, 98)
    ]
    assert [x.detail for x in by_id["identity.numeric_and_text_ids"].examples] == [
        "numeric id '1001'",
        "numeric id '1002'",
    ]
    assert by_id["identity.email_in_id"].examples[0].where == f"{log}:99"
    assert by_id["anonymous.orphaned"].examples[0].where == f"{log}:109"


def test_drift_clusters_exactly(report: AuditReport) -> None:
    clusters = {c.canonical: [v.name for v in c.variants] for c in report.drift}
    assert clusters == {
        "order_completed": [
            "Order Completed",
            "orderCompleted",
            "order_complete",
            "order_completed",
        ],
    }
    (cluster,) = report.drift
    assert [v.count for v in cluster.variants] == [6, 4, 3, 44]
    assert (cluster.total, cluster.from_plan) == (57, False)


def test_type_census(report: AuditReport) -> None:
    rows = {(r.event, r.key): r.types for r in report.type_drift}
    # order_complete (3 events) is only a possible match: its statistics stay its own
    assert rows == {
        ("order_completed", "total"): {"number": 49, "string": 5},
        ("*", "price"): {"number": 20, "string": 2},
        ("*", "total"): {"number": 52, "string": 5},
    }


def test_timestamp_and_identity_census(report: AuditReport) -> None:
    assert report.timestamps == {
        "seconds": 94,
        "milliseconds": 3,
        "absent": 2,
        "iso8601": 2,
        "invalid": 1,
    }
    assert report.recency == {
        "recent": 96,
        "absent": 2,
        "older_than_72h": 2,
        "future": 1,
        "unparseable": 1,
    }
    assert report.identifiers == {"id": 98, "anonymous_id": 4, "email": 3}
    assert report.caps == ()


def test_timeline_counts_every_event(report: AuditReport) -> None:
    timeline = report.timeline
    assert timeline is not None
    assert (timeline.bucket_seconds, timeline.start, timeline.gaps) == (60, T0, ())
    series = {s.name: (s.total, s.invalid) for s in timeline.series}
    assert series["(all events)"] == ((60, 42), (0, 4))
    assert series["order_completed"] == ((50, 4), (0, 0))
    assert series["order_complete"] == ((3, 0), (0, 0))  # a possible match keeps its own series
    assert series["cart_updated"] == ((0, 2), (0, 2))
    assert sum(sum(s[0]) for name, s in series.items() if name != "(all events)") == 102


def test_with_a_plan_names_come_from_the_plan_and_raw_values_are_counted(
    planned: AuditRun,
) -> None:
    report = planned.report
    assert report.plan == "known"
    (cluster,) = report.drift
    assert (cluster.canonical, cluster.from_plan) == ("order_completed", True)
    # the plan renamed and coerced these, but the audit counts what was sent
    assert [v.name for v in cluster.variants] == [
        "Order Completed",
        "orderCompleted",
        "order_complete",
        "order_completed",
    ]
    assert {(r.event, r.key): r.types for r in report.type_drift}[("order_completed", "total")] == {
        "number": 52,
        "string": 5,
    }
    counts = _counts(report)
    assert counts["plan.property_missing.events.product_viewed.properties.currency.reject"] == (
        "critical",
        20,
    )
    assert counts["plan.event_alias.events.order_completed.aliases.fix"] == ("info", 3)
    assert counts["plan.event_name_drift.naming.fix"] == ("info", 10)
    assert counts["plan.property_type.events.order_completed.properties.total.fix"] == ("info", 5)
    assert counts["duplicates.dedupe_keys"] == ("warning", 3)
    assert report.outcomes == {
        "accepted": 45,
        "fixed": 18,
        "warned": 21,
        "rejected": 21,
        "invalid": 7,
    }


def test_a_possible_match_is_a_comment_in_the_draft_never_an_alias(
    log: Path, tmp_path: Path
) -> None:
    text = run_audit([log], now=T0).infer_plan()
    lines = text.splitlines()
    at = lines.index("  order_completed:  # 54 events")
    assert lines[at + 1 : at + 3] == [
        '    # possibly the same as "order_complete": 1 edit (complete / completed), 3 events vs '
        "54 (5.6%), same keys, same source; review before adding an alias",
        "    properties:",  # same words: no alias needed
    ]
    plan = parse_plan(text)
    assert "order_complete" not in plan.events
    path = tmp_path / "draft.yaml"
    path.write_text(text)
    assert [str(i) for i in lint_plan(path)] == []


def test_the_html_report_marks_each_variant(report: AuditReport) -> None:
    page = render_html(report)
    assert page.count('<span class="possible">') == 1
    assert (
        '<span class="variant">order_complete</span> (3) <span class="possible">possible: 1 edit '
        "(complete / completed), 3 events vs 54 (5.6%), same keys, same source</span>"
    ) in page
    assert '<span class="strong">' not in page


def test_inferred_plan_lints_clean_and_checks_the_same_log(
    planned: AuditRun, log: Path, tmp_path: Path
) -> None:
    text = planned.infer_plan()
    path = tmp_path / "draft.yaml"
    path.write_text(text)
    assert [str(i) for i in lint_plan(path)] == []
    plan = parse_plan(text)
    order = plan.events["order_completed"]
    assert order.aliases == ("order_complete",)
    props = {p.name: (p.type, p.required, p.values) for p in order.properties}
    assert props == {
        "currency": ("enum", True, ("USD",)),
        "order_id": ("string", True, None),
        "total": ("number", True, None),
    }
    assert sorted(plan.events) == [
        "cart_updated",
        "cart_viewed",
        "order_completed",
        "product_viewed",
        "sign_in",
        "sign_up",
        "step_1_done",
        "step_2_done",
    ]
    assert {p.name: p.type for p in plan.attributes.values()} == {
        "email": "email",
        "first_name": "string",
    }
    checker = Checker(plan)
    outcomes: dict[str, int] = {}
    for item in iter_requests([log]):
        assert isinstance(item, Located)
        verdict = checker.check(item.request)
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
    assert sum(outcomes.values()) == 112
    assert outcomes["invalid"] == 7
