"""Exact results of the ``fix`` coercions and the timestamp classifier."""

from __future__ import annotations

import calendar
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trackguard.core.coerce import (
    MS_THRESHOLD,
    NS_THRESHOLD,
    US_THRESHOLD,
    is_number,
    timestamp_kind,
    to_boolean,
    to_email,
    to_integer,
    to_number,
    to_string,
    to_timestamp,
)

NO = (False, None)
#: 2025-11-24T16:00:00Z, computed independently of the code under test.
T = calendar.timegm((2025, 11, 24, 16, 0, 0))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**4299), max_value=10**4299),  # msgspec decodes up to 4300 digits
    st.floats(),  # inf and nan included
    st.text(),
    st.from_regex(r"\A[ ]?[+-]?\d{0,25}(\.\d{0,6})?([eE][+-]?\d{1,4})?[ ]?\Z"),
    st.datetimes().map(lambda d: d.isoformat()),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_reference_instant() -> None:
    assert T == 1_764_000_000


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("49.90", (True, 49.9)),
        (" 7 ", (True, 7)),
        ("-3", (True, -3)),
        ("+4", (True, 4)),
        (".5", (True, 0.5)),
        ("5.", (True, 5.0)),
        ("1e3", (True, 1000.0)),
        ("3.0", (True, 3.0)),
        (12, (True, 12)),
        (1.5, (True, 1.5)),
        (0, (True, 0)),
        ("1e999", NO),
        (math.inf, NO),
        (-math.inf, NO),
        (math.nan, NO),
        ("abc", NO),
        ("", NO),
        ("1,5", NO),
        ("0x10", NO),
        (None, NO),
        (True, NO),
        (False, NO),
        ([1], NO),
        ({"a": 1}, NO),
    ],
)
def test_to_number(value: Any, expected: tuple[bool, Any]) -> None:
    result = to_number(value)
    assert result == expected
    assert type(result[1]) is type(expected[1])


def test_to_number_keeps_integers_integers() -> None:
    assert to_number("42") == (True, 42)
    assert type(to_number("42")[1]) is int
    assert to_number(10**30) == (True, 10**30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3.0", (True, 3)),
        (" 7 ", (True, 7)),
        ("-12", (True, -12)),
        ("5.", (True, 5)),
        ("1e3", (True, 1000)),
        (4.0, (True, 4)),
        (9, (True, 9)),
        ("3.5", NO),
        (".5", NO),
        (1.5, NO),
        ("49.90", NO),
        ("abc", NO),
        ("1e999", NO),
        (math.nan, NO),
        (True, NO),
        (None, NO),
        ([], NO),
    ],
)
def test_to_integer(value: Any, expected: tuple[bool, Any]) -> None:
    result = to_integer(value)
    assert result == expected
    if result[0]:
        assert type(result[1]) is int


def test_to_integer_long_integer_string_is_exact() -> None:
    assert to_integer("12345678901234567890") == (True, 12345678901234567890)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TRUE", (True, True)),
        ("true", (True, True)),
        (" Yes ", (True, True)),
        ("1", (True, True)),
        ("False", (True, False)),
        ("no", (True, False)),
        ("0", (True, False)),
        (True, (True, True)),
        (False, (True, False)),
        (1, (True, True)),
        (0, (True, False)),
        (2, NO),
        (1.0, NO),
        ("y", NO),
        ("on", NO),
        ("", NO),
        (None, NO),
        ([True], NO),
    ],
)
def test_to_boolean(value: Any, expected: tuple[bool, Any]) -> None:
    assert to_boolean(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", (True, "abc")),
        (" padded ", (True, " padded ")),
        ("", (True, "")),
        (42, (True, "42")),
        (1.5, (True, "1.5")),
        (True, NO),
        (None, NO),
        ({}, NO),
        (["a"], NO),
    ],
)
def test_to_string(value: Any, expected: tuple[bool, Any]) -> None:
    assert to_string(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Ana@Example.COM ", (True, "ana@example.com")),
        ("ana@example.com", (True, "ana@example.com")),
        ("ana@example", NO),
        ("not an email", NO),
        ("a b@example.com", NO),
        ("", NO),
        (None, NO),
        (5, NO),
    ],
)
def test_to_email(value: Any, expected: tuple[bool, Any]) -> None:
    assert to_email(value) == expected


