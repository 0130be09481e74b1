"""``trackguard.store.quarantine`` over a real store built through Checker → to_write → commit.

Most tests run once on SQLite and once on PostgreSQL (``built_target``, ``target``,
``any_store``, ``empty_target``) with the same expected results, to the byte.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quarantine_env import DAY, NOW, T0

import trackguard.store.quarantine as q
import trackguard.store.sql as sql
from trackguard.check.inputs import Located, iter_requests
from trackguard.store.base import QuarantineRecord, StoreError, Write
from trackguard.store.quarantine import (
    CSV_COLUMNS,
    QuarantineFilter,
    QuarantineStats,
    count_quarantine,
    export,
    get,
    list_quarantine,
    purge,
    record_to_dict,
    stats,
)
from trackguard.store.sqlite import open_store

ALL = [8, 7, 6, 5, 4, 3, 2, 1]


def ids(records: list[QuarantineRecord]) -> list[int]:
    return [r.id for r in records]


# --- list, count, get ---------------------------------------------------------------------------


def test_list_is_newest_first_and_whole(any_store: Any) -> None:
    store = any_store
    records = list_quarantine(store)
    assert ids(records) == ALL
    assert records == store.quarantine_list()  # the same records the store itself returns
    assert count_quarantine(store) == store.quarantine_count() == 8


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (QuarantineFilter(), ALL),
        (QuarantineFilter(event="order_completed"), [8, 6, 5, 1]),
        (QuarantineFilter(code="property_type"), [6, 1]),
        (QuarantineFilter(code="property_missing"), [6]),
        (QuarantineFilter(code="nope"), []),
        (QuarantineFilter(source="backend"), [8, 3, 2]),
        (QuarantineFilter(kind="contract"), [4, 3, 2]),
        (QuarantineFilter(kind="upstream"), [8]),
        (QuarantineFilter(state="quarantined"), ALL),
        (QuarantineFilter(state="replayed"), []),
        (QuarantineFilter(since=T0 + DAY), [7, 6, 5, 4, 3]),  # inclusive
        (QuarantineFilter(until=T0 + DAY), [8, 2, 1]),  # exclusive
        (QuarantineFilter(since=T0 + 60, until=T0 + DAY + 3600), [8, 3, 2]),
        (QuarantineFilter(event="order_completed", source="storefront", kind="plan"), [5, 1]),
        (QuarantineFilter(code="property_constraint", since=T0 + 2 * DAY), [7]),
        (QuarantineFilter(event=""), []),
        (QuarantineFilter(event="\ud800"), []),  # not Unicode: matches nothing, no error
    ],
)
def test_filters(built_target: str, flt: QuarantineFilter, expected: list[int]) -> None:
    assert ids(list_quarantine(built_target, flt)) == expected
    assert count_quarantine(built_target, flt) == len(expected)


def test_limit_and_offset(built_target: str) -> None:
    store_path = built_target
    assert ids(list_quarantine(store_path, limit=3)) == [8, 7, 6]
    assert ids(list_quarantine(store_path, limit=3, offset=3)) == [5, 4, 3]
    assert ids(list_quarantine(store_path, limit=3, offset=6)) == [2, 1]
    assert ids(list_quarantine(store_path, limit=0)) == []
    assert ids(list_quarantine(store_path, limit=-5, offset=-5)) == []
    assert ids(list_quarantine(store_path, limit=2**80, offset=2**80)) == []
    assert ids(list_quarantine(store_path, limit=2**80)) == ALL


def test_get_returns_the_record_whole(built_target: str) -> None:
    store_path = built_target
    record = get(store_path, 1)
    assert record == QuarantineRecord(
        id=1,
        received_at=T0,
        kind="plan",
        method="POST",
        path="/api/v1/customers/cus_1/events",
        headers=(("authorization", "[redacted]"), ("content-type", "application/json")),
        body=b'{"name": "order_completed", "data": {"order_id": "O-1", "currency": "USD",'
        b' "total": "abc"}}',
        source="storefront",
        plan_version="2026-11-01",
        route="POST /api/v1/customers/{identifier}/events",
        status=200,
        findings=b'[{"kind":"plan","code":"property_type","rule":"events.order_completed.'
        b'properties.total","path":"data.total","message":"\'total\' should be number, got'
        b' string \'abc\'","action":"reject","batch_index":null}]',
        event_name="order_completed",
        codes=("property_type",),
    )
    assert get(store_path, 3).body == b"\xff\xfe{"  # type: ignore[union-attr]
    upstream = get(store_path, 8)
    assert upstream is not None
    assert (upstream.kind, upstream.upstream_error, upstream.status) == (
        "upstream",
        "event name is reserved",
        207,
    )


@pytest.mark.parametrize("record_id", [0, -1, 9, 2**63, 2**200])
def test_get_unknown_ids(built_target: str, record_id: int) -> None:
    assert get(built_target, record_id) is None


def test_store_url_and_pathlike(store_path: Path) -> None:
    assert count_quarantine(f"sqlite:///{store_path}") == 8  # sqlite:////abs/path
    assert count_quarantine(str(store_path)) == 8


# --- bad stores ---------------------------------------------------------------------------------


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(
        StoreError, match=r"no store at .*typo\.db \(trackguard serve creates one\)"
    ):
        list_quarantine(path)
    assert not path.exists()


def test_not_a_store(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not SQLite at all " * 100)
    with pytest.raises(
        StoreError, match=r"notes\.txt: cannot open the store: file is not a database$"
    ):
        count_quarantine(text)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match=r"empty.db: not a trackguard store \(no schema\)"):
        stats(empty)


def test_a_newer_schema_is_refused(store_path: Path) -> None:
    with sqlite3.connect(store_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer than this trackguard"):
        get(store_path, 1)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mysql://db/tg", "unsupported store URL"),
        ("sqlite://tg.db", "write sqlite:///relative/path or sqlite:////abs/path"),
        (":memory:", "a store file path is needed, not ':memory:'"),
    ],
)
def test_bad_targets(target: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        count_quarantine(target)


# --- stats --------------------------------------------------------------------------------------


def test_stats_exact(any_store: Any) -> None:
    assert stats(any_store) == QuarantineStats(
        total=8,
        by_kind=(("plan", 4), ("contract", 3), ("upstream", 1)),
        by_state=(("quarantined", 8),),
        by_code=(
            ("property_constraint", 2),
            ("property_type", 2),
            ("event_name_blank", 1),
            ("invalid_json", 1),
            ("property_missing", 1),
            ("upstream_rejected", 1),
            ("v2_action_invalid", 1),
        ),
        by_event=(("order_completed", 4), (None, 4)),
        by_source=(("backend", 3), ("storefront", 3), ("mobile", 2)),
        by_day=(("2026-11-01", 3), ("2026-11-02", 3), ("2026-11-03", 2)),
    )


def test_stats_filtered_and_empty(built_target: str) -> None:
    store_path = built_target
    assert stats(store_path, QuarantineFilter(code="property_type")) == QuarantineStats(
        total=2,
        by_kind=(("plan", 2),),
        by_state=(("quarantined", 2),),
        by_code=(("property_type", 2), ("property_missing", 1)),
        by_event=(("order_completed", 2),),
        by_source=(("mobile", 1), ("storefront", 1)),
        by_day=(("2026-11-01", 1), ("2026-11-03", 1)),
    )
    assert stats(store_path, QuarantineFilter(source="nobody")) == QuarantineStats(
        total=0, by_kind=(), by_state=(), by_code=(), by_event=(), by_source=(), by_day=()
    )


# --- export -------------------------------------------------------------------------------------

RECORD_1 = {
    "id": 1,
    "time": "2026-11-01T10:00:00.000Z",
    "received_at": T0,
    "kind": "plan",
    "state": "quarantined",
    "method": "POST",
    "path": "/api/v1/customers/cus_1/events",
    "headers": {"authorization": "[redacted]", "content-type": "application/json"},
    "body": '{"name": "order_completed", "data": {"order_id": "O-1", "currency": "USD",'
    ' "total": "abc"}}',
    "source": "storefront",
    "plan_version": "2026-11-01",
    "route": "POST /api/v1/customers/{identifier}/events",
    "status": 200,
    "event_name": "order_completed",
    "codes": ["property_type"],
    "batch_index": None,
    "upstream_error": None,
    "findings": [
        {
            "kind": "plan",
            "code": "property_type",
            "rule": "events.order_completed.properties.total",
            "path": "data.total",
            "message": "'total' should be number, got string 'abc'",
            "action": "reject",
            "batch_index": None,
        }
    ],
}
RECORD_3 = {
    "id": 3,
    "time": "2026-11-02T10:00:00.000Z",
    "received_at": T0 + DAY,
    "kind": "contract",
    "state": "quarantined",
    "method": "POST",
    "path": "/api/v1/customers/cus_1/events",
    "headers": {},
    "body": "\ufffd\ufffd{",
    "body_base64": "//57",
    "source": "backend",
    "plan_version": "2026-11-01",
    "route": "POST /api/v1/customers/{identifier}/events",
    "status": 400,
    "event_name": None,
    "codes": ["invalid_json"],
    "batch_index": None,
    "upstream_error": None,
    "findings": [
        {
            "kind": "contract",
            "code": "invalid_json",
            "message": "request body must be valid JSON",
            "field": "",
            "reason": "invalid",
            "batch_index": None,
            "verified": False,
        }
    ],
}


def test_export_jsonl_exact(built_target: str) -> None:
    store_path = built_target
    out = io.StringIO()
    assert (
        export(store_path, out, "jsonl", QuarantineFilter(source="backend", kind="contract")) == 2
    )
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    assert [json.loads(line)["id"] for line in lines[:-1]] == [2, 3]
    assert json.loads(lines[1]) == RECORD_3
    out = io.StringIO()
    export(store_path, out, "jsonl", QuarantineFilter(code="property_type"))
    first = out.getvalue().splitlines()[0]
    assert json.loads(first) == RECORD_1
    assert list(json.loads(first)) == list(RECORD_1)  # key order is part of the format


def test_export_jsonl_is_oldest_first_and_every_record(built_target: str) -> None:
    store_path = built_target
    out = io.StringIO()
    assert export(store_path, out) == 8
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    for line, record in zip(lines, reversed(list_quarantine(store_path)), strict=True):
        assert line == json.loads(msgspec.json.encode(record_to_dict(record)))
        raw = base64.b64decode(line["body_base64"]) if "body_base64" in line else None
        assert (raw or line["body"].encode()) == record.body


def test_export_jsonl_is_input_for_check(built_target: str, tmp_path: Path) -> None:
    """An export is a request file: check reads back every record's exact request."""
    store_path = built_target
    path = tmp_path / "export.jsonl"
    with path.open("w", encoding="utf-8", newline="") as fh:
        export(store_path, fh)
    read = list(iter_requests([path]))
    assert all(isinstance(item, Located) for item in read)
    records = list(reversed(list_quarantine(store_path)))
    assert [(i.request.method, i.request.path, i.request.body) for i in read] == [  # type: ignore[union-attr]
        (r.method, r.path, r.body) for r in records
    ]
    assert read[0].request.headers == records[0].headers  # type: ignore[union-attr]


