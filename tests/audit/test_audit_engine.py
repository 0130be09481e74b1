"""The audit loop on small, targeted inputs: v2 batches, caps, progress, the public API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

import trackguard.audit as audit_api
from trackguard.audit import Limits, audit, run_audit
from trackguard.audit.engine import response_messages

T0 = 1_764_000_000


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    out = []
    for line in lines:
        body = line.get("body")
        if body is not None and not isinstance(body, str):
            line = {**line, "body": msgspec.json.encode(body).decode()}
        out.append(json.dumps({"time": "2025-11-24T16:00:00Z", "status": 200, **line}))
    path.write_text("\n".join(out) + "\n")
    return path


def _event(name: str, **data: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/api/v1/customers/c1/events",
        "body": {"name": name, "data": data, "timestamp": T0},
    }


def test_public_api_is_pinned() -> None:
    assert audit_api.__all__ == [
        "SEVERITIES",
        "AuditReport",
        "AuditRun",
        "Confidence",
        "DriftCluster",
        "DriftMatch",
        "Example",
        "FileTotals",
        "Finding",
        "InputError",
        "Limits",
        "MapError",
        "NameCount",
        "Severity",
        "Timeline",
        "Totals",
        "TypeDrift",
        "audit",
        "parse_map",
        "run_audit",
    ]


def test_v2_batch_counts_good_and_rejected_items(tmp_path: Path) -> None:
    batch = {
        "batch": [
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": "c1"},
                "name": "Signed Up",
                "attributes": {"plan": "pro"},
                "timestamp": T0,
            },
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": "c1"},
                "name": "",
                "attributes": {"plan": 3},
                "timestamp": T0,
            },
            {
                "type": "person",
                "action": "event",
                "identifiers": {"anonymous_id": "anon-9"},
                "name": "signed_up",
                "attributes": {"plan": "free"},
                "timestamp": T0 * 1000,
            },
        ]
    }
    log = _write(
        tmp_path / "v2.jsonl",
        [{"method": "POST", "path": "/api/v2/batch", "body": batch, "status": 207}],
    )
    report = audit([log], now=T0)
    assert report.outcomes["invalid"] == 1
    assert {n.name: n.count for n in report.event_names} == {
        "Signed Up": 1,
        "(no name)": 1,
        "signed_up": 1,
    }
    assert [(c.canonical, [v.name for v in c.variants]) for c in report.drift] == [
        ("signed_up", ["Signed Up", "signed_up"])
    ]
    assert report.timestamps == {"seconds": 2, "milliseconds": 1}
    assert report.identifiers == {"id": 1, "anonymous_id": 1}
    ids = {f.id: f.count for f in report.findings}
    assert ids["contract.event_name_blank"] == 1
    assert ids["anonymous.orphaned"] == 1
    assert ids["log.207.no_message"] == 1
    assert report.timeline is not None
    every = report.timeline.series[0]
    assert (every.total, every.invalid) == ((3,), (1,))


def test_caps_are_reported_and_totals_kept(tmp_path: Path) -> None:
    lines = [_event(f"event_{chr(97 + i)}{chr(97 + j)}", n=i) for i in range(4) for j in range(3)]
    log = _write(tmp_path / "many.jsonl", lines)
    report = audit([log], now=T0, limits=Limits(event_names=5, event_keys=3))
    assert report.totals.events == 12
    assert sum(n.count for n in report.event_names) == 5
    assert [c.split(":")[0] for c in report.caps] == [
        "more than 3 distinct events",
        "more than 5 distinct event names",
    ]


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    log = _write(tmp_path / "p.jsonl", [_event("a", n=i) for i in range(20_000)])
    seen: list[int] = []
    run_audit([log], now=T0, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == log.stat().st_size
    assert len(seen) >= 2


def test_response_messages() -> None:
    assert response_messages('{"meta":{"errors":["a","b"]}}') == ["a", "b"]
    assert response_messages('{"meta":{"error":"merge"}}') == ["merge"]
    assert response_messages('{"errors":[{"batch_index":1,"message":"m"}]}') == ["m"]
    assert response_messages('{"message":"Unauthorized"}') == ["Unauthorized"]
    assert response_messages("upstream error") == []
    assert response_messages(None) == []


@given(
    st.one_of(
        st.none(),
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v)),
    )
)
def test_response_messages_never_raise(text: str | None) -> None:
    assert all(isinstance(m, str) for m in response_messages(text))


@given(st.text(max_size=80))
def test_parse_map_accepts_or_explains(spec: str) -> None:
    try:
        mapping = audit_api.parse_map(spec)
    except audit_api.MapError as exc:
        assert str(exc).startswith("--map")
    else:
        assert {"method", "path"} <= set(mapping)
        assert all(all(mapping[k]) for k in mapping)


def test_an_event_named_like_the_overflow_bucket_is_counted_there(tmp_path: Path) -> None:
    """A client may send any name, even the one the audit gives names past its cap: sent
    three times, it is counted three times under that name and never crashes the audit."""
    lines = [_event("(other events)", n=1) for _ in range(3)] + [_event("order_completed")]
    log = _write(tmp_path / "other.jsonl", lines)
    report = audit([log], now=T0)
    assert report.totals.events == 4
    assert sorted((n.name, n.count) for n in report.event_names) == [
        ("(other events)", 3),
        ("order_completed", 1),
    ]
