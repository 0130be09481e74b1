"""The audit over Pipelines API requests, beside Track API ones: every path form, gzip, HAR
captures from the browser SDK, messageId repeats, ISO-8601 timestamps and anonymous ids."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trackguard.shares as shares
from pipelines_corpus import HAR, MIXED, T, mixed_traffic, write_jsonl
from trackguard.audit import AuditReport, audit, run_audit
from trackguard.audit.readers import FileCounter, Record, Skipped, Unreadable, read
from trackguard.audit.report_json import render_json
from trackguard.contract.pipelines.routes import ROUTES
from trackguard.plan.loader import load_plan

NOW = T + 86_400
PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
_SECONDS = re.compile(rb'"seconds": [0-9.e+-]+')


def rows(report: AuditReport) -> list[tuple[str, str, int, str]]:
    return [(f.id, f.severity, f.count, f.of) for f in report.findings]


def examples(report: AuditReport, finding: str) -> list[tuple[str, str]]:
    (found,) = [f for f in report.findings if f.id == finding]
    return [(e.where, e.detail) for e in found.examples]


def test_mixed_jsonl_findings_span_both_apis(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", MIXED)
    report = audit([path], now=NOW)
    t = report.totals
    assert (t.records, t.requests, t.pipelines, t.events) == (8, 8, 6, 8)
    assert report.outcomes == {
        "accepted": 7, "fixed": 0, "warned": 0, "rejected": 0, "invalid": 1
    }  # fmt: skip
    assert rows(report) == [
        ("contract.timestamp_invalid", "critical", 1, "requests"),
        ("timestamp.pipelines_milliseconds", "critical", 1, "events"),
        ("naming_drift.order_completed", "warning", 2, "events"),
        ("type_drift.order_completed.total", "warning", 2, "events"),
        ("anonymous.orphaned", "warning", 1, "anonymous events"),
        ("contract_warning.user_id_email", "warning", 1, "requests"),
        ("duplicates.message_ids", "warning", 1, "Pipelines calls with a messageId"),
        ("duplicates.requests", "warning", 1, "events"),
        ("identity.mixed_keys", "warning", 1, "person calls"),
        ("type_drift.added_to_cart.price", "warning", 1, "events"),
        ("type_drift.*.total", "info", 2, "events"),
        ("type_drift.*.price", "info", 1, "events"),
    ]
    # 'Order Completed' (Pipelines track, twice) and 'order_completed' (the Track API, and a
    # Pipelines call dropped for its millisecond timestamp) are one event.
    (cluster,) = report.drift
    assert [(v.name, v.count) for v in cluster.variants] == [
        ("Order Completed", 2), ("order_completed", 2)
    ]  # fmt: skip
    assert report.timestamps == {"pipelines_iso8601": 5, "seconds": 2, "pipelines_milliseconds": 1}
    assert report.identifiers == {"id": 5, "anonymous_id": 3, "email": 1}
    where = f"{path}:"
    assert examples(report, "duplicates.message_ids") == [
        (where + "5", "messageId 'm-1' sent again (copy 2)")
    ]
    # anon-1 (the gzip body) is linked by the batch's identify; anon-2 (the browser's) is not,
    # and its page view is not an event.
    assert examples(report, "anonymous.orphaned") == [
        (where + "6", "anonymous event; no identify carried its anonymous_id")
    ]
    assert examples(report, "timestamp.pipelines_milliseconds") == [
        (where + "4", "timestamp 1764000000000")
    ]
    (found,) = [f for f in report.findings if f.id == "duplicates.message_ids"]
    assert found.title == (
        "Pipelines calls sent again with the same messageId (1 messageIds repeated: SDK retries)"
    )


def test_mixed_jsonl_with_the_plan(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", MIXED)
    report = audit([path], load_plan(PLAN), now=NOW)
    assert report.outcomes == {
        "accepted": 2, "fixed": 2, "warned": 1, "rejected": 2, "invalid": 1
    }  # fmt: skip
    plan_rows = [r for r in rows(report) if r[0].startswith("plan.")]
    assert plan_rows == [
        ("plan.property_missing.events.added_to_cart.properties.product_id.reject", "critical", 2,
         "requests"),
        ("plan.property_missing.events.added_to_cart.properties.quantity.reject", "critical", 2,
         "requests"),
        ("plan.property_missing.events.product_viewed.properties.product_id.reject", "critical", 1,
         "requests"),
        ("plan.event_unplanned.unplanned.events.warn", "warning", 1, "requests"),
        ("plan.identity_not_canonical.identity.email_keyed.warn", "warning", 1, "requests"),
        ("plan.event_name_drift.naming.fix", "info", 2, "requests"),
        ("plan.property_type.events.order_completed.properties.total.fix", "info", 2, "requests"),
        ("plan.property_type.events.added_to_cart.properties.price.fix", "info", 1, "requests"),
    ]  # fmt: skip
    # the plan's rejections come from both APIs: the batch's track (4) and the Track API (8)
    assert [e[0] for e in examples(report, plan_rows[0][0])] == [f"{path}:4", f"{path}:8"]
    # names and types are counted as sent, before the plan's fixes
    assert [(n.name, n.count) for n in report.event_names][:3] == [
        ("Order Completed", 2), ("added_to_cart", 2), ("order_completed", 2)
    ]  # fmt: skip
    assert [(d.event, d.key, d.types) for d in report.type_drift][:2] == [
        ("added_to_cart", "price", {"number": 1, "string": 1}),
        ("order_completed", "total", {"number": 2, "string": 2}),
    ]


def test_har_from_the_browser_sdk() -> None:
    report = audit([HAR], now=NOW)
    (totals,) = report.inputs
    assert (totals.format, totals.records, totals.readable, totals.unreadable, totals.skipped) == (
        "har", 11, 8, 1, 2
    )  # fmt: skip  # the page GET and the SDK's /v1/m telemetry are skipped
    assert (report.totals.pipelines, report.totals.events) == (8, 7)
    assert report.statuses == {"200": 8}
    assert rows(report) == [
        ("contract.timestamp_invalid", "critical", 1, "requests"),
        ("timestamp.pipelines_invalid", "critical", 1, "events"),
        ("naming_drift.product_viewed", "warning", 2, "events"),
        ("anonymous.orphaned", "warning", 1, "anonymous events"),
        ("contract_warning.user_id_email", "warning", 1, "requests"),
        ("duplicates.message_ids", "warning", 1, "Pipelines calls with a messageId"),
        ("duplicates.requests", "warning", 1, "events"),
        ("identity.mixed_keys", "warning", 1, "person calls"),
        ("naming_drift.added_to_cart", "warning", 1, "events"),
        ("type_drift.product_viewed.price", "warning", 1, "events"),
        ("unreadable.har_entry_is_not_a_request", "warning", 1, "lines"),
        ("type_drift.*.price", "info", 1, "events"),
    ]
    where = f"{HAR}:entry"
    assert examples(report, "duplicates.requests") == [
        (where + "[4]", "identical to an earlier request 1 s before")
    ]
    assert examples(report, "anonymous.orphaned") == [
        (where + "[7]", "anonymous event; no identify carried its anonymous_id")
    ]
    assert examples(report, "timestamp.pipelines_invalid") == [
        (where + "[8]", "timestamp 'yesterday'")
    ]
    # The Python SDK's gzip batch (base64 in the HAR) is read: its event is counted.
    assert {n.name: n.count for n in report.event_names} == {
        "Product Viewed": 2, "Added To Cart": 1, "Order Completed": 1, "added_to_cart": 1,
        "checkout_started": 1, "product_viewed": 1,
    }  # fmt: skip
    assert report.timestamps == {"pipelines_iso8601": 6, "pipelines_invalid": 1}
    # no disagreement: the Pipelines API answers 200 to what it drops unless asked for strict
    assert not [f for f in report.findings if f.kind == "disagreement"]


def test_har_keeps_pipelines_calls_on_any_host_and_skips_telemetry(tmp_path: Path) -> None:
    def entry(url: str) -> dict[str, Any]:
        return {"request": {"method": "POST", "url": url, "postData": {"text": "{}"}}}

    urls = ["http://localhost:8080/v1/t", "https://app.example/v1/users",
            "https://cdp.customer.io/v1/m", "https://gw.example/v1/batch?x=1"]  # fmt: skip
    path = tmp_path / "a.har"
    path.write_text(json.dumps({"log": {"entries": [entry(u) for u in urls]}}))
    items = list(read(path, FileCounter(str(path), "")))
    assert [type(i).__name__ for i in items] == ["Record", "Skipped", "Skipped", "Record"]
    assert [i.request.path for i in items if isinstance(i, Record)] == ["/v1/t", "/v1/batch?x=1"]


def test_request_log_body_base64_is_read_exactly(tmp_path: Path) -> None:
    raw = gzip.compress(b'{"userId":"u","event":"e","messageId":"m"}', mtime=0)
    path = tmp_path / "log.jsonl"
    lines = [
        {"method": "POST", "path": "/v1/track", "body": raw.decode("utf-8", "replace"),
         "body_base64": base64.b64encode(raw).decode(), "headers": {"content-encoding": "gzip"}},
        {"method": "POST", "path": "/v1/track", "body": "", "body_base64": "not base64!"},
    ]  # fmt: skip
    write_jsonl(path, lines)
    items = list(read(path, FileCounter(str(path), "")))
    assert isinstance(items[0], Record) and items[0].request.body == raw
    assert isinstance(items[1], Unreadable)
    assert (items[1].position, items[1].reason) == ("2", '"body_base64" is not valid base64')
    report = audit([path], now=NOW)
    assert (report.outcomes["accepted"], report.totals.events) == (1, 1)


def _report(paths: list[Path], jobs: int, **kw: Any) -> bytes:
    run = run_audit(paths, now=NOW, jobs=jobs, **kw)
    return _SECONDS.sub(b'"seconds": 0', render_json(run.report)) + run.infer_plan().encode()


@pytest.mark.parametrize("plan", [None, PLAN])
def test_jobs_2_equals_jobs_1_on_mixed_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: Path | None
) -> None:
    monkeypatch.setattr(shares, "MIN_SHARE_BYTES", 1)  # forked workers inherit it
    traffic = mixed_traffic(3000)
    path = write_jsonl(tmp_path / "mixed.jsonl", traffic + MIXED)
    loaded = None if plan is None else load_plan(plan)
    one = _report([path, HAR], 1, plan=loaded)
    assert _report([path, HAR], 2, plan=loaded) == one
    assert _report([path, HAR], 3, plan=loaded) == one
    run = run_audit([path, HAR], loaded, now=NOW)
    retried = sum(1 for a, b in itertools.pairwise(traffic) if a is b)
    counts = {f.id: f.count for f in run.report.findings}
    assert (retried, counts["duplicates.message_ids"]) == (58, 58 + 1 + 1)  # MIXED, the HAR
    pipelines = sum(1 for r in traffic if r["path"].startswith("/v1/"))
    assert run.report.totals.pipelines == pipelines + 6 + 8


_PATHS = st.sampled_from([*ROUTES, "/v1/", "/v1/track/", "/v1/identify?x=1", "/api/v1/events"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_CALL = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "group", "alias", "x"]) | _JSON,
        "userId": st.text(max_size=12) | _JSON,
        "anonymousId": st.text(max_size=6) | _JSON,
        "event": st.text(max_size=12) | _JSON,
        "messageId": st.text(max_size=4) | _JSON,
        "timestamp": st.sampled_from(["2025-11-24T16:00:00Z", "2025-13-01", ""]) | _JSON,
        "properties": _JSON,
        "traits": _JSON,
    },
)
_BODY = _CALL | st.fixed_dictionaries({"batch": st.lists(_CALL | _JSON, max_size=4)}) | _JSON


@st.composite
def _lines(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(_BODY)
    line: dict[str, Any] = {"method": draw(st.sampled_from(["POST", "GET", "post"])),
                            "path": draw(_PATHS)}  # fmt: skip
    form = draw(st.sampled_from(["json", "text", "gzip", "bad-gzip"]))
    raw = json.dumps(body).encode()
    if form == "json":
        line["body"] = body
    elif form == "text":
        line["body"] = raw.decode()[: draw(st.integers(0, len(raw)))]
    else:
        data = gzip.compress(raw) if form == "gzip" else raw[:3] + b"\x1f\x8b"
        line["body_base64"] = base64.b64encode(data[: draw(st.integers(0, len(data)))]).decode()
    if draw(st.booleans()):
        line["headers"] = {"content-encoding": draw(st.sampled_from(["gzip", "br", ""])),
                           "x-strict-mode": "1"}  # fmt: skip
    if draw(st.booleans()):
        line["status"] = draw(st.sampled_from([200, 400, 401, "x"]))
    return line


@settings(max_examples=150)
@given(st.lists(_lines(), min_size=1, max_size=6))
def test_no_pipelines_line_crashes_the_readers_or_the_audit(lines: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "fuzz.jsonl", lines)
        items = list(read(path, FileCounter(str(path), "")))
        assert len(items) == len(lines)
        assert all(isinstance(i, Record | Unreadable | Skipped) for i in items)
        report = audit([path], load_plan(PLAN), now=NOW)
        assert report.totals.records == len(lines)
        assert sum(report.outcomes.values()) == report.totals.requests
