"""Every hand-inlined common case in the audit's hot loops does what its original does.

For speed, :meth:`Auditor.add` carries copies of the common cases of ``LogClock.parse``,
``Auditor._event``, ``TimelineCensus.add`` and ``DuplicateCensus.request_hash``;
``EventCensus.event`` those of ``key_for``, ``add`` and ``timestamp``; ``IdentityCensus.person`` and
``_Merger._replay`` that of ``keyed_by_id``; ``_Merger._replay`` that of ``request_hash``;
``Auditor.add`` also counts a clean v1 track call from ``FastContract.clean_event``'s parts, as
it counts the operation of that call's verdict.
(The block reader's copy of ``_log_record`` is compared with the line reader in
``test_audit_blocks.py``; the monitor's ``Tally.add`` with ``_bounded`` in
``tests/monitor/test_monitor_tally_bounds.py``.)
A copy that drifts from its original would make the report wrong only where the copy runs,
so each test here runs the copy and the original over the same inputs (generated, where they
are parsed) and asserts the same results and the same state, past the caps too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from trackguard.audit.assemble import build_report
from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import _FULL, EventCensus
from trackguard.audit.clock import LogClock
from trackguard.audit.duplicates import DuplicateCensus
from trackguard.audit.engine import Auditor
from trackguard.audit.identity import IdentityCensus
from trackguard.audit.parallel import OpLog, _At, _Merger
from trackguard.audit.readers import Record
from trackguard.audit.report_json import render_json
from trackguard.audit.timeline import TimelineCensus
from trackguard.contract.operations import Request
from trackguard.plan.loader import parse_plan
from trackguard.plan.model import Plan

T0 = 1_764_000_000
#: Caps small enough for a few dozen inputs to pass them.
SMALL = Limits(
    event_names=4,
    event_keys=3,
    properties_per_event=3,
    enum_values=2,
    identifiers=3,
    duplicate_window=4,
    series=2,
    buckets=3,
)
LIMITS = st.sampled_from([Limits(), SMALL])
FAST = settings(max_examples=150)


def snapshot(value: Any) -> Any:
    """Everything a census holds, as plain values (dict order kept: reports follow it)."""
    if value is _FULL:
        return "<FULL>"
    if isinstance(value, dict):
        return [(snapshot(k), snapshot(v)) for k, v in value.items()]
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    if isinstance(value, list | tuple):
        return [snapshot(v) for v in value]
    if isinstance(value, CapLog):
        return snapshot(value.notes)
    slots = getattr(type(value), "__slots__", None)
    if slots and not isinstance(value, type):
        names = [n for cls in type(value).__mro__ for n in getattr(cls, "__slots__", ())]
        return {n: snapshot(getattr(value, n)) for n in names if n not in ("limits", "caps")}
    return value


# --- inputs -------------------------------------------------------------------------------------

#: Log times: plain UTC seconds (the copies' case, often in a minute seen before) among their
#: neighbours and non-times.
stamps = st.one_of(
    st.builds(
        lambda day, hh, mm, ss, tail: f"2025-11-{day}T{hh}:{mm}:{ss}{tail}",
        st.sampled_from(["24", "3x"]),
        st.sampled_from(["16", "23", "24"]),
        st.sampled_from(["00", "59", "60", "7"]),
        st.sampled_from(["00", "07", "59", "60", "61", "99", "", "6", "x1", "١٢"]),
        st.sampled_from(["Z", "Z", "Z", "z", "+00:00", ".5Z", "+01:00", "", "ZZ"]),
    ),
    st.text(max_size=24),
    st.none(),
)
#: Log times a few seconds to a few weeks apart: the timeline's span grows and widens.
log_times = st.one_of(
    st.integers(0, 40 * 86400).map(
        lambda s: datetime.fromtimestamp(T0 + s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.integers(0, 200).map(lambda s: f"2025-11-24T16:{s // 60:02d}:{s % 60:02d}Z"),
    stamps,
)
names = st.one_of(
    st.sampled_from(["Viewed", "viewed", " Viewed ", "order_completed", "Order Completed", ""]),
    st.text(max_size=8),
    st.integers(-2, 2),
    st.sampled_from([None, True, 1.5, ["x"]]),
)
scalars = st.one_of(
    st.sampled_from(["x", "y", "z", "a@b.io", ""]),
    st.integers(-5, 200_000_000_000),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
datas = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), scalars, max_size=5),
    st.sampled_from([None, [1], "text", {}]),
)
event_stamps = st.one_of(
    st.integers(T0 - 400_000, T0 + 400_000),
    st.integers(-5, 10**13),
    st.sampled_from([None, "2025-11-24T16:00:00Z", "x", 1.5, True, 1_764_000_000_000]),
)
sources = st.sampled_from([None, "ios", "web"])
event_ids = st.sampled_from([None, "", "01HZY5ZV7Q9K3M2N4P6R8S0T1V", "x", 5, 0, True, 1.5])


def _record(
    n: int, stamp: str | None, body: dict[str, Any], person: str = "c1", source: Any = None
) -> Record:
    request = Request(
        method="POST",
        path=f"/api/v1/customers/{person}/events",
        body=json.dumps(body).encode(),
        source=source,
    )
    return Record("f", n, False, request, stamp, 200, "{}\n")


# --- Auditor.add ----------------------------------------------------------------------------


@FAST
@given(st.lists(log_times, max_size=30))
@example(["2025-11-24T16:00:00Z", "2025-11-24T16:00:60Z", "2025-11-24T16:00:61Z"])
def test_add_reads_log_times_as_log_clock_parse_does(times: list[str | None]) -> None:
    """The inlined minute-cache read: each request's time (kept by the duplicate window)."""
    auditor = Auditor(now=T0)
    clock = LogClock()
    expected: list[int] = []
    bad = 0
    for n, stamp in enumerate(times):
        auditor.add(_record(n, stamp, {"name": "Viewed", "data": {"n": n}}))
        when = clock.parse(stamp) if stamp is not None else None
        bad += stamp is not None and when is None
        expected.append(-1 if when is None else when)
    assert list(auditor.duplicates.seen_requests.map.values()) == expected
    assert auditor.bad_times == bad
    assert auditor.clock.minutes == clock.minutes