def test_export_csv_exact(built_target: str) -> None:
    store_path = built_target
    out = io.StringIO(newline="")
    assert export(store_path, out, "csv", QuarantineFilter(until=T0 + DAY + 1)) == 4
    text = out.getvalue()
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert text.count("\r\n") == 5  # header and four records; CRLF ends (RFC 4180)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [row["id"] for row in rows] == ["1", "2", "3", "8"]
    assert rows[0] == {
        "id": "1",
        "time": "2026-11-01T10:00:00.000Z",
        "received_at": repr(T0),
        "kind": "plan",
        "state": "quarantined",
        "method": "POST",
        "path": "/api/v1/customers/cus_1/events",
        "source": "storefront",
        "plan_version": "2026-11-01",
        "route": "POST /api/v1/customers/{identifier}/events",
        "status": "200",
        "event_name": "order_completed",
        "codes": "property_type",
        "batch_index": "",
        "upstream_error": "",
        "headers": '{"authorization":"[redacted]","content-type":"application/json"}',
        "findings": json.dumps(RECORD_1["findings"], separators=(",", ":")),
        "body": RECORD_1["body"],
        "body_base64": "",
    }
    assert (rows[2]["body"], rows[2]["body_base64"]) == ("\ufffd\ufffd{", "//57")
    assert (rows[3]["kind"], rows[3]["upstream_error"]) == ("upstream", "event name is reserved")


