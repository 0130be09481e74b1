"""Fuzz: ``evaluate()`` never raises, and what it answers is always well formed.

The gateway puts ``evaluate()`` in front of every byte a client sends, so a crash on any input
is an outage. Beyond "no exception", every result must hold together: a 400 carries errors and
no operations, a 2xx carries operations and no errors, a 207's operations are exactly the batch
items that ``/api/v2/entity`` would accept alone, and ``render()`` always yields a known status
with a JSON body (or no body for 204).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trackguard.contract import ContractResult, Request, evaluate, render
from trackguard.contract.routes import ROUTES

STATUSES = {200, 204, 207, 400, 404, 405, 413}
V2_TYPES = ("person", "object", "delivery")


def safe_evaluate(request: Request) -> ContractResult:
    """``evaluate`` must never raise: any exception fails the test."""
    return evaluate(request)


def check_invariants(request: Request, result: ContractResult) -> None:
    """What must hold for every result, whatever the input."""
    status, body = render(result)
    assert status == result.status
    assert status in STATUSES
    if status == 204:
        assert body == b""
    else:
        assert body.endswith(b"\n")
        parsed = json.loads(body)
    route = result.route
    if status in (200, 204):
        assert result.errors == ()
        assert result.operations
        assert route is not None
        if route.api == "v1":
            assert len(result.operations) == 1
        assert status == 200 or route.action == "submit_form"
        if status == 200:
            assert parsed == {}
    elif status == 207:
        assert route is not None and route.action == "batch"
        assert result.errors
        assert all(e.batch_index is not None for e in result.errors)
        accepted = {op.batch_index for op in result.operations}
        failed = {e.batch_index for e in result.errors}
        assert not accepted & failed
        assert len(accepted) == len(result.operations)
        assert parsed == {
            "errors": [
                {"batch_index": e.batch_index, "reason": e.reason, "field": e.field,
                 "message": e.message}
                for e in result.errors
            ]
        }  # fmt: skip
    else:
        assert result.operations == ()
        assert result.errors
        if status in (404, 405):
            assert route is None
            assert (status == 405) == bool(result.allowed)
            assert request.method.upper() not in result.allowed
        if route is not None and route.api == "v2" and status == 400:
            assert parsed == {
                "errors": [
                    {"reason": e.reason, "field": e.field, "message": e.message}
                    for e in result.errors
                ]
            }
        elif route is not None and route.action == "merge":
            assert parsed == {"meta": {"error": result.errors[0].message}}
        else:
            assert parsed == {"meta": {"errors": [e.message for e in result.errors]}}
    for op in result.operations:
        assert route is not None
        assert op.api == route.api
        assert op.route == route.key


# --- strategies ---------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "type", "action", "identifiers", "name", "data", "attributes", "id", "email", "cio_id",
        "phone", "anonymous_id", "device", "token", "platform", "last_used", "primary",
        "secondary", "batch", "ids", "timestamp", "cio_relationships", "object_type_id",
        "object_id", "cio_object_id", "delivery_id", "metric", "unsubscribe", "_update",
    ]
) | st.text(max_size=6)  # fmt: skip
WORDS = st.sampled_from(
    [
        "person", "object", "delivery", "identify", "identify_anonymous", "delete", "event",
        "page", "screen", "add_relationships", "delete_relationships", "add_device",
        "delete_device", "merge", "suppress", "unsuppress", "ios", "android", "opened", "u1",
        "a@b.co", "cio_x", "", " ",
    ]
)  # fmt: skip


def json_values(*, finite: bool = False) -> st.SearchStrategy[Any]:
    """Any JSON value; with ``finite=False`` floats include NaN and infinities, which
    ``json.dumps`` writes as the non-JSON tokens ``NaN`` / ``Infinity``, and integers include
    ±10**400, which no double holds (refused like ``1e400``)."""
    huge = [] if finite else [10**400, -(10**400)]
    leaves = (
        st.none()
        | st.booleans()
        | (st.integers(min_value=-(2**1000), max_value=2**1000) if finite else st.integers())
        | st.sampled_from([*huge, 2**63, 2**64, -(2**63) - 1, 1_700_000_000_000])
        | st.floats(allow_nan=not finite, allow_infinity=not finite)
        | st.text(max_size=20)
        | WORDS
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5)
        ),
        max_leaves=25,
    )


JSON_VALUES = json_values()


def _raw_object(pairs: list[tuple[str, Any]]) -> bytes:
    """An object written by hand, so keys may repeat."""
    inner = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    return ("{" + inner + "}").encode("utf-8", "surrogatepass")


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def v2_items(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """v2 operations: the real keys, with real words or anything at all as values."""
    return st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(V2_TYPES) | values,
            "action": WORDS | values,
            "identifiers": st.dictionaries(KEYS, WORDS | values, max_size=3) | values,
            "name": WORDS | values,
            "attributes": st.dictionaries(KEYS, values, max_size=4) | values,
            "device": st.dictionaries(KEYS, WORDS | values, max_size=3) | values,
            "cio_relationships": values,
            "primary": st.dictionaries(KEYS, WORDS, max_size=2) | values,
            "secondary": st.dictionaries(KEYS, WORDS, max_size=2) | values,
            "id": WORDS | values,
            "timestamp": values,
        },
    )


V2_ITEMS = v2_items(JSON_VALUES)
FINITE_VALUES = json_values(finite=True)
VALID_V2_ITEMS = [
    {"type": "person", "action": "identify", "identifiers": {"id": "u1"}, "attributes": {"a": 1}},
    {"type": "person", "action": "event", "identifiers": {"email": "a@b.co"}, "name": "x"},
    {"type": "person", "action": "add_device", "identifiers": {"id": "u1"},
     "device": {"token": "t", "platform": "ios"}},
    {"type": "person", "action": "merge", "primary": {"id": "u1"}, "secondary": {"id": "u2"}},
    {"type": "object", "action": "identify",
     "identifiers": {"object_type_id": "1", "object_id": "o"}},
    {"type": "delivery", "action": "event", "identifiers": {"id": "d"}, "name": "opened"},
]  # fmt: skip
#: A valid operation, or one with a single key replaced by anything: most land near the edge.
NEAR_VALID_ITEMS = st.builds(
    lambda base, key, value, mutate: {**base, key: value} if mutate else base,
    st.sampled_from(VALID_V2_ITEMS),
    st.sampled_from(sorted({k for item in VALID_V2_ITEMS for k in item})) | KEYS,
    FINITE_VALUES | WORDS,
    st.booleans(),
)
SPECIAL_BODIES = [
    b"",
    b" ",
    b"null",
    b"[" * 10_000,
    b"[" * 10_000 + b"]" * 10_000,
    b'{"name":"x","data":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001,
    b'{"batch":[' + b"[" * 10_000 + b"]" * 10_000 + b"]}",
    b"1" + b"0" * 400,
    b'{"id":1' + b"0" * 400 + b',"name":1' + b"0" * 400 + b',"anonymous_id":-1' + b"0" * 400 + b"}",
    b'{"name":"x","data":{"n":1' + b"0" * 5000 + b"}}",
    b"NaN",
    b'{"name":NaN}',
    b'{"name":"x","timestamp":Infinity}',
    b'{"name":"a","name":"b"}',
    b'{"id":"u2","id":"u1"}',
    b"\xff\xfe",
    b'{"name":"\xc3\x28"}',
    b'{"name":"\xed\xa0\x80"}',
    b'{"name":"\\ud800"}',
    b"\xef\xbb\xbf{}",
    b'{"name":"x"}\x00',
    b'{"batch":[{"type":"person","action":"identify","identifiers":{"id":"u1"}}]}' * 2,
]
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(_dumps),
    st.dictionaries(KEYS, JSON_VALUES, max_size=6).map(_dumps),
    st.lists(st.tuples(KEYS, JSON_VALUES), max_size=6).map(_raw_object),
    V2_ITEMS.map(_dumps),
    st.lists(V2_ITEMS | NEAR_VALID_ITEMS, max_size=5).map(lambda items: _dumps({"batch": items})),
    NEAR_VALID_ITEMS.map(_dumps),
    st.sampled_from(SPECIAL_BODIES),
)
PIECES = st.sampled_from(
    ["", "%", "%2", "%2F", "%2f", "%ZZ", "%ff", "%E2%82", "%E2%82%AC", "%00", "%25", "cio_",
     "bob%40x.com", "..", ".", "é", "😀", " ", "?", "&", "=", "#", "\x00", "\ud800", "a"]
)  # fmt: skip
SEGMENTS = st.text(max_size=12) | st.lists(PIECES, max_size=5).map("".join)


@st.composite
def route_paths(draw: st.DrawFn) -> str:
    """A route template with its ``{params}`` filled by arbitrary segments, maybe a query."""
    template = draw(st.sampled_from([r.template for r in ROUTES]))
    parts = [draw(SEGMENTS) if p.startswith("{") else p for p in template.split("/")]
    path = "/".join(parts)
    if draw(st.booleans()):
        path += "?" + draw(st.lists(PIECES | st.text(max_size=5), max_size=5).map("".join))
    return path


PATHS = st.one_of(
    route_paths(),
    st.text(max_size=60),
    st.lists(SEGMENTS, max_size=6).map("/".join),
)
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "put", "post", ""]) | st.text(
    max_size=7
)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=400)
@given(METHODS, PATHS, BODIES)
@example("POST", "/api/v1/events", b"[" * 10_000)
@example("PUT", "/api/v1/customers/%", b'{"a":NaN}')
@example("POST", "/api/v2/batch", b'{"batch":[1,{"type":"person"}]}')
def test_evaluate_never_raises_on_anything(method: str, path: str, body: bytes) -> None:
    request = Request(method=method, path=path, body=body)
    check_invariants(request, safe_evaluate(request))


@settings(max_examples=600)
@given(st.sampled_from(ROUTES), SEGMENTS, SEGMENTS, BODIES)
def test_every_route_survives_any_body(route: Any, seg1: str, seg2: str, body: bytes) -> None:
    """Aim at real routes so most inputs reach the body checks, not the 404."""
    path = route.template.replace("{device_id}", seg2)
    for name in ("{identifier}", "{segment_id}", "{form_id}", "{delivery_id}"):
        path = path.replace(name, seg1)
    request = Request(method=route.method, path=path, body=body)
    check_invariants(request, safe_evaluate(request))


@settings(max_examples=300)
@given(st.lists(NEAR_VALID_ITEMS | v2_items(FINITE_VALUES) | FINITE_VALUES, min_size=1, max_size=6))
def test_207_operations_are_exactly_the_items_entity_accepts(items: list[Any]) -> None:
    """Each item is judged as if it had been sent alone to ``/api/v2/entity``."""
    body = _dumps({"batch": items})
    request = Request(method="POST", path="/api/v2/batch", body=body)
    result = safe_evaluate(request)
    check_invariants(request, result)
    alone = [
        safe_evaluate(Request(method="POST", path="/api/v2/entity", body=_dumps(item)))
        for item in items
    ]
    # A non-object item is "batch item must be a hash" in a batch, "body must be an object" alone.
    valid = [i for i, r in enumerate(alone) if r.status == 200]
    assert [op.batch_index for op in result.operations] == valid
    assert [op.body for op in result.operations] == [items[i] for i in valid]
    assert result.status == (200 if len(valid) == len(items) else 207)
    for index, (item, single) in enumerate(zip(items, alone, strict=True)):
        mine = [e for e in result.errors if e.batch_index == index]
        if not isinstance(item, dict):
            assert [e.code for e in mine] == ["v2_item_not_object"]
            continue
        assert [(e.code, e.message, e.field, e.reason) for e in mine] == [
            (e.code, e.message, e.field, e.reason) for e in single.errors
        ]
        assert [(w.code, w.field) for w in result.warnings if w.batch_index == index] == [
            (w.code, w.field) for w in single.warnings
        ]


@settings(max_examples=200)
@given(st.sampled_from(ROUTES), JSON_VALUES)
def test_400_means_no_operations(route: Any, value: Any) -> None:
    path = route.template.replace("{identifier}", "u1").replace("{device_id}", "d")
    path = path.replace("{segment_id}", "1").replace("{form_id}", "f").replace("{delivery_id}", "x")
    request = Request(method=route.method, path=path, body=_dumps(value))
    result = safe_evaluate(request)
    check_invariants(request, result)
    if result.status == 400:
        assert result.operations == ()
        assert len(result.errors) >= 1


# --- named hostile inputs -----------------------------------------------------------------------

BODY_ROUTES = [
    (r.method, r.template.replace("{identifier}", "u1").replace("{device_id}", "d")
     .replace("{segment_id}", "1").replace("{form_id}", "f").replace("{delivery_id}", "x"))
    for r in ROUTES
]  # fmt: skip
IGNORED_BODY = {"DELETE", "GET"}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize(
    "body",
    [b"[" * 10_000, b"[" * 10_000 + b"]" * 10_000, b"NaN", b"\xff", b'{"a":"\\udc00"}'],
)
def test_unparseable_bodies(method: str, path: str, body: bytes) -> None:
    """Refused as invalid JSON, except where Customer.io ignores the body altogether."""
    result = evaluate(Request(method=method, path=path, body=body))
    ignored = method in IGNORED_BODY or path.endswith(("/suppress", "/unsuppress"))
    if ignored:
        assert (result.status, result.errors) == (200, ())
        assert result.operations[0].body is None
    else:
        assert result.status == 400
        assert [e.code for e in result.errors] == ["invalid_json"]


def test_huge_integers() -> None:
    big = 10**300  # a double still holds it

    def run(method: str, path: str, body: Any) -> ContractResult:
        return evaluate(Request(method=method, path=path, body=_dumps(body)))

    ok = run("PUT", "/api/v1/customers/u1", {"score": big, "n": -big})
    assert (ok.status, ok.operations[0].body) == (200, {"score": big, "n": -big})
    mismatch = run("PUT", "/api/v1/customers/u1", {"id": big})
    assert [e.code for e in mismatch.errors] == ["id_mismatch"]
    long_name = run("POST", "/api/v1/events", {"name": big})
    assert [e.code for e in long_name.errors] == ["event_name_too_long"]
    anon = run("POST", "/api/v1/events", {"name": "x", "anonymous_id": big})
    assert anon.operations[0].identifier is not None
    assert anon.operations[0].identifier.value == str(big)
    v2 = run(
        "POST",
        "/api/v2/entity",
        {"type": "person", "action": "event", "identifiers": {"id": big}, "name": "x"},
    )
    assert v2.status == 200
    assert [w.code for w in v2.warnings] == ["person_id_too_long"]
    # Beyond a double (like 1e400), and beyond what Python will print (4300 digits), an
    # integer is not JSON trackguard can use.
    for digits in (400, 5000):
        huge = evaluate(
            Request(
                method="PUT", path="/api/v1/customers/u1", body=b'{"a":1' + b"0" * digits + b"}"
            )
        )
        assert [e.code for e in huge.errors] == ["invalid_json"]


def test_duplicate_keys_last_one_wins() -> None:
    result = evaluate(
        Request(method="PUT", path="/api/v1/customers/u1", body=b'{"id":"u2","id":"u1"}')
    )
    assert (result.status, result.operations[0].body) == (200, {"id": "u1"})
    event = evaluate(Request(method="POST", path="/api/v1/events", body=b'{"name":"","name":"ok"}'))
    assert (event.status, event.operations[0].name) == (200, "ok")


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"type": ["person"], "action": "identify"}, "v2_type_invalid"),
        ({"type": {"p": 1}, "action": "identify"}, "v2_type_invalid"),
        ({"type": "person", "action": ["identify"]}, "v2_action_invalid"),
        ({"type": "object", "action": {}}, "v2_action_invalid"),
    ],
)
def test_v2_unhashable_type_or_action_is_an_error_not_a_crash(item: Any, code: str) -> None:
    for path, body, status in [
        ("/api/v2/entity", item, 400),
        ("/api/v2/batch", {"batch": [item]}, 207),
    ]:
        result = evaluate(Request(method="POST", path=path, body=_dumps(body)))
        assert result.status == status
        assert [e.code for e in result.errors] == [code]