#: A plan that rejects events (unplanned names, a property of the wrong type) and fixes none:
#: add() then counts rejected operations through the copy too.
REJECTING = parse_plan(
    """
version: 1
name: rejecting
unplanned: {events: reject, properties: allow}
events:
  viewed:
    properties:
      a: {type: string, action: reject}
      b: {type: integer, action: reject}
"""
)


@FAST
@given(
    st.lists(st.tuples(names, datas, event_stamps, log_times, sources, event_ids), max_size=25),
    LIMITS,
    st.sampled_from([None, REJECTING]),
)
def test_add_counts_an_event_as_auditor_event_does(
    events: list[tuple[Any, Any, Any, str | None, str | None, Any]],
    limits: Limits,
    plan: Plan | None,
) -> None:
    """The inlined ``_event`` (and in it ``TimelineCensus.add``) beside ``_event`` itself."""
    inline = Auditor(plan, now=T0, limits=limits)
    called = Auditor(plan, now=T0, limits=limits)
    clock = LogClock()
    for n, (name, data, ts, stamp, source, event_id) in enumerate(events):
        body: dict[str, Any] = {"name": name, "data": data, "timestamp": ts}
        if event_id is not None:
            body["id"] = event_id
        rec = _record(n, stamp, body, source=source)
        verdict = called.checker.check(rec.request)
        if verdict.changes:
            continue  # values a plan fixed go through _event() in add() too: not the copy
        inline.add(rec)
        when = clock.parse(stamp) if stamp is not None else None
        ref = T0 if when is None else when
        ops = [(op, False) for op in verdict.operations]  # the copy's case
        ops += [(op, True) for op in verdict.rejected]  # ... and the plan's rejections
        for op, rejected in ops:
            called._event(op.body, op.data_key, op.batch_index, rec, when, ref, rejected, None)
        if verdict.outcome == "invalid":  # no copy of this in add(): the same call in both
            called._invalid_items(rec, verdict, when, ref)
    for census in ("events", "timeline"):
        assert snapshot(getattr(inline, census)) == snapshot(getattr(called, census))
    ids = [
        (d.ids, snapshot(d.seen_ids), d.examples["ids"])
        for d in (inline.duplicates, called.duplicates)
    ]
    assert ids[0] == ids[1]
    mine = ("event_names", "event_keys", "properties", "series", "buckets")  # these censuses'
    assert [inline.caps.notes.get(k) for k in mine] == [called.caps.notes.get(k) for k in mine]


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 200) | st.none()), max_size=40),
    LIMITS,
)
def test_add_counts_repeats_as_request_hash_does(
    sends: list[tuple[int, int | None]], limits: Limits
) -> None:
    """Identical requests, through ``Auditor.add``, beside ``request_hash`` called for every
    one."""
    inline = Auditor(now=T0, limits=limits)
    caps = CapLog()
    called = DuplicateCensus(limits, caps)
    for n, (body, offset) in enumerate(sends):
        stamp = None if offset is None else f"2025-11-24T16:{offset // 60:02d}:{offset % 60:02d}Z"
        rec = _record(n, stamp, {"name": "Viewed", "data": {"v": body}})
        inline.add(rec)
        req = rec.request
        when = None if offset is None else T0 + offset
        called.request_hash(hash((req.method, req.path, req.body)), when, rec)
    assert snapshot(inline.duplicates) == snapshot(called)
    assert inline.caps == caps