def test_export_csv_keeps_awkward_bodies_whole(empty_target: str) -> None:
    store = open_store(empty_target)
    body = b'line 1\r\nline 2, "quoted"\x00\ttab' + b"x" * 100_000
    store.commit([Write(quarantine=(_record(T0, body=body),))])
    store.close()
    out = io.StringIO(newline="")
    export(empty_target, out, "csv")
    (row,) = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert row["body"].encode() == body


def test_export_rejects_unknown_formats(built_target: str) -> None:
    store_path = built_target
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(store_path, io.StringIO(), "xml")  # type: ignore[arg-type]


def test_export_pages_through_ids(built_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "_PAGE", 3)
    out = io.StringIO()
    assert export(built_target, out, "jsonl", QuarantineFilter(kind="plan")) == 4
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [1, 5, 6, 7]


def _record(received_at: float, body: bytes = b"{}", **kw: Any) -> QuarantineRecord:
    return QuarantineRecord(
        received_at=received_at, kind="plan", method="POST", path="/api/v1/events", body=body, **kw
    )


class _Sink(io.StringIO):
    """A text stream that runs ``hook`` on its first write (a writer acting mid-export)."""

    def __init__(self, hook: Any) -> None:
        super().__init__()
        self.hook = hook

    def write(self, s: str) -> int:
        if self.hook is not None:
            self.hook, hook = None, self.hook
            hook()
        return super().write(s)


