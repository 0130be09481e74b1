"""Mapping files: parsed with file and line on every mistake; rows converted or refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _call_issues(text: str, call: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml", pipelines=True, call=call)
    return list(info.value.issues)


def test_group_and_alias_mappings_give_their_ids() -> None:
    group = parse_mapping(
        "person: {email: mail}\ngroup: {id: acct, object_type: '02'}\nattributes: {n: name}\n",
        pipelines=True,
        call="group",
    )
    assert (group.section, group.object_type, group.object_type_column) == ("attributes", "2", None)
    row = {"mail": "a@x.io", "acct": 42, "name": "Acme"}
    assert group.apply(row) == ("a@x.io", None, {"n": "Acme"})
    assert group.call_fields(row) == {"groupId": "42", "objectTypeId": "2"}
    by_column = parse_mapping("group: {id: g, object_type: kind}\n", pipelines=True, call="group")
    assert (by_column.person_column, by_column.object_type_column) == (None, "kind")
    assert by_column.apply({"g": "A"}) == (None, None, {})
    assert by_column.call_fields({"g": " A ", "kind": 3}) == {"groupId": "A", "objectTypeId": "3"}
    with pytest.raises(RowError, match=r"^group object_type: column 'kind' is empty$"):
        by_column.call_fields({"g": "A", "kind": " "})
    with pytest.raises(RowError, match=r"^group id: \[1\] is not a string or integer$"):
        by_column.call_fields({"g": [1], "kind": 3})
    alias = parse_mapping(
        "person: {id: u}\nprevious: {anonymous_id: anon}\n", pipelines=True, call="alias"
    )
    assert (alias.previous_kind, alias.previous_column) == ("anonymous_id", "anon")
    assert alias.call_fields({"u": "u-1", "anon": "a-9"}) == {"previousId": "a-9"}
    with pytest.raises(RowError, match=r"^previous anonymous_id: column 'anon' is empty$"):
        alias.call_fields({"u": "u-1", "anon": None})


def test_group_and_alias_mistakes_have_lines() -> None:
    assert _call_issues("timestamp: t\nprevious: {id: p}\n", "group") == [
        "m.yaml:2:1: previous: is for --as pipelines:alias",
        "m.yaml:1:1: group: is required for --as pipelines:group ({id: COLUMN})",
    ]
    assert _call_issues("group: {object_type: 2}\n", "group") == [
        "m.yaml:1:8: group: needs id: COLUMN"
    ]
    assert _call_issues("group: {id: g, object_type: true}\n", "group") == [
        "m.yaml:1:29: group.object_type must be a column name or an object type id such as 2"
    ]
    assert _call_issues("previous: {id: p, email: e}\ndata: {a: b}\n", "alias") == [
        "m.yaml:1:11: previous: needs exactly one of id: COLUMN or email: COLUMN or"
        " anonymous_id: COLUMN",
        "m.yaml:2:1: data: an alias call carries no data; map person: and previous:",
        "m.yaml:1:1: person: is required ({id: COLUMN} or {email: COLUMN})",
    ]
    assert _call_issues("person: {id: u}\nprevous: {id: p}\n", "alias") == [
        "m.yaml:2:1: unknown key 'prevous' (did you mean 'previous'?); allowed keys: person,"
        " previous, timestamp",
        "m.yaml:1:1: previous: is required for --as pipelines:alias ({id: COLUMN}, {email:"
        " COLUMN} or {anonymous_id: COLUMN})",
    ]


_KEYS = st.sampled_from(["person", "group", "previous", "timestamp", "data", "attributes",
                         "id", "email", "anonymous_id", "object_type", "column", "x"])  # fmt: skip
_LEAVES = st.one_of(
    st.sampled_from(["c", "2", "02", "", " ", "1.5", "true", "null", "[a]"]),
    st.text(max_size=6),
)
_NODES = st.recursive(
    _LEAVES, lambda inner: st.dictionaries(_KEYS, inner, max_size=3), max_leaves=8
)


@settings(max_examples=300)
@given(
    st.dictionaries(_KEYS, _NODES, max_size=4),
    st.sampled_from([None, "track", "identify", "group", "alias"]),
    st.dictionaries(st.sampled_from(["c", "2", "x"]), st.one_of(st.none(), st.integers(),
                    st.text(max_size=4), st.booleans(), st.lists(st.integers(), max_size=1))),
)  # fmt: skip
def test_any_mapping_parses_or_fails_with_lines_and_any_row_maps_or_fails_with_a_row_error(
    doc: dict[str, Any], call: str | None, row: dict[str, Any]
) -> None:
    text = yaml.safe_dump(doc)
    try:
        mapping = parse_mapping(text, "m.yaml", pipelines=call is not None, call=call)
    except MappingError as e:
        assert e.issues and all(re.match(r"m\.yaml:\d+:\d+: \S", i) for i in e.issues)
        return
    assert (mapping.group_column is not None) == (call == "group")
    assert (mapping.previous_column is not None) == (call == "alias")
    assert mapping.person_column is not None or call == "group"
    try:
        person, _, _ = mapping.apply(row)
        fields = mapping.call_fields(row)
    except RowError:
        return
    assert person is None or isinstance(person, str)
    assert all(isinstance(v, str) and v == v.strip() and v for v in fields.values())
