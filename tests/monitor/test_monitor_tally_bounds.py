"""The monitor's counters keep a bounded number of event names: a flood of distinct names (ids
or emails in the name slot) is counted under ``(other)``, with nothing lost."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

import trackguard.monitor.tally as tally_module
from trackguard.monitor.tally import (
    MAX_EVENTS_PER_MINUTE,
    MAX_TOTAL_EVENTS,
    OTHER,
    Key,
    Tally,
)


def _key(minute: int, event: str, outcome: str = "accepted") -> Key:
    return (minute, event, "POST /api/v2/batch", "-", "outcome", outcome)


def test_names_beyond_the_minute_bound_are_counted_as_other() -> None:
    tally = Tally()
    names = [f"user-{i}@example.com" for i in range(MAX_EVENTS_PER_MINUTE + 250)]
    tally.add([_key(100, n) for n in names])
    tally.add([_key(100, names[0]), _key(100, names[-1])])  # a known one, a folded one
    taken = tally.take()
    assert sum(taken.values()) == len(names) + 2
    assert len({k[1] for k in taken}) == MAX_EVENTS_PER_MINUTE + 1
    assert taken[_key(100, OTHER)] == 251
    assert taken[_key(100, names[0])] == 2
    assert tally.folded == 251


def test_a_new_minute_starts_with_room_and_the_minute_before_stays_counted() -> None:
    tally = Tally()
    tally.add([_key(7, f"e{i}") for i in range(MAX_EVENTS_PER_MINUTE)])
    tally.add([_key(8, "late_name"), _key(7, "one_too_many")])
    taken = tally.take()
    assert taken[_key(8, "late_name")] == 1
    assert taken[_key(7, OTHER)] == 1
    assert tally.folded == 1


def test_running_totals_keep_at_most_the_total_bound_of_names() -> None:
    tally = Tally()
    per_minute = MAX_EVENTS_PER_MINUTE
    minutes = MAX_TOTAL_EVENTS // per_minute + 2
    for m in range(minutes):
        tally.add([_key(m, f"m{m}-e{i}") for i in range(per_minute)])
        tally.settle(tally.take())
    events = {event for (_, event, _, _, _) in tally.totals}
    assert len(events) == MAX_TOTAL_EVENTS + 1
    assert OTHER in events
    assert sum(tally.totals.values()) == minutes * per_minute
    assert tally.totals["outcome", OTHER, "POST /api/v2/batch", "-", "accepted"] == (
        (minutes * per_minute) - MAX_TOTAL_EVENTS
    )


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.text(min_size=1, max_size=8), st.integers(1, 5)),
        max_size=300,
    )
)
def test_no_count_is_ever_lost(adds: list[tuple[int, str, int]]) -> None:
    tally = Tally()
    expected: Counter[int] = Counter()
    for minute, event, n in sorted(adds):
        tally.add_counts({_key(minute, event): n})
        expected[minute] += n
    taken = tally.take()
    got: Counter[int] = Counter()
    for key, n in taken.items():
        got[key[0]] += n
    assert got == expected


@settings(max_examples=200)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 4), st.sampled_from(["a", "b", "c", "d", OTHER])),
            max_size=6,
        ),
        max_size=30,
    )
)
def test_add_bounds_keys_as_bounded_does(batches: list[list[tuple[int, str]]]) -> None:
    """``Tally.add`` inlines ``_bounded``'s first check (an event already counted this minute);
    beside ``add_counts``, which sends every key through ``_bounded``, nothing differs, past
    the minute bound too (three names a minute here)."""
    original = tally_module.MAX_EVENTS_PER_MINUTE
    tally_module.MAX_EVENTS_PER_MINUTE = 3
    try:
        inline, called = Tally(), Tally()
        for batch in batches:
            keys = [_key(minute, event) for minute, event in batch]
            inline.add(keys)
            for key in keys:
                called.add_counts({key: 1})
    finally:
        tally_module.MAX_EVENTS_PER_MINUTE = original
    assert list(inline.take().items()) == list(called.take().items())
    assert inline._named == called._named
    assert inline.folded == called.folded
