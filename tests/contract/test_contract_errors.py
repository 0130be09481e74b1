"""Every v1 error: a request that triggers it, and the exact bytes trackguard answers.

Customer.io's SDKs and their users match on these strings (node#29 broke on a body shape), so
the expected bodies are written out by hand here rather than produced by the code under test.
Limits are tested on both sides of the boundary, in UTF-8 bytes where Customer.io says bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

ID_MISSING = "id attribute must be present"
ID_NOT_STRING = "id attribute must be a string value"
ID_EMPTY = "id attribute cannot be an empty string"
ID_MISMATCH = "id attribute and identifier are not the same value"
TOO_MANY = "cannot identify more than 300 attributes in one request"
NAME_TOO_LONG = "attribute name cannot be longer than 150 bytes"
EVENT_BLANK = "event name must not be blank"
EVENT_TOO_LONG = "event name cannot be longer than 100 bytes"
EVENT_TOO_MANY_CHARS = "event name must be less than 500 characters"
DATA_NOT_HASH = "event data must be a hash"
DATA_TOO_LONG = "event data cannot be longer than 100000 bytes"
MERGE_MALFORMED = (
    "The request was malformed. You cannot have multiple identifiers (id, email, etc) "
    "in the `primary` or `secondary` objects."
)
FORM_NOT_STRINGS = "One or more form values may not be properly formatted as strings"
UNSUBSCRIBE_MALFORMED = "The `delivery_id` format is incorrect or the request is malformed."


def value_too_long(name: str) -> str:
    return f"value for attribute '{name}' cannot be longer than 1000 bytes"


def v1(*messages: str) -> bytes:
    """Customer.io's v1 400 body, pretty-printed with 2 spaces and a final newline."""
    inner = ",\n".join(f'      "{m}"' for m in messages)
    return f'{{\n  "meta": {{\n    "errors": [\n{inner}\n    ]\n  }}\n}}\n'.encode()


def v1_single(message: str) -> bytes:
    """The merge endpoint's 400 body: one string under ``meta.error``."""
    return f'{{\n  "meta": {{\n    "error": "{message}"\n  }}\n}}\n'.encode()


EVENTS = "/api/v1/customers/u1/events"
ANON = "/api/v1/events"
U1 = "/api/v1/customers/u1"
DEVICES = "/api/v1/customers/u1/devices"
MERGE = "/api/v1/merge_customers"
SEGMENT = "/api/v1/segments/7/add_customers"
FORM = "/api/v1/forms/f1/submit"