# --- Auditor.add: a clean v1 track call without its verdict ------------------------------------

people = st.sampled_from(["c1", "c2", "42", "a@b.io", "%ff", "%20x", "", "x" * 200])
statuses = st.sampled_from([200, 201, 299, None, 400, 500, 207, 199])
kinds = st.sampled_from([None, None, "event", "page", "screen", "other", 3])


@FAST
@given(
    st.lists(
        st.tuples(
            names, datas, event_stamps, log_times, sources, event_ids, people, statuses, kinds
        ),
        max_size=25,
    ),
    LIMITS,
    st.sampled_from([None, REJECTING]),
)
def test_add_counts_a_clean_track_call_as_its_verdict_would(
    lines: list[tuple[Any, ...]], limits: Limits, plan: Plan | None
) -> None:
    """Without a plan, ``Auditor.add`` counts a v1 track call the log shows accepted from
    ``FastContract.clean_event``'s parts; without that (``clean_event`` None) it counts the
    same call from its verdict, and with no fast path either (``fast`` None) from the full
    walk's verdict for every call, as for the calls the log shows refused. Every census and
    the report are the same all three ways."""
    lane, verdicts, walked = (Auditor(plan, now=T0, limits=limits) for _ in range(3))
    assert (lane.clean_event is None) == (plan is not None)
    verdicts.clean_event = walked.clean_event = walked.fast = None
    for n, (name, data, ts, stamp, source, event_id, person, status, kind) in enumerate(lines):
        body: dict[str, Any] = {"name": name, "data": data, "timestamp": ts}
        if event_id is not None:
            body["id"] = event_id
        if kind is not None:
            body["type"] = kind
        request = Request(
            method="POST",
            path=f"/api/v1/customers/{person}/events",
            body=json.dumps(body).encode(),
            source=source,
        )
        for auditor in (lane, verdicts, walked):
            auditor.add(Record("f", n, False, request, stamp, status, "{}\n"))
    for name in ("events", "identity", "anonymous", "duplicates", "timeline", "verdicts"):
        assert snapshot(getattr(lane, name)) == snapshot(getattr(verdicts, name))
        assert snapshot(getattr(lane, name)) == snapshot(getattr(walked, name))
    reports = [render_json(build_report(a, [], 0.0)) for a in (lane, verdicts, walked)]
    assert reports[0] == reports[1] == reports[2]


# --- EventCensus.event ----------------------------------------------------------------------


