"""Timeline buckets and gaps, duplicate windows, anonymous linking, log clock."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.clock import LogClock
from trackguard.audit.duplicates import DuplicateCensus
from trackguard.audit.identity import AnonymousCensus
from trackguard.audit.timeline import TimelineCensus

T0 = 1_764_000_000


class _At:
    def __init__(self, where: str) -> None:
        self.where = where


def test_gap_is_found_where_silence_is_unlikely() -> None:
    tl = TimelineCensus(Limits(), CapLog())
    for minute in range(30):
        if 10 <= minute < 14:
            continue  # 4 silent minutes; 130 events over 30 minutes: 17.3 expected
        for _ in range(5):
            tl.add("order_completed", T0 + 60 * minute, invalid=False)
        tl.add("rare", T0 + 60 * minute, invalid=minute % 2 == 0)  # 1/min: 4 expected, no gap
    timeline = tl.build({})
    assert timeline is not None
    assert [(g.name, g.start - T0, g.end - T0, g.expected) for g in timeline.gaps] == [
        ("(all events)", 600, 840, 20.8),
        ("order_completed", 600, 840, 17.3),
    ]
    rare = next(s for s in timeline.series if s.name == "rare")
    assert sum(rare.total) == 26 and sum(rare.invalid) == 13


def test_buckets_widen_and_keep_every_count() -> None:
    tl = TimelineCensus(Limits(buckets=10), CapLog())
    for hour in range(48):
        tl.add("e", T0 + 3600 * hour, invalid=hour < 3)
    timeline = tl.build({"e": "shown"})
    assert timeline is not None
    assert timeline.bucket_seconds == 6 * 3600
    shown = next(s for s in timeline.series if s.name == "shown")
    assert sum(shown.total) == 48 and sum(shown.invalid) == 3
    assert len(shown.total) <= 10


@given(st.lists(st.integers(0, 10**7), min_size=1, max_size=200))
def test_timeline_never_loses_events(offsets: list[int]) -> None:
    tl = TimelineCensus(Limits(buckets=20), CapLog())
    for off in offsets:
        tl.add("e", T0 + off, invalid=False)
    timeline = tl.build({})
    assert timeline is not None
    every = timeline.series[0]
    assert every.name == "(all events)" and sum(every.total) == len(offsets)
    assert len(every.total) <= 20


def test_duplicates_bursts_window_and_eviction() -> None:
    caps = CapLog()
    d = DuplicateCensus(Limits(duplicate_window=4), caps)
    d.request_hash(hash(("POST", "/e", b"a")), T0, _At("f:1"))
    d.request_hash(hash(("POST", "/e", b"a")), T0 + 30, _At("f:2"))  # retry burst
    d.request_hash(hash(("POST", "/e", b"a")), T0 + 200, _At("f:3"))  # repeat, not a burst
    assert (d.requests, d.bursts) == (2, 1)
    for n in range(6):  # fills the window: the oldest half is dropped
        d.request_hash(hash(("POST", "/e", str(n).encode())), T0, _At("f"))
    d.request_hash(hash(("POST", "/e", b"0")), T0, _At("f"))  # evicted: not counted
    assert d.requests == 2
    assert list(caps.notes) == ["duplicate requests"]


def test_anonymous_linking() -> None:
    a = AnonymousCensus(Limits(), CapLog())
    a.identify("early", T0)
    a.event("early", T0 + 100, _At("f:1"))  # within five minutes after identify: linked
    a.event("late", T0, _At("f:2"))
    a.event("late", T0 + 1, _At("f:3"))
    a.event("never", T0, _At("f:4"))
    a.identify("late", T0 + 5000)  # later identify links earlier events
    a.event("early", T0 + 1000, _At("f:5"))  # more than five minutes after: orphan
    events, ids, examples = a.orphans()
    assert (a.events, a.linked, events, ids) == (5, 3, 2, 2)
    assert [x.where for x in examples] == ["f:4", "f:5"]


def test_clock() -> None:
    clock = LogClock()
    assert clock.parse("2025-11-24T16:00:00Z") == T0
    assert clock.parse("2025-11-24T16:00:00Z") == T0
    assert clock.parse("2025-11-24T16:05:07.123Z") == T0 + 307
    assert clock.parse("2025-11-24T17:05:07+01:00") == T0 + 307
    assert clock.parse("2025-11-24T16:61:00Z") is None
    assert clock.parse("yesterday") is None
    # str.isdigit() accepts "²", which int() refuses: not a time, and no exception
    assert clock.parse("2025-11-24T16:00:00Z") == T0
    assert clock.parse("2025-11-24T16:00:0²Z") is None
    assert clock.parse("2025-11-24T16:0²:00Z") is None
    assert clock.parse("2025-11-24T16:00:60Z") == T0 + 60  # a leap second, as before


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
    )
)
def test_clock_agrees_with_datetime(dt: datetime) -> None:
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    expected = int(dt.replace(microsecond=0).timestamp())
    assert LogClock().parse(text) == expected