# (method, path, body, codes, messages) for the strings Customer.io itself sends.
VERIFIED: list[tuple[str, str, Any, list[str], list[str]]] = [
    ("POST", "/api/v1/customers//events", {"name": "x"}, ["id_missing"], [ID_MISSING]),
    ("PUT", "/api/v1/customers//devices", {"device": {"id": "t", "platform": "ios"}},
     ["id_missing"], [ID_MISSING]),
    ("DELETE", "/api/v1/customers//devices/tok", None, ["id_missing"], [ID_MISSING]),
    ("POST", "/api/v1/customers//suppress", None, ["id_missing"], [ID_MISSING]),
    ("PUT", U1, {"id": True}, ["id_not_string"], [ID_NOT_STRING]),
    ("PUT", U1, {"id": 1.5}, ["id_not_string"], [ID_NOT_STRING]),
    ("PUT", U1, {"id": {"v": "u1"}}, ["id_not_string"], [ID_NOT_STRING]),
    ("PUT", U1, {"id": ["u1"]}, ["id_not_string"], [ID_NOT_STRING]),
    ("PUT", "/api/v1/customers/bob%40x.com", {"id": ""}, ["id_empty"], [ID_EMPTY]),
    ("PUT", U1, {"id": ""}, ["id_empty"], [ID_EMPTY]),
    ("PUT", U1, {"id": "u2"}, ["id_mismatch"], [ID_MISMATCH]),
    ("PUT", U1, {"id": 1}, ["id_mismatch"], [ID_MISMATCH]),
    ("PUT", U1, {"id": "U1"}, ["id_mismatch"], [ID_MISMATCH]),
    ("PUT", U1, {f"a{i}": i for i in range(301)}, ["too_many_attributes"], [TOO_MANY]),
    ("PUT", U1, {"n" * 151: 1}, ["attribute_name_too_long"], [NAME_TOO_LONG]),
    ("PUT", U1, {"token": "x" * 1001}, ["attribute_value_too_long"], [value_too_long("token")]),
    ("POST", EVENTS, {}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": ""}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": " \t "}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": None}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": True}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": ["x"]}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", ANON, {"name": "", "anonymous_id": "a1"}, ["event_name_blank"], [EVENT_BLANK]),
    ("POST", EVENTS, {"name": "e" * 101}, ["event_name_too_long"], [EVENT_TOO_LONG]),
    ("POST", ANON, {"name": "e" * 101}, ["event_name_too_long"], [EVENT_TOO_LONG]),
    ("POST", EVENTS, {"name": "e" * 500}, ["event_name_too_long", "event_name_too_many_chars"],
     [EVENT_TOO_LONG, EVENT_TOO_MANY_CHARS]),
    ("POST", EVENTS, {"name": "x", "data": ""}, ["event_data_not_hash"], [DATA_NOT_HASH]),
    ("POST", EVENTS, {"name": "x", "data": []}, ["event_data_not_hash"], [DATA_NOT_HASH]),
    ("POST", EVENTS, {"name": "x", "data": 1}, ["event_data_not_hash"], [DATA_NOT_HASH]),
    ("POST", EVENTS, {"name": "x", "data": False}, ["event_data_not_hash"], [DATA_NOT_HASH]),
    ("POST", ANON, {"name": "x", "data": "{}"}, ["event_data_not_hash"], [DATA_NOT_HASH]),
    ("POST", EVENTS, {"name": "x", "data": {"k": "x" * 99_993}}, ["event_data_too_long"],
     [DATA_TOO_LONG]),
    ("POST", FORM, {"data": {"email": "a@b.co", "age": 30}}, ["form_values_not_strings"],
     [FORM_NOT_STRINGS]),
    ("POST", FORM, {"data": {"id": "u1", "ok": None}}, ["form_values_not_strings"],
     [FORM_NOT_STRINGS]),
    ("POST", "/unsubscribe/dlv1", {"unsubscribe": "yes"}, ["unsubscribe_malformed"],
     [UNSUBSCRIBE_MALFORMED]),
    ("POST", "/unsubscribe/dlv1", {"unsubscribe": 1}, ["unsubscribe_malformed"],
     [UNSUBSCRIBE_MALFORMED]),
]  # fmt: skip

