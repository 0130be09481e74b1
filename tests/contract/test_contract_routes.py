"""Routes: every Track API route is matched, its parameters decoded, people classified.

Drop-in compatibility starts here: the official SDKs percent-encode an identifier as one path
segment, so trackguard must decode exactly what they encode and route exactly what Customer.io
routes. Unknown paths are 404 and known paths with another method are 405 with the allowed
methods, so a gateway can answer ``Allow``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract import Identifier, classify, is_email
from trackguard.contract.routes import ROUTES, NoRoute, RouteMatch, match

# The 18 operations of Customer.io's OpenAPI document, plus the Ruby SDK's legacy push path.
EXPECTED_ROUTES = [
    ("GET", "/api/v1/accounts/region", "workspace", "get_region", "v1", True),
    ("PUT", "/api/v1/customers/{identifier}", "person", "identify", "v1", True),
    ("DELETE", "/api/v1/customers/{identifier}", "person", "delete", "v1", True),
    ("PUT", "/api/v1/customers/{identifier}/devices", "person", "add_device", "v1", True),
    (
        "DELETE",
        "/api/v1/customers/{identifier}/devices/{device_id}",
        "person",
        "delete_device",
        "v1",
        True,
    ),
    ("POST", "/api/v1/customers/{identifier}/suppress", "person", "suppress", "v1", True),
    ("POST", "/api/v1/customers/{identifier}/unsuppress", "person", "unsuppress", "v1", True),
    ("POST", "/api/v1/customers/{identifier}/events", "person", "event", "v1", True),
    ("POST", "/api/v1/events", "person", "anonymous_event", "v1", True),
    ("POST", "/api/v1/merge_customers", "person", "merge", "v1", True),
    (
        "POST",
        "/api/v1/segments/{segment_id}/add_customers",
        "segment",
        "add_to_segment",
        "v1",
        True,
    ),
    (
        "POST",
        "/api/v1/segments/{segment_id}/remove_customers",
        "segment",
        "remove_from_segment",
        "v1",
        True,
    ),
    ("POST", "/api/v1/forms/{form_id}/submit", "form", "submit_form", "v1", True),
    ("POST", "/api/v1/metrics", "metric", "metric", "v1", False),
    ("POST", "/api/v1/push/events", "metric", "push_metric", "v1", False),
    ("POST", "/push/events", "metric", "push_metric", "v1", False),
    ("POST", "/unsubscribe/{delivery_id}", "metric", "unsubscribe", "v1", False),
    ("POST", "/api/v2/entity", "entity", "entity", "v2", True),
    ("POST", "/api/v2/batch", "batch", "batch", "v2", True),
]


def test_route_table_is_exactly_the_track_api() -> None:
    got = [(r.method, r.template, r.type, r.action, r.api, r.auth) for r in ROUTES]
    assert got == EXPECTED_ROUTES
    assert len(ROUTES) == 19
    assert len({r.key for r in ROUTES}) == 19


V2_PERSON = {"type": "person", "action": "identify", "identifiers": {"id": "u1"}}
U1 = Identifier("id", "u1")

# (method, concrete path, body, status, operation type, operation action, identifier)
VALID_CALLS: list[tuple[str, str, Any, int, str, str, Identifier | None]] = [
    ("GET", "/api/v1/accounts/region", None, 200, "workspace", "get_region", None),
    ("PUT", "/api/v1/customers/u1", {"plan": "pro"}, 200, "person", "identify", U1),
    ("DELETE", "/api/v1/customers/u1", None, 200, "person", "delete", U1),
    (
        "PUT",
        "/api/v1/customers/u1/devices",
        {"device": {"id": "tok", "platform": "ios"}},
        200,
        "person",
        "add_device",
        U1,
    ),
    ("DELETE", "/api/v1/customers/u1/devices/tok", None, 200, "person", "delete_device", U1),
    ("POST", "/api/v1/customers/u1/suppress", None, 200, "person", "suppress", U1),
    ("POST", "/api/v1/customers/u1/unsuppress", None, 200, "person", "unsuppress", U1),
    ("POST", "/api/v1/customers/u1/events", {"name": "signed_up"}, 200, "person", "event", U1),
    (
        "POST",
        "/api/v1/events",
        {"name": "viewed", "anonymous_id": "a1"},
        200,
        "person",
        "anonymous_event",
        Identifier("anonymous_id", "a1"),
    ),
    (
        "POST",
        "/api/v1/merge_customers",
        {"primary": {"id": "u1"}, "secondary": {"email": "old@example.com"}},
        200,
        "person",
        "merge",
        None,
    ),
    (
        "POST",
        "/api/v1/segments/7/add_customers",
        {"ids": ["u1"]},
        200,
        "segment",
        "add_to_segment",
        Identifier("segment", "7"),
    ),
    (
        "POST",
        "/api/v1/segments/7/remove_customers",
        {"ids": ["u1"]},
        200,
        "segment",
        "remove_from_segment",
        Identifier("segment", "7"),
    ),
    (
        "POST",
        "/api/v1/forms/newsletter/submit",
        {"data": {"email": "a@example.com", "name": "Ann"}},
        204,
        "form",
        "submit_form",
        Identifier("form", "newsletter"),
    ),
    (
        "POST",
        "/api/v1/metrics",
        {"delivery_id": "d1", "metric": "opened"},
        200,
        "metric",
        "metric",
        None,
    ),
    (
        "POST",
        "/api/v1/push/events",
        {"delivery_id": "d1", "event": "opened", "device_id": "t", "timestamp": 1700000000},
        200,
        "metric",
        "push_metric",
        None,
    ),
    (
        "POST",
        "/push/events",
        {"delivery_id": "d1", "event": "opened", "device_id": "t", "timestamp": 1700000000},
        200,
        "metric",
        "push_metric",
        None,
    ),
    ("POST", "/unsubscribe/dlv1", {"unsubscribe": True}, 200, "metric", "unsubscribe", None),
    ("POST", "/api/v2/entity", V2_PERSON, 200, "person", "identify", U1),
    ("POST", "/api/v2/batch", {"batch": [V2_PERSON]}, 200, "person", "identify", U1),
]


def test_every_route_has_a_valid_call() -> None:
    hits = [match(method, path) for method, path, *_ in VALID_CALLS]
    assert {h.route.key for h in hits if isinstance(h, RouteMatch)} == {r.key for r in ROUTES}
    assert all(isinstance(h, RouteMatch) for h in hits)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "type_", "action", "ident"),
    VALID_CALLS,
    ids=[f"{c[0]} {c[1]}" for c in VALID_CALLS],
)
def test_valid_call_on_each_route(
    call: Any,
    method: str,
    path: str,
    body: Any,
    status: int,
    type_: str,
    action: str,
    ident: Identifier | None,
) -> None:
    result = call(method, path, body)
    assert result.status == status
    assert result.errors == ()
    assert result.warnings == ()
    assert len(result.operations) == 1
    op = result.operations[0]
    assert (op.type, op.action, op.identifier) == (type_, action, ident)
    route = match(method, path)
    assert isinstance(route, RouteMatch)
    assert op.route == route.route.key
    assert op.method == method
    assert op.api == route.route.api
    if route.route.api == "v1":
        assert op.path == path
        assert op.batch_index is None
        assert op.body == body
    else:
        assert op.path == route.route.template
        assert op.body == V2_PERSON
        assert op.batch_index == (0 if path.endswith("batch") else None)


@pytest.mark.parametrize(
    ("method", "path", "template", "params", "query"),
    [
        (
            "PUT",
            "/api/v1/customers/a%2Fb",
            "/api/v1/customers/{identifier}",
            {"identifier": "a/b"},
            {},
        ),
        (
            "PUT",
            "/api/v1/customers/bob%40x.com",
            "/api/v1/customers/{identifier}",
            {"identifier": "bob@x.com"},
            {},
        ),
        ("PUT", "/api/v1/customers/%20", "/api/v1/customers/{identifier}", {"identifier": " "}, {}),
        (
            "PUT",
            "/api/v1/customers/%E2%82%AC%2B1",
            "/api/v1/customers/{identifier}",
            {"identifier": "€+1"},
            {},
        ),
        (
            "PUT",
            "/api/v1/customers/a+b",
            "/api/v1/customers/{identifier}",
            {"identifier": "a+b"},
            {},
        ),
        (
            "PUT",
            "/api/v1/customers/50%2525",
            "/api/v1/customers/{identifier}",
            {"identifier": "50%25"},
            {},
        ),
        (
            "DELETE",
            "/api/v1/customers/bob%40x.com/devices/tok%2F1%20x",
            "/api/v1/customers/{identifier}/devices/{device_id}",
            {"identifier": "bob@x.com", "device_id": "tok/1 x"},
            {},
        ),
        (
            "POST",
            "/api/v1/customers/cio_03000001/events",
            "/api/v1/customers/{identifier}/events",
            {"identifier": "cio_03000001"},
            {},
        ),
        (
            "POST",
            "/api/v1/segments/42/add_customers?id_type=email",
            "/api/v1/segments/{segment_id}/add_customers",
            {"segment_id": "42"},
            {"id_type": "email"},
        ),
        (
            "POST",
            "/api/v1/segments/42/remove_customers?id_type=cio_id&x=",
            "/api/v1/segments/{segment_id}/remove_customers",
            {"segment_id": "42"},
            {"id_type": "cio_id", "x": ""},
        ),
        (
            "POST",
            "/api/v1/forms/my%20form/submit",
            "/api/v1/forms/{form_id}/submit",
            {"form_id": "my form"},
            {},
        ),
        (
            "POST",
            "/unsubscribe/dlv%3D1",
            "/unsubscribe/{delivery_id}",
            {"delivery_id": "dlv=1"},
            {},
        ),
        (
            "PUT",
            "/api/v1/customers/u1?debug=1",
            "/api/v1/customers/{identifier}",
            {"identifier": "u1"},
            {"debug": "1"},
        ),
        ("POST", "/api/v2/batch?", "/api/v2/batch", {}, {}),
    ],
)
def test_params_and_query_are_decoded(
    method: str, path: str, template: str, params: dict[str, str], query: dict[str, str]
) -> None:
    hit = match(method, path)
    assert isinstance(hit, RouteMatch)
    assert hit.route.template == template
    assert hit.params == params
    assert hit.query == query


def test_method_is_case_insensitive_and_slashes_are_lenient() -> None:
    for method, path in [
        ("put", "/api/v1/customers/u1"),
        ("PUT", "/api/v1/customers/u1/"),
        ("PUT", "//api/v1/customers/u1"),
    ]:
        hit = match(method, path)
        assert isinstance(hit, RouteMatch)
        assert hit.route.key == "PUT /api/v1/customers/{identifier}"
        assert hit.params == {"identifier": "u1"}


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/api",
        "/api/v1",
        "/api/v1/customers",
        "/api/v1/customers/",
        "/api/v1/customers/u1/unknown",
        "/api/v1/customers/u1/devices/tok/extra",
        "/api/v1/segments/7",
        "/api/v1/forms/f1",
        "/api/v2",
        "/api/v3/batch",
        "/unsubscribe",
        "/push",
        "/API/V1/EVENTS",
        "/api/v1/%65vents",
        "/events",
    ],
)
def test_unknown_paths_are_404(call: Any, answer: Any, path: str) -> None:
    assert match("POST", path) == NoRoute(404)
    result = call("POST", path, {"name": "x"})
    assert result.status == 404
    assert result.route is None
    assert result.operations == ()
    assert [(e.code, e.message, e.verified) for e in result.errors] == [
        ("not_found", "not found", False)
    ]
    assert answer("POST", path, {"name": "x"}) == (
        404,
        b'{\n  "meta": {\n    "errors": [\n      "not found"\n    ]\n  }\n}\n',
    )


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/customers/u1", ("DELETE", "PUT")),
        ("POST", "/api/v1/customers/u1", ("DELETE", "PUT")),
        ("POST", "/api/v1/customers/u1/devices", ("PUT",)),
        ("PUT", "/api/v1/customers/u1/devices/tok", ("DELETE",)),
        ("DELETE", "/api/v1/customers/u1/devices", ("PUT",)),
        ("GET", "/api/v1/customers/u1/events", ("POST",)),
        ("PUT", "/api/v1/customers/u1/suppress", ("POST",)),
        ("GET", "/api/v1/events", ("POST",)),
        ("POST", "/api/v1/accounts/region", ("GET",)),
        ("GET", "/api/v1/merge_customers", ("POST",)),
        ("GET", "/api/v1/segments/7/add_customers", ("POST",)),
        ("GET", "/api/v1/forms/f/submit", ("POST",)),
        ("GET", "/api/v1/metrics", ("POST",)),
        ("GET", "/push/events", ("POST",)),
        ("GET", "/unsubscribe/d1", ("POST",)),
        ("PUT", "/api/v2/batch", ("POST",)),
        ("GET", "/api/v2/entity", ("POST",)),
        ("PATCH", "/api/v1/customers/u1", ("DELETE", "PUT")),
        ("", "/api/v1/events", ("POST",)),
    ],
)
def test_known_paths_with_another_method_are_405(
    call: Any, answer: Any, method: str, path: str, allowed: tuple[str, ...]
) -> None:
    assert match(method, path) == NoRoute(405, allowed)
    result = call(method, path, None)
    assert result.status == 405
    assert result.allowed == allowed
    assert result.route is None
    assert result.operations == ()
    assert [(e.code, e.message) for e in result.errors] == [
        ("method_not_allowed", "method not allowed")
    ]
    assert answer(method, path) == (
        405,
        b'{\n  "meta": {\n    "errors": [\n      "method not allowed"\n    ]\n  }\n}\n',
    )


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("cio_abc", Identifier("cio_id", "abc")),
        ("cio_03000001", Identifier("cio_id", "03000001")),
        ("cio_", Identifier("cio_id", "")),
        ("cio_bob%40x.com", Identifier("cio_id", "bob@x.com")),
        ("CIO_abc", Identifier("id", "CIO_abc")),
        ("cioabc", Identifier("id", "cioabc")),
        ("bob%40x.com", Identifier("email", "bob@x.com")),
        ("Bob.Smith%2Btag%40Example.CO.uk", Identifier("email", "Bob.Smith+tag@Example.CO.uk")),
        ("bob%40x", Identifier("id", "bob@x")),
        ("bob%40x.com.", Identifier("id", "bob@x.com.")),
        ("bob%20smith%40x.com", Identifier("id", "bob smith@x.com")),
        ("a%40b%40c.com", Identifier("id", "a@b@c.com")),
        ("%40x.com", Identifier("id", "@x.com")),
        ("bob%40.com", Identifier("id", "bob@.com")),
        ("%2B15551234567", Identifier("id", "+15551234567")),
        ("5551234567", Identifier("id", "5551234567")),
        ("u1", Identifier("id", "u1")),
        ("a%2Fb", Identifier("id", "a/b")),
        ("%20", Identifier("id", " ")),
    ],
)
def test_path_identifier_is_classified_by_shape(
    call: Any, segment: str, expected: Identifier
) -> None:
    result = call("PUT", f"/api/v1/customers/{segment}", {})
    assert result.status == 200
    assert result.operations[0].identifier == expected


def test_empty_identifier_segment_is_a_missing_id(answer: Any) -> None:
    assert answer("POST", "/api/v1/customers//events", {"name": "x"}) == (
        400,
        b'{\n  "meta": {\n    "errors": [\n      "id attribute must be present"\n    ]\n  }\n}\n',
    )


def test_long_path_id_is_only_a_warning(call: Any) -> None:
    ok = call("PUT", "/api/v1/customers/" + "a" * 150, {})
    assert (ok.status, ok.warnings) == (200, ())
    long = call("PUT", "/api/v1/customers/" + "a" * 151, {})
    assert long.status == 200
    assert [(w.code, w.message, w.field) for w in long.warnings] == [
        (
            "person_id_too_long",
            "person id is longer than Customer.io's documented 150-byte limit",
            "identifier",
        )
    ]
    # An email is not an id: the 150-byte id limit does not apply to it.
    email = call("PUT", "/api/v1/customers/" + "a" * 150 + "%40example.com", {})
    assert (email.status, email.warnings) == (200, ())


_PATH_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(_PATH_TEXT)
def test_sdk_encoding_round_trips(value: str) -> None:
    """Whatever the SDKs encode with ``quote(str(id), safe="")`` decodes back exactly."""
    hit = match("POST", f"/api/v1/customers/{quote(value, safe='')}/events")
    assert isinstance(hit, RouteMatch)
    assert hit.route.action == "event"
    assert hit.params == {"identifier": value}


@given(_PATH_TEXT)
def test_classify_follows_the_shape_rules(value: str) -> None:
    ident = classify(value)
    if value.startswith("cio_"):
        assert ident == Identifier("cio_id", value[4:])
    elif is_email(value):
        assert ident == Identifier("email", value)
        assert value.count("@") == 1
        assert not any(c.isspace() for c in value)
    else:
        assert ident == Identifier("id", value)
