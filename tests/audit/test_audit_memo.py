"""What the audit keeps between lines (data shapes, minutes, routes, error responses) changes no
count: the same statistics with the caches as without them, past their bounds too."""

from __future__ import annotations

from typing import Any

import pytest

import trackguard.audit.census as census
import trackguard.audit.engine as engine
from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.clock import LogClock
from trackguard.audit.engine import Auditor
from trackguard.audit.readers import Record
from trackguard.contract.operations import Request
from trackguard.core.coerce import parse_iso

T0 = 1_764_000_000


class _At:
    def __init__(self, where: str) -> None:
        self.where = where


_DATA: list[dict[str, Any]] = [
    {"a": "x", "b": 1},
    {"b": 2, "a": "y"},  # the same pairs, another order: another shape
    {"a": 3, "c": "m@x.io"},
    {"a": "x", "b": 1_764_000_000},
    {"a": "z", "b": True, "d": None},
    {"a": "w", "b": 2.5},
    {"c": "n@x.io", "e": [1], "f": {"g": 1}},
    {"a": "v", "b": 1},
]


def _stats(max_shapes: int, limits: Limits, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    monkeypatch.setattr(census, "MAX_SHAPES", max_shapes)
    caps = CapLog()
    events = census.EventCensus(limits, caps)
    for i, data in enumerate(_DATA * 3):
        events.add("e", data, _At(f"f:{i}"), None, "src")
    stats = events.events["e"]
    props = {
        k: (p.present, p.types, p.first, p.ints, p.floats, p.emails, p.stamps, p.values)
        for k, p in stats.props.items()
    }
    return list(stats.seen.items()), stats.firsts, stats.strings, props, caps.messages()


@pytest.mark.parametrize("limits", [Limits(), Limits(enum_values=2, properties_per_event=4)])
def test_shapes_count_as_pairs_do(monkeypatch: pytest.MonkeyPatch, limits: Limits) -> None:
    by_shape = _stats(256, limits, monkeypatch)
    by_pair = _stats(0, limits, monkeypatch)  # every event past the shape cap
    assert by_shape == by_pair
    half = _stats(3, limits, monkeypatch)  # some shapes kept, the rest counted pair by pair
    assert half == by_pair


def test_shapes_count_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, firsts, strings, _props, notes = _stats(256, Limits(properties_per_event=4), monkeypatch)
    # (b, bool), (d, None), (b, float)... come after the fourth pair: not tracked
    assert seen == [(("a", str), 18), (("b", int), 12), (("a", int), 3), (("c", str), 6)]
    assert firsts == {("a", str): "f:0", ("b", int): "f:0", ("a", int): "f:2", ("c", str): "f:2"}
    assert strings == {"a": {"x", "y", "z", "w", "v"}, "c": {"m@x.io", "n@x.io"}}
    assert notes == (
        "an event has more than 4 distinct (property, type) pairs: the rest are not tracked",
    )


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-24T16:00:01Z",
        "2025-11-24T16:00:59Z",
        "2025-11-24T16:00:60Z",  # a leap second, as the hour-cache path reads it
        "2025-11-24T16:01:00Z",
        "2025-11-24T16:00:1xZ",
        "2025-11-24T16:00:01+00:00",
        "2025-11-24T16:00:01.5Z",
        "2025-11-24T17:00:01+02:00",
        "not a time at all!!Z",
    ],
)
def test_clock_minutes(text: str) -> None:
    warm = LogClock()
    warm.parse("2025-11-24T16:00:00Z")  # the minute is cached
    cold = LogClock()
    expected = cold.parse(text)
    assert warm.parse(text) == expected
    if expected is not None and text[-1] == "Z" and "." not in text:
        if text.endswith(":60Z"):  # a leap second reads as the next minute's first second
            assert expected == parse_iso(text[:17] + "00+00:00") + 60
        else:
            assert expected == parse_iso(text[:19] + "+00:00")


def test_clock_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trackguard.audit.clock._CACHE_LIMIT", 2)
    clock = LogClock()
    times = [f"2025-11-24T16:0{m}:0{s}Z" for m in range(5) for s in range(3)]
    assert [clock.parse(t) for t in times] == [LogClock().parse(t) for t in times]
    assert len(clock.minutes) <= 2


def _record(n: int, path: str, status: int = 200, response: str = "{}\n") -> Record:
    body = b'{"name":"Viewed","data":{"k":1},"timestamp":%d}' % T0
    request = Request(method="POST", path=path, body=body)
    return Record("f", n, False, request, "2025-11-24T16:00:00Z", status, response)


def test_route_and_response_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "ROUTE_CACHE", 2)
    monkeypatch.setattr(engine, "RESPONSE_CACHE", 1)
    auditor = Auditor(now=T0)
    errors = ['{"meta":{"errors":["a"]}}', '{"meta":{"errors":["b"]}}']
    for n in range(12):
        path = f"/api/v1/customers/u{n % 4}/events"
        auditor.add(_record(n, path, 400, errors[n % 2]))
    assert len(auditor.routes) <= 2 and len(auditor.responses) <= 1
    assert auditor.identity.kinds == {"id": 12}
    assert auditor.events.names == {"Viewed": 12}
    counts = auditor.rejected_by_log.counts
    assert counts == {(400, "a"): 6, (400, "b"): 6}