# Requirements the spec documents without a known server message: trackguard's wording.
UNVERIFIED: list[tuple[str, str, Any, list[str], list[str]]] = [
    ("PUT", U1, b"{", ["invalid_json"], ["request body must be valid JSON"]),
    ("POST", EVENTS, b"name=x", ["invalid_json"], ["request body must be valid JSON"]),
    ("POST", EVENTS, b'{"name":NaN}', ["invalid_json"], ["request body must be valid JSON"]),
    ("POST", EVENTS, b'{"name":"\xff"}', ["invalid_json"], ["request body must be valid JSON"]),
    ("POST", EVENTS, b"", ["invalid_json"], ["request body must be valid JSON"]),
    ("POST", SEGMENT, b"  ", ["invalid_json"], ["request body must be valid JSON"]),
    ("PUT", U1, b"[]", ["body_not_object"], ["request body must be a JSON object"]),
    ("PUT", U1, b"null", ["body_not_object"], ["request body must be a JSON object"]),
    ("POST", ANON, b'"x"', ["body_not_object"], ["request body must be a JSON object"]),
    ("PUT", DEVICES, {}, ["device_missing"], ["device attribute must be present"]),
    ("PUT", DEVICES, {"device": None}, ["device_missing"], ["device attribute must be present"]),
    ("PUT", DEVICES, {"device": "tok"}, ["device_not_hash"], ["device must be a hash"]),
    ("PUT", DEVICES, {"device": {"platform": "ios"}}, ["device_id_missing"],
     ["device id must be present"]),
    ("PUT", DEVICES, {"device": {"id": "", "platform": "ios"}}, ["device_id_missing"],
     ["device id must be present"]),
    ("PUT", DEVICES, {"device": {"id": 5, "platform": "ios"}}, ["device_id_missing"],
     ["device id must be present"]),
    ("PUT", DEVICES, {"device": {"id": "t", "platform": "web"}}, ["device_platform_invalid"],
     ["device platform must be one of: ios, android"]),
    ("PUT", DEVICES, {"device": {"id": "t", "platform": "iOS"}}, ["device_platform_invalid"],
     ["device platform must be one of: ios, android"]),
    ("PUT", DEVICES, {"device": {}}, ["device_id_missing", "device_platform_invalid"],
     ["device id must be present", "device platform must be one of: ios, android"]),
    ("POST", SEGMENT, {}, ["segment_ids_missing"], ["ids must be present"]),
    ("POST", SEGMENT, {"ids": None}, ["segment_ids_missing"], ["ids must be present"]),
    ("POST", SEGMENT, {"ids": "u1"}, ["segment_ids_not_list"], ["ids must be an array of strings"]),
    ("POST", SEGMENT, {"ids": []}, ["segment_ids_empty"], ["ids must contain at least 1 item"]),
    ("POST", SEGMENT, {"ids": ["u"] * 1001}, ["segment_ids_too_many"],
     ["ids cannot contain more than 1000 items"]),
    ("POST", FORM, {}, ["form_data_missing"], ["form data must be a hash"]),
    ("POST", FORM, {"data": "email=a@b.co"}, ["form_data_missing"], ["form data must be a hash"]),
    ("POST", FORM, {"data": {"name": "Ann"}}, ["form_identifier"],
     ["form data must contain exactly one of: email, id"]),
    ("POST", FORM, {"data": {"email": "a@b.co", "id": "u1"}}, ["form_identifier"],
     ["form data must contain exactly one of: email, id"]),
    ("POST", FORM, {"data": {"email_address": "a@b.co", "n": 1}},
     ["form_identifier", "form_values_not_strings"],
     ["form data must contain exactly one of: email, id", FORM_NOT_STRINGS]),
    ("POST", "/api/v1/metrics", {"delivery_id": "d1"}, ["metric_fields_missing"],
     ["delivery_id and metric must be present"]),
    ("POST", "/api/v1/metrics", {"delivery_id": "", "metric": "opened"},
     ["metric_fields_missing"], ["delivery_id and metric must be present"]),
]  # fmt: skip


def _ids(cases: list[tuple[str, str, Any, list[str], list[str]]]) -> list[str]:
    return [f"{i}-{c[3][-1]}" for i, c in enumerate(cases)]


@pytest.mark.parametrize(
    ("method", "path", "body", "codes", "messages"), VERIFIED, ids=_ids(VERIFIED)
)
def test_customerio_error_strings(
    call: Any, answer: Any, method: str, path: str, body: Any, codes: list[str], messages: list[str]
) -> None:
    result = call(method, path, body)
    assert result.status == 400
    assert result.operations == ()
    assert [e.code for e in result.errors] == codes
    assert [e.message for e in result.errors] == messages
    assert all(e.verified for e in result.errors)
    assert answer(method, path, body) == (400, v1(*messages))


@pytest.mark.parametrize(
    ("method", "path", "body", "codes", "messages"), UNVERIFIED, ids=_ids(UNVERIFIED)
)
def test_trackguard_worded_errors(
    call: Any, answer: Any, method: str, path: str, body: Any, codes: list[str], messages: list[str]
) -> None:
    result = call(method, path, body)
    assert result.status == 400
    assert result.operations == ()
    assert [e.code for e in result.errors] == codes
    assert [e.message for e in result.errors] == messages
    assert [e.verified for e in result.errors] == [c == "form_values_not_strings" for c in codes]
    assert answer(method, path, body) == (400, v1(*messages))


