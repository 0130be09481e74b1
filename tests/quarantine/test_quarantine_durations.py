"""``trackguard.durations``: exact values, exact errors, and no input that raises anything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.durations import (
    MAX_DURATION,
    DurationError,
    format_duration,
    parse_duration,
    parse_instant,
)

NOW = datetime(2026, 11, 4, 10, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("0", 0),
        ("30s", 30),
        ("15m", 900),
        ("24h", 86_400),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        ("1h30m", 5_400),
        ("30m1h", 5_400),
        (" 7d\n", 604_800),
        ("007d", 604_800),
        ("36500d", MAX_DURATION),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "'' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        (
            "7M",
            "'7M' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        (
            "-1d",
            "'-1d' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        (
            "1.5h",
            "'1.5h' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w,"
            " or combined: 1h30m",
        ),
        (
            "7 d",
            "'7 d' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        (
            "d",
            "'d' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        (
            "٣d",
            "'٣d' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w, or"
            " combined: 1h30m",
        ),
        ("36501d", "'36501d' is longer than 100 years (36500d)"),
        ("9" * 40, f"'{'9' * 40}' is longer than 100 years (36500d)"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (5_400, "1h30m"),
        (604_800, "7d"),
        (2_592_000, "30d"),
        (694_861, "8d1h1m1s"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="a duration cannot be negative: -1"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=MAX_DURATION))
def test_format_then_parse_is_identity(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(alphabet=st.characters() | st.sampled_from(["\ud800", "\udcff", "\x00", "\x1b"])))
def test_parse_duration_returns_or_raises_duration_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError:
        return
    assert 0 <= seconds <= MAX_DURATION


@given(st.lists(st.tuples(st.integers(0, 500), st.sampled_from("wdhms")), min_size=1, max_size=4))
def test_combined_parts_add_up(parts: list[tuple[int, str]]) -> None:
    size = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == sum(n * size[unit] for n, unit in parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - 7 * 86_400),
        ("90s", NOW - 90),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
        ("2026-11-01T12:00", datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()),
        ("2026-11-01T14:00:00+02:00", datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()),
        ("2026-11-01 12:00:00.5", datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() + 0.5),
    ],
)
def test_parse_instant(text: str, expected: float) -> None:
    assert parse_instant(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2026",
            "'2026' is ambiguous: write a duration with a unit (90s, 7d) for that long ago,"
            " or a date (2026-11-01)",
        ),
        (
            "yesterday",
            "'yesterday' is neither a duration nor a date: write 7d or 24h (that long"
            " ago), 2026-11-01 or 2026-11-01T12:00:00Z",
        ),
        (
            "2026-13-01",
            "'2026-13-01' is neither a duration nor a date: write 7d or 24h (that long"
            " ago), 2026-11-01 or 2026-11-01T12:00:00Z",
        ),
        ("99999d", "'99999d' is longer than 100 years (36500d)"),
    ],
)
def test_parse_instant_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_instant(text, NOW)
    assert str(info.value) == message


@given(st.text(alphabet=st.characters() | st.sampled_from(["\ud800", "\udcff", "\x00", "\x1b"])))
def test_parse_instant_returns_or_raises_duration_error(text: str) -> None:
    try:
        value = parse_instant(text, NOW)
    except DurationError:
        return
    assert isinstance(value, float)


@given(st.datetimes(timezones=st.sampled_from([UTC, None])))
def test_parse_instant_reads_every_isoformat(moment: datetime) -> None:
    expected = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    try:
        timestamp = expected.timestamp()
    except (OverflowError, ValueError):
        return
    assert parse_instant(moment.isoformat(), NOW) == timestamp