def test_export_ignores_records_added_and_skips_records_purged_meanwhile(
    any_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = any_store
    sink = _Sink(lambda: store.commit([Write(quarantine=(_record(NOW),))]))
    assert export(store, sink) == 8
    assert store.quarantine_count() == 9
    monkeypatch.setattr(q, "_GROUP_ROWS", 2)  # records 1 and 2 are read before the first write
    sink = _Sink(lambda: purge(store, 0, now=T0 + DAY + 1))  # ids 2, 3 and 8 go
    assert export(store, sink) == 7  # 1 and 2 were read before the purge; 3 and 8 are skipped
    assert [json.loads(line)["id"] for line in sink.getvalue().splitlines()] == [
        1,
        2,
        4,
        5,
        6,
        7,
        9,
    ]


@pytest.mark.parametrize(
    ("rows", "size", "groups"),
    [
        # body lengths of records 1-8: 91, 11, 3, 63, 148, 51, 20, 204 bytes
        (100, 256 * 1024, [[1, 2, 3, 4, 5, 6, 7, 8]]),
        (3, 256 * 1024, [[1, 2, 3], [4, 5, 6], [7, 8]]),
        (100, 200, [[1, 2, 3, 4], [5, 6], [7], [8]]),
        (100, 100, [[1], [2, 3, 4], [5], [6, 7], [8]]),  # a larger body goes alone
    ],
)
def test_export_reads_records_in_bounded_groups(
    built_target: str, monkeypatch: pytest.MonkeyPatch, rows: int, size: int, groups: list[Any]
) -> None:
    monkeypatch.setattr(q, "_GROUP_ROWS", rows)
    monkeypatch.setattr(q, "_GROUP_BYTES", size)
    with q._session(built_target) as s:
        page = s.rows("SELECT id, length(body) FROM quarantine ORDER BY id")
    assert list(q._groups(page)) == groups


def test_export_memory_does_not_grow_with_the_quarantine(empty_target: str) -> None:
    store = open_store(empty_target, synchronous="NORMAL")
    body = b'{"blob":"' + b"x" * 250_000 + b'"}'
    store.commit([Write(quarantine=tuple(_record(T0 + i, body=body) for i in range(120)))])
    sizes: list[int] = []

    class Counter(io.TextIOBase):
        def write(self, s: str) -> int:
            sizes.append(len(s))
            return len(s)

    tracemalloc.start()
    try:
        assert export(store, Counter()) == 120  # 30 MB of bodies
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert sum(sizes) > 30_000_000
    assert peak < 4_000_000  # a few bodies' worth, not the quarantine's


# --- purge --------------------------------------------------------------------------------------


def test_purge_keeps_counts_in_step(any_store: Any) -> None:
    store = any_store
    assert purge(store, 2 * DAY, now=NOW) == 3  # received before T0 + DAY: ids 1, 2, 8
    assert store.quarantine_count() == 5
    assert ids(list_quarantine(store)) == [7, 6, 5, 4, 3]
    assert purge(store, 2 * DAY, now=NOW) == 0  # idempotent
    assert purge(store, 0, now=T0 + 2 * DAY + 1) == 4  # strictly older: id 7 stays
    assert store.quarantine_count() == count_quarantine(store) == 1
    assert purge(store, 0, now=NOW) == 1
    assert store.quarantine_count() == 0
    assert stats(store).total == 0
    # the store still counts new records from where purge left the count
    store.commit([Write(quarantine=(_record(NOW),))])
    assert store.quarantine_count() == count_quarantine(store) == 1
    assert store.outbox_stats().failed == 1  # purge leaves the outbox alone


def test_purge_in_small_batches(any_store: Any) -> None:
    store = any_store
    assert purge(store, 0, now=NOW, batch_size=3) == 8
    assert store.quarantine_count() == 0


def test_purge_defaults_to_the_current_time(empty_target: str) -> None:
    store = open_store(empty_target)
    now = time.time()
    store.commit([Write(quarantine=(_record(now - 40 * DAY), _record(now - 20 * DAY)))])
    assert purge(store, 30 * DAY) == 1
    assert store.quarantine_count() == 1
    store.close()


@pytest.mark.parametrize("age", [-1.0, float("nan"), float("inf")])
def test_purge_refuses_bad_ages(store_path: Path, age: float) -> None:
    with pytest.raises(ValueError, match="older_than_seconds must be a finite number >= 0"):
        purge(store_path, age)


def test_purge_refuses_bad_batches(store_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1, not 0"):
        purge(store_path, 0, batch_size=0)


def test_purge_waits_for_the_write_lock_then_fails_cleanly(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "_BUSY_TIMEOUT_MS", 50)
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="database is locked"):
            purge(store_path, 0, now=NOW)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count_quarantine(store_path) == 8
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("SELECT n FROM counts WHERE name = 'quarantine'").fetchone() == (8,)


# --- every filter, against a reference --------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters() | st.sampled_from(["\ud800", "\udcff", "\x00", "\x1b"]), max_size=8
)
_TIMES = st.floats(allow_nan=True) | st.sampled_from([T0, T0 + 60, T0 + DAY, T0 + 2 * DAY + 1])