# --- merge: one string under meta.error ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"primary": {"id": "u1", "email": "a@b.co"}, "secondary": {"id": "u2"}},
        {"primary": {"id": "u1"}, "secondary": {}},
        {"primary": {"phone": "+15551234567"}, "secondary": {"id": "u2"}},
        {"primary": {"id": ""}, "secondary": {"id": "u2"}},
        {"primary": {"id": None}, "secondary": {"id": "u2"}},
        {"primary": "u1", "secondary": {"id": "u2"}},
        {"primary": {"cio_id": "a3000001"}, "secondary": {"email": ["a@b.co"]}},
    ],
)
def test_merge_malformed(call: Any, answer: Any, body: Any) -> None:
    result = call("POST", MERGE, body)
    assert [(e.code, e.verified) for e in result.errors] == [("merge_malformed", True)]
    assert answer("POST", MERGE, body) == (400, v1_single(MERGE_MALFORMED))


@pytest.mark.parametrize("body", [{}, {"primary": {"id": "u1"}}, {"secondary": {"id": "u1"}}])
def test_merge_missing_side(call: Any, answer: Any, body: Any) -> None:
    result = call("POST", MERGE, body)
    assert [(e.code, e.verified) for e in result.errors] == [("merge_missing", False)]
    assert answer("POST", MERGE, body) == (
        400,
        v1_single("primary and secondary must both be present"),
    )


def test_merge_accepts_each_identifier_kind(call: Any) -> None:
    for kind, value in [("id", "u1"), ("email", "a@b.co"), ("cio_id", "a3000001"), ("id", 7)]:
        result = call("POST", MERGE, {"primary": {kind: value}, "secondary": {"id": "old"}})
        assert (result.status, result.errors) == (200, ())


# --- several failures are reported together, in Customer.io's order ---------------------------


def test_real_capture_id_mismatch_then_value_too_long(answer: Any) -> None:
    """The rudder-server capture: both messages, id check first."""
    status, body = answer("PUT", U1, {"id": "u2", "token": "t" * 1001})
    assert status == 400
    assert json.loads(body) == json.loads(
        '{"meta":{"errors":["id attribute and identifier are not the same value",'
        "\"value for attribute 'token' cannot be longer than 1000 bytes\"]}}"
    )
    assert body == v1(ID_MISMATCH, value_too_long("token"))


def test_identify_reports_id_count_name_then_values(call: Any) -> None:
    attrs: dict[str, Any] = {"id": 3.5}
    attrs.update({f"a{i:03d}": "v" for i in range(298)})
    attrs["n" * 151] = "v"
    attrs["m" * 152] = "v"  # a second long name is not reported twice
    attrs["zeta"] = "z" * 1001
    attrs["alpha"] = ["y" * 1000]
    result = call("PUT", U1, attrs)
    assert result.status == 400
    assert [(e.code, e.message, e.field) for e in result.errors] == [
        ("id_not_string", ID_NOT_STRING, "id"),
        ("too_many_attributes", TOO_MANY, ""),
        ("attribute_name_too_long", NAME_TOO_LONG, "n" * 151),
        ("attribute_value_too_long", value_too_long("zeta"), "zeta"),
        ("attribute_value_too_long", value_too_long("alpha"), "alpha"),
    ]


def test_event_reports_name_then_data(answer: Any) -> None:
    assert answer("POST", EVENTS, {"name": "", "data": "x"}) == (
        400,
        v1(EVENT_BLANK, DATA_NOT_HASH),
    )
    assert answer("POST", EVENTS, {"name": "€" * 500, "data": {"k": "x" * 99_993}}) == (
        400,
        v1(EVENT_TOO_LONG, EVENT_TOO_MANY_CHARS, DATA_TOO_LONG),
    )


def test_missing_id_with_event_errors(answer: Any) -> None:
    assert answer("POST", "/api/v1/customers//events", {"data": []}) == (
        400,
        v1(ID_MISSING, EVENT_BLANK, DATA_NOT_HASH),
    )