def test_is_number() -> None:
    assert [is_number(v) for v in (1, 1.5, True, "1", None)] == [True, True, False, False, False]


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T, (True, T)),
        (T * 1000 + 123, (True, T)),  # milliseconds
        (T * 1_000_000 + 123_456, (True, T)),  # microseconds
        (T * 1_000_000_000 + 123_456_789, (True, T)),  # nanoseconds
        (T + 0.9, (True, T)),  # float seconds, truncated
        (str(T), (True, T)),
        (str(T * 1000), (True, T)),
        (f" {T}.5 ", (True, T)),
        ("2025-11-24T16:00:00Z", (True, T)),
        ("2025-11-24T16:00:00.999Z", (True, T)),
        ("2025-11-24T16:00:00", (True, T)),  # naive ISO is UTC
        ("2025-11-24T17:00:00+01:00", (True, T)),
        ("20251124T160000Z", (True, T)),
        ("2025-11-24", (True, T - 16 * 3600)),
        (0, (True, 0)),
        (MS_THRESHOLD - 1, (True, MS_THRESHOLD - 1)),
        (MS_THRESHOLD, (True, MS_THRESHOLD // 1000)),
        (-1, NO),
        (-1.5, NO),
        ("-5", NO),
        ("1969-12-31T23:59:59Z", NO),
        ("0001-01-01T00:00:00+01:00", NO),
        ("2025-13-01T00:00:00Z", NO),
        ("1e999", NO),
        (True, NO),
        (False, NO),
        (None, NO),
        (math.inf, NO),
        (math.nan, NO),
        ("yesterday", NO),
        ([T], NO),
        ({"t": T}, NO),
    ],
)
def test_to_timestamp(value: Any, expected: tuple[bool, Any]) -> None:
    result = to_timestamp(value)
    assert result == expected
    if result[0]:
        assert type(result[1]) is int


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (T, "seconds"),
        (0, "seconds"),
        (T * 1000, "milliseconds"),
        (MS_THRESHOLD, "milliseconds"),
        (US_THRESHOLD - 1, "milliseconds"),
        (T * 1_000_000, "microseconds"),
        (US_THRESHOLD, "microseconds"),
        (T * 1_000_000_000, "nanoseconds"),
        (NS_THRESHOLD, "nanoseconds"),
        (T + 0.5, "float_seconds"),
        (str(T), "numeric_string"),
        (" 49.9 ", "numeric_string"),
        ("2025-11-24T16:00:00Z", "iso8601"),
        ("2025-11-24", "iso8601"),
        (-1, "negative"),
        (-1.5, "invalid"),
        (True, "invalid"),
        (None, "invalid"),
        ("abc", "invalid"),
        ("2025-13-01", "invalid"),
        (math.nan, "invalid"),
        ([], "invalid"),
    ],
)
def test_timestamp_kind(value: Any, kind: str) -> None:
    assert timestamp_kind(value) == kind


def test_thresholds() -> None:
    assert (MS_THRESHOLD, US_THRESHOLD, NS_THRESHOLD) == (10**11, 10**14, 10**17)


# --- properties ---------------------------------------------------------------------------------

COERCIONS = (to_number, to_integer, to_boolean, to_string, to_email, to_timestamp)


@given(json_values)
@example(10**4299)
@example(-(10**4299))
@example(math.inf)
@example(math.nan)
@example("9" * 400)
@example("1" + "0" * 25)
def test_no_coercion_raises(value: Any) -> None:
    for coercion in COERCIONS:
        ok, out = coercion(value)
        assert isinstance(ok, bool)
        if not ok:
            assert out is None
    assert timestamp_kind(value) in {
        "seconds",
        "milliseconds",
        "microseconds",
        "nanoseconds",
        "float_seconds",
        "numeric_string",
        "iso8601",
        "negative",
        "invalid",
    }


@given(json_values)
def test_to_timestamp_output_is_a_non_negative_int(value: Any) -> None:
    ok, out = to_timestamp(value)
    if ok:
        assert type(out) is int
        assert out >= 0


@given(st.integers(min_value=0, max_value=10**20 - 1))
def test_to_timestamp_in_range_for_ints_below_1e20(value: int) -> None:
    ok, out = to_timestamp(value)
    assert ok
    assert 0 <= out < 10**11
    assert timestamp_kind(out) == "seconds"


@given(json_values)
@example(10**20)
@example("9999-12-31T23:59:59Z")
def test_to_timestamp_output_is_below_1e11(value: Any) -> None:
    ok, out = to_timestamp(value)
    if ok:
        assert 0 <= out < 10**11