@FAST
@given(st.lists(st.tuples(names, datas, event_stamps, sources), max_size=30), LIMITS)
def test_event_counts_as_key_for_add_and_timestamp_do(
    events: list[tuple[Any, Any, Any, str | None]], limits: Limits
) -> None:
    caps = [CapLog(), CapLog()]
    inline, called = EventCensus(limits, caps[0]), EventCensus(limits, caps[1])
    keys = ([], [])
    for n, (name, data, stamp, source) in enumerate(events):
        at = _At("f", n, False)
        ref = T0 + n
        keys[0].append(inline.event(name, data, stamp, ref, at, source))
        key = called.key_for(name, at)
        called.add(key, data, at, None, source)
        called.timestamp(stamp, ref, at)
        keys[1].append(key)
    assert keys[0] == keys[1]
    # The copy counts recent unix seconds apart (``recent_seconds``), added when read.
    assert inline.timestamps == called.timestamps and inline.recency == called.recency
    for census in (inline, called):
        formats, ages = sorted(census.timestamps.items()), sorted(census.recency.items())
        census.formats, census.ages, census.recent_seconds = dict(formats), dict(ages), 0
    assert snapshot(inline) == snapshot(called)
    mine = ("event_names", "event_keys", "properties")
    assert [caps[0].notes.get(k) for k in mine] == [caps[1].notes.get(k) for k in mine]


# --- keyed_by_id ------------------------------------------------------------------------------

ids = st.lists(st.sampled_from(["1", "2", "3", "4", "5", "a@b.io", "x", "٣"]), max_size=20)


@FAST
@given(ids, LIMITS)
def test_person_keys_ids_as_keyed_by_id_does(values: list[str], limits: Limits) -> None:
    caps = [CapLog(), CapLog()]
    inline, called = IdentityCensus(limits, caps[0]), IdentityCensus(limits, caps[1])
    called.id_room = 0  # every id through keyed_by_id, as in an ``audit --jobs`` worker
    for n, value in enumerate(values):
        inline.person("id", value, _At("f", n, False))
        called.person("id", value, _At("f", n, False))
    assert inline.by_id == called.by_id
    assert snapshot(caps[0]) == snapshot(caps[1])


# --- _Merger._replay ------------------------------------------------------------------------


@FAST
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("p"), st.integers(0, 6)),
            st.tuples(st.just("q"), st.integers(0, 6), st.integers(0, 200) | st.none()),
        ),
        max_size=40,
    ),
    LIMITS,
)
def test_replay_applies_ids_and_requests_as_the_census_calls_do(
    ops: list[tuple[Any, ...]], limits: Limits
) -> None:
    merged = Auditor(now=T0, limits=limits)
    log = OpLog("")
    for n, op in enumerate(ops, 1):
        log.ops.append(op if op[0] == "p" else (*op, n))
    _Merger(merged, 1)._replay("f", SimpleNamespace(ops=log, har=False))  # type: ignore[arg-type]
    called = Auditor(now=T0, limits=limits)
    for n, op in enumerate(ops, 1):
        if op[0] == "p":
            called.identity.keyed_by_id(op[1])
        else:
            called.duplicates.request_hash(op[1], op[2], _At("f", n, False))
    assert merged.identity.by_id == called.identity.by_id
    assert snapshot(merged.duplicates) == snapshot(called.duplicates)
    assert merged.caps == called.caps


def test_the_small_caps_are_reached() -> None:
    """The generated inputs above do pass the caps: each one's note is written."""
    auditor = Auditor(now=T0, limits=SMALL)
    for n in range(8):
        auditor.add(_record(n, f"2025-11-2{n % 2 + 4}T16:00:0{n}Z", {"name": f"e{n}"}, f"u{n}"))
    assert {"event_names", "event_keys", "identifiers", "duplicate requests"} <= set(
        auditor.caps.notes
    )
    timeline = TimelineCensus(SMALL, CapLog())
    for n in range(4):
        timeline.add(f"e{n}", T0 + 3600 * n, False)
    assert timeline.width_index > 0 and "series" in timeline.caps.notes