# --- boundaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("e" * 100, []),
        ("e" * 101, [EVENT_TOO_LONG]),
        ("  " + "e" * 100 + "  ", []),  # Customer.io trims leading and trailing spaces
        ("€" * 33 + "e", []),  # 100 bytes
        ("€" * 33 + "ee", [EVENT_TOO_LONG]),  # 101 bytes
        ("€" * 34, [EVENT_TOO_LONG]),  # 34 characters, 102 bytes
        ("😀" * 25, []),  # 100 bytes
        ("😀" * 25 + "e", [EVENT_TOO_LONG]),
        ("e" * 499, [EVENT_TOO_LONG]),
        ("e" * 500, [EVENT_TOO_LONG, EVENT_TOO_MANY_CHARS]),
        ("€" * 499, [EVENT_TOO_LONG]),
        ("€" * 500, [EVENT_TOO_LONG, EVENT_TOO_MANY_CHARS]),
    ],
)
@pytest.mark.parametrize("path", [EVENTS, ANON])
def test_event_name_bytes_and_characters(
    answer: Any, path: str, name: str, messages: list[str]
) -> None:
    expected = (400, v1(*messages)) if messages else (200, b"{}\n")
    assert answer("POST", path, {"name": name}) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("x" * 1000, True),
        ("x" * 1001, False),
        ("€" * 333 + "x", True),  # 1000 bytes
        ("€" * 333 + "xx", False),  # 1001 bytes
        ("€" * 250, True),  # 750 bytes: short strings are never measured wrong
        ("😀" * 250, True),  # 1000 bytes
        ("😀" * 250 + "x", False),
        (["x" * 996], True),  # JSON text ["x…"] is 1000 bytes
        (["x" * 997], False),
        ({"k": "x" * 992}, True),  # {"k":"x…"} is 1000 bytes
        ({"k": "x" * 993}, False),
        ([10**300, 10**300, 10**300, 10**91], True),  # 1000 bytes of JSON text
        ([10**300, 10**300, 10**300, 10**92], False),
    ],
)
def test_attribute_value_bytes(answer: Any, value: Any, ok: bool) -> None:
    expected = (200, b"{}\n") if ok else (400, v1(value_too_long("plan")))
    assert answer("PUT", U1, {"plan": value}) == expected


def test_subscription_preferences_and_relationships_are_not_measured(call: Any) -> None:
    big = {f"topic_{i}": True for i in range(200)}
    rels = {"action": "add_relationships", "relationships": [{"x": "y" * 2000}]}
    result = call(
        "PUT", U1, {"cio_subscription_preferences": {"topics": big}, "cio_relationships": rels}
    )
    assert (result.status, result.errors) == (200, ())


@pytest.mark.parametrize(("count", "ok"), [(300, True), (301, False)])
def test_attribute_count(answer: Any, count: int, ok: bool) -> None:
    attrs = {f"a{i}": i for i in range(count)}
    assert answer("PUT", U1, attrs) == ((200, b"{}\n") if ok else (400, v1(TOO_MANY)))


def test_attribute_count_includes_reserved_keys(answer: Any) -> None:
    attrs: dict[str, Any] = {f"a{i}": i for i in range(299)}
    attrs.update(email="a@b.co", id="u1")
    assert answer("PUT", U1, attrs) == (400, v1(TOO_MANY))


@pytest.mark.parametrize(
    ("name", "ok"),
    [("n" * 150, True), ("n" * 151, False), ("€" * 50, True), ("€" * 50 + "n", False)],
)
def test_attribute_name_bytes(answer: Any, name: str, ok: bool) -> None:
    assert answer("PUT", U1, {name: 1}) == ((200, b"{}\n") if ok else (400, v1(NAME_TOO_LONG)))


@pytest.mark.parametrize(("size", "ok"), [(100_000, True), (100_001, False)])
def test_event_data_bytes(call: Any, wire: Any, size: int, ok: bool) -> None:
    data = {"k": "x" * (size - 8)}  # {"k":"…"} adds 8 bytes
    assert len(wire(data)) == size
    result = call("POST", EVENTS, {"name": "big", "data": data})
    assert [e.message for e in result.errors] == ([] if ok else [DATA_TOO_LONG])
    assert result.status == (200 if ok else 400)