@st.composite
def filters(draw: st.DrawFn) -> QuarantineFilter:
    def maybe(values: st.SearchStrategy[Any]) -> Any:
        return draw(st.none() | values)

    return QuarantineFilter(
        event=maybe(st.sampled_from(["order_completed", "product_viewed"]) | _TEXT),
        code=maybe(st.sampled_from(["property_type", "invalid_json", "upstream_rejected"]) | _TEXT),
        source=maybe(st.sampled_from(["backend", "storefront", "mobile"]) | _TEXT),
        kind=maybe(st.sampled_from(["contract", "plan", "upstream"])),
        state=maybe(st.sampled_from(["quarantined", "replayed", "still_invalid"])),
        since=maybe(_TIMES),
        until=maybe(_TIMES),
    )


def _matches(r: QuarantineRecord, f: QuarantineFilter) -> bool:
    return (
        (f.event is None or r.event_name == f.event)
        and (f.code is None or f.code in r.codes)
        and (f.source is None or r.source == f.source)
        and (f.kind is None or r.kind == f.kind)
        and (f.state is None or r.state == f.state)
        and (f.since is None or r.received_at >= f.since)
        and (f.until is None or r.received_at < f.until)
    )


@pytest.fixture
def built_open(built_target: str) -> Iterator[Any]:
    """The built store open (each query borrows a connection instead of connecting)."""
    store = open_store(built_target, readonly=True)
    yield store
    store.close()


# The store is built once per session and only read: every example sees the same records.
@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flt=filters())
def test_every_filter_selects_what_the_reference_selects(
    built_open: Any, flt: QuarantineFilter
) -> None:
    built = built_open
    everything = list_quarantine(built)
    expected = [r.id for r in everything if _matches(r, flt)]
    assert ids(list_quarantine(built, flt)) == expected
    assert count_quarantine(built, flt) == len(expected)
    assert stats(built, flt).total == len(expected)
    out = io.StringIO()
    assert export(built, out, "jsonl", flt) == len(expected)
