"""Mapping files: parsed with file and line on every mistake; rows converted or refused."""

from __future__ import annotations

import pytest

from trackguard.recovery.mapping import MappingError, RowError, parse_mapping


def _issues(text: str, *, identify: bool = False) -> list[str]:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml", identify=identify)
    return list(info.value.issues)


def test_mapping_errors_have_lines() -> None:
    issues = _issues(
        "person: {id: customer_id}\n"
        "timestamp: {column: at, format: rfc2822}\n"
        "data:\n"
        "  total: {column: total, type: money}\n"
        "  x: {type: number}\n"
        "colour: red\n"
    )
    assert issues == [
        "m.yaml:2:33: timestamp.format must be one of iso8601, unix, unix_ms",
        "m.yaml:4:32: data.total.type must be one of string, number, integer, boolean",
        "m.yaml:5:6: data.x: needs column:",
        "m.yaml:6:1: unknown key 'colour'; allowed keys: person, timestamp, data",
    ]


def test_a_misspelled_key_gets_a_suggestion() -> None:
    assert _issues("person: {id: c}\ntimestamp: {colum: at}\n")[0] == (
        "m.yaml:2:13: timestamp: unknown key 'colum' (did you mean 'column'?);"
        " allowed keys: column, format"
    )


def test_missing_person_and_wrong_section() -> None:
    assert _issues("data: {a: b}\n", identify=True) == [
        "m.yaml:1:1: data: is for --as event:NAME; this backfill maps attributes:",
        "m.yaml:1:1: person: is required ({id: COLUMN} or {email: COLUMN})",
    ]
    assert _issues("person: {id: a, email: b}\n") == [
        "m.yaml:1:9: person: needs exactly one of id: COLUMN or email: COLUMN"
    ]
    assert _issues("person: {id: [a]}\n")[0].startswith("m.yaml:1:14: person.id must be")
    assert _issues("person: {id: a\n")[0].startswith("m.yaml:2:1: invalid YAML")
    assert _issues("") == ["m.yaml:1:1: the mapping is empty; it needs person:"]


def test_apply_converts_and_refuses() -> None:
    m = parse_mapping(
        "person: {email: mail}\n"
        "timestamp: {column: at, format: unix_ms}\n"
        "data:\n"
        "  n: {column: n, type: integer}\n"
        "  ok: {column: ok, type: boolean}\n"
        "  note: {column: note, required: false}\n"
    )
    row = {"mail": " a@example.com ", "at": "1700000000123", "n": "3", "ok": "yes", "note": ""}
    assert m.apply(row) == ("a@example.com", 1700000000, {"n": 3, "ok": True})
    with pytest.raises(RowError, match=r"'3\.5' is not an integer"):
        m.apply({**row, "n": "3.5"})
    with pytest.raises(RowError, match="no column 'at'"):
        m.apply({k: v for k, v in row.items() if k != "at"})
    with pytest.raises(RowError, match="person email"):
        m.apply({**row, "mail": ""})
    iso = parse_mapping("person: {id: c}\ntimestamp: t\n")
    assert iso.apply({"c": 7, "t": "2024-01-01 00:00:00"})[:2] == ("7", 1704067200)
    with pytest.raises(RowError, match="is not iso8601"):
        iso.apply({"c": 7, "t": "yesterday"})