def test_event_data_is_measured_as_compact_json(call: Any) -> None:
    """Whitespace around the data does not count: its compact JSON is exactly 100000 bytes."""
    data = {"k": "x" * 99_992}
    body = json.dumps({"name": "big", "data": data}, indent=8).encode()
    result = call("POST", EVENTS, body)
    assert (result.status, result.errors) == (200, ())


@pytest.mark.parametrize(
    ("count", "messages"),
    [
        (0, ["ids must contain at least 1 item"]),
        (1, []),
        (1000, []),
        (1001, ["ids cannot contain more than 1000 items"]),
    ],
)
@pytest.mark.parametrize("action", ["add_customers", "remove_customers"])
def test_segment_id_count(answer: Any, action: str, count: int, messages: list[str]) -> None:
    path = f"/api/v1/segments/7/{action}?id_type=email"
    body = {"ids": [f"u{i}@example.com" for i in range(count)]}
    assert answer("POST", path, body) == ((400, v1(*messages)) if messages else (200, b"{}\n"))


@pytest.mark.parametrize(("extra", "status"), [(0, 400), (1, 413)])
def test_body_over_one_mebibyte_is_413(answer: Any, wire: Any, extra: int, status: int) -> None:
    """Exactly 1 MiB is still parsed (and fails on event data); one byte more is refused."""
    data = {"k": ""}
    body = {"name": "x", "data": data}
    data["k"] = "x" * (1024 * 1024 + extra - len(wire(body)))
    assert len(wire(body)) == 1024 * 1024 + extra
    expected = v1(DATA_TOO_LONG) if status == 400 else v1("request body is too large")
    assert answer("POST", EVENTS, body) == (status, expected)


def test_413_on_merge_uses_the_merge_shape(answer: Any) -> None:
    assert answer("POST", MERGE, b" " * (1024 * 1024 + 1)) == (
        413,
        v1_single("request body is too large"),
    )


# --- what is deliberately not an error ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (U1, None),  # identify with no body sets nothing
        (U1, {"id": None}),  # null id is "not given"
        (U1, {"id": "u1"}),
        ("/api/v1/customers/5", {"id": 5}),  # Ruby sends integer ids
        ("/api/v1/customers/bob%40x.com", {"id": "u2"}),  # sets the id of an email-keyed person
        ("/api/v1/customers/cio_abc", {"id": "u2"}),  # changes the id of a cio_id person
        ("/api/v1/customers/cio_abc", {"email": "new@x.com"}),
    ],
)
def test_identify_leniency(call: Any, path: str, body: Any) -> None:
    result = call("PUT", path, body)
    assert (result.status, result.errors, result.warnings) == (200, (), ())
    assert result.operations[0].body == ({} if body is None else body)


def test_numeric_event_names_are_names(call: Any) -> None:
    result = call("POST", EVENTS, {"name": 42})
    assert (result.status, result.errors) == (200, ())
    assert result.operations[0].name == 42
    assert [e.message for e in call("POST", EVENTS, {"name": 10**100}).errors] == [EVENT_TOO_LONG]


def test_unknown_event_type_is_a_warning(call: Any) -> None:
    result = call("POST", EVENTS, {"name": "x", "type": "click"})
    assert result.status == 200
    assert result.operations[0].action == "event"
    assert [(w.code, w.message, w.field) for w in result.warnings] == [
        (
            "event_type_unknown",
            "type is not one of event, page, screen: Customer.io treats it as an event",
            "type",
        )
    ]


def test_string_timestamp_is_a_warning(call: Any) -> None:
    result = call("POST", ANON, {"name": "x", "timestamp": "2025-11-24T10:00:00Z"})
    assert result.status == 200
    assert [(w.code, w.message, w.field) for w in result.warnings] == [
        (
            "timestamp_replaced",
            "timestamp is not an integer: Customer.io replaces it with the time of receipt",
            "timestamp",
        )
    ]
