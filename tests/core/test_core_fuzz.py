"""Fuzzing the core: it never raises, never loses or invents an operation, never mutates input,
and what it fixes stays fixed."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trackguard.contract.check import evaluate
from trackguard.contract.operations import Operation, Request
from trackguard.core.pipeline import Checker
from trackguard.core.plancheck import CompiledPlan
from trackguard.core.verdict import OUTCOMES, Verdict
from trackguard.plan.model import Plan

T = 1_764_000_000
FUZZ = settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- generic JSON -------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # inf and nan make the body invalid JSON, which is fuzzing too
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)

# --- realistic, messy Track API traffic ---------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
#: Timestamps in every shape the fix rule handles, kept where to_timestamp is correct (see the
#: strict xfail in test_core_coerce.py for values of 1e20 and up).
timestamps = st.one_of(
    st.integers(min_value=-5, max_value=10**20 - 1),
    st.floats(min_value=-5, max_value=1e19, allow_nan=False),
    st.integers(min_value=0, max_value=10**19).map(str),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(4000, 1, 1)).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from(["2025-11-24T16:00:00Z", "yesterday", "", None, True]),
)
planned_names = st.sampled_from(
    [
        "order_completed",
        "Order Completed",
        "orderCompleted",
        "ORDER-COMPLETED",
        "Purchase",
        "purchase",
        "product_viewed",
        "Product Viewed",
        "added_to_cart",
        "Cart Updated",
        "checkout-started",
        "wishlist_added",
        "Wishlist Added",
        " order_completed ",
        "",
    ]
)
names = st.one_of(
    planned_names,
    planned_names,
    planned_names,
    st.text(alphabet=st.characters(codec="ascii"), max_size=30),
    st.text(max_size=12),
    json_scalars,
)
values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "49.90",
            "abc",
            "usd",
            " EUR",
            "JPY",
            "true",
            "3.0",
            "ORD-1",
            "1001",
            " Ana@Example.COM ",
            "-5",
        ]
    ),
    finite,
)
data_keys = st.sampled_from(
    [
        "order_id",
        "total",
        "currency",
        "item_count",
        "sku",
        "title",
        "price",
        "quantity",
        "cart_id",
        "cart_total",
        "order_ref",
        "schema_version",
        "coupon",
    ]
)
data_dicts = st.dictionaries(data_keys | st.text(max_size=6), values, max_size=7)
event_data = st.one_of(data_dicts, data_dicts, data_dicts, json_values)
attribute_keys = st.sampled_from(
    [
        "email",
        "first_name",
        "lifetime_value",
        "created_at",
        "vip",
        "id",
        "anonymous_id",
        "nickname",
        "unsubscribed",
        "cio_subscription_preferences.topics.topic_1",
    ]
)
attributes = st.dictionaries(attribute_keys | st.text(max_size=6), values | timestamps, max_size=6)
person_paths = st.sampled_from(
    [
        "/api/v1/customers/cus_1",
        "/api/v1/customers/ana%40example.com",
        "/api/v1/customers/cio_abc",
    ]
)


def _event_body(name: Any, data: Any, ts: Any, extra: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **extra}
    if data is not None:
        body["data"] = data
    if ts is not None:
        body["timestamp"] = ts
    return body


event_extras = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["01HZX3V9Q8W5C2M7K4N6P1R3T9", "not-a-ulid", 5]),
        "type": st.sampled_from(["event", "page", "screen", "other"]),
        "anonymous_id": st.sampled_from(["anon-1", 123, ""]),
    },
)
event_bodies = st.builds(_event_body, names, event_data, timestamps, event_extras)

person_identifiers = st.sampled_from(
    [
        {"id": "cus_1"},
        {"id": "cus_1"},
        {"email": "ana@example.com"},
        {"id": "ana@example.com"},
        {"anonymous_id": "anon-1"},
        {"cio_id": "abc"},
    ]
)
identifiers = st.one_of(
    person_identifiers,
    st.sampled_from([{"id": "a", "email": "b"}, {}, {"object_type_id": "1", "object_id": "x"}]),
    json_values,
)


def _v2_item(kind: Any, action: Any, idents: Any, name: Any, attrs: Any, ts: Any) -> Any:
    item: dict[str, Any] = {"type": kind, "action": action, "identifiers": idents}
    if name is not None:
        item["name"] = name
    if attrs is not None:
        item["attributes"] = attrs
    if ts is not None:
        item["timestamp"] = ts
    return item


person_items = st.builds(
    _v2_item,
    st.just("person"),
    st.sampled_from(["event", "event", "identify", "page"]),
    person_identifiers,
    names,
    st.one_of(event_data, attributes),
    timestamps,
)
#: Items the contract accepts, so that most batches reach the plan.
valid_person_items = st.builds(
    _v2_item,
    st.just("person"),
    st.sampled_from(["event", "event", "identify"]),
    person_identifiers,
    planned_names.filter(bool),
    st.one_of(data_dicts, attributes),
    timestamps,
)
v2_items = st.one_of(
    person_items,
    person_items,
    person_items,
    st.builds(
        _v2_item,
        st.sampled_from(["person", "person", "person", "object", "delivery", "nope"]),
        st.sampled_from(["event", "identify", "page", "screen", "delete", "bogus"]),
        identifiers,
        names,
        st.one_of(event_data, attributes),
        timestamps,
    ),
    json_values,
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A request on the event, identify, anonymous, entity or batch route."""
    route = draw(st.sampled_from(["event", "identify", "anonymous", "entity", "batch"]))
    body: Any
    if route == "event":
        method, path = "POST", draw(person_paths) + "/events"
        body = draw(event_bodies)
    elif route == "identify":
        method, path, body = "PUT", draw(person_paths), draw(attributes)
    elif route == "anonymous":
        method, path, body = "POST", "/api/v1/events", draw(event_bodies)
    elif route == "entity":
        method, path, body = "POST", "/api/v2/entity", draw(v2_items)
    else:
        method, path = "POST", "/api/v2/batch"
        items = st.one_of(valid_person_items, valid_person_items, valid_person_items, v2_items)
        body = {"batch": draw(st.lists(items, max_size=6))}
    return Request(method=method, path=path, body=json.dumps(body).encode())


any_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
)
any_paths = st.sampled_from(
    [
        ("POST", "/api/v1/customers/cus_1/events"),
        ("POST", "/api/v1/events"),
        ("PUT", "/api/v1/customers/cus_1"),
        ("PUT", "/api/v1/customers/ana%40example.com"),
        ("POST", "/api/v2/entity"),
        ("POST", "/api/v2/batch"),
    ]
)


# --- invariants ---------------------------------------------------------------------------------


def _assert_consistent(verdict: Verdict, request: Request) -> None:
    contract = evaluate(request)
    assert verdict.outcome in OUTCOMES
    assert len(verdict.operations) + len(verdict.rejected) == len(contract.operations)
    sent = sorted(op.batch_index or 0 for op in (*verdict.operations, *verdict.rejected))
    assert sent == sorted(op.batch_index or 0 for op in contract.operations)
    assert verdict.contract_errors == contract.errors
    if not contract.accepted:
        assert verdict.outcome == "invalid"
        assert (verdict.operations, verdict.rejected, verdict.changes) == ((), (), ())
    if verdict.rejected:
        assert verdict.outcome in ("rejected", "invalid")
        assert any(v.action == "reject" for v in verdict.violations)
    if verdict.outcome == "accepted":
        assert (verdict.violations, verdict.changes) == ((), ())
    if verdict.outcome == "fixed":
        assert verdict.changes != ()
        assert all(v.action == "fix" for v in verdict.violations)
    assert (verdict.changes != ()) == any(v.action == "fix" for v in verdict.violations)
    json.loads(verdict.response or b"{}")


@pytest.fixture(scope="module")
def checkers(d2c_plan: Plan) -> tuple[Checker, Checker, Checker]:
    return Checker(d2c_plan), Checker(d2c_plan, strict=True), Checker(None)


@FUZZ
@given(requests())
def test_realistic_traffic(checkers: tuple[Checker, ...], request: Request) -> None:
    for checker in checkers:
        _assert_consistent(checker.check(request), request)


@FUZZ
@given(any_paths, any_bodies)
def test_arbitrary_bodies(
    checkers: tuple[Checker, ...], route: tuple[str, str], body: bytes
) -> None:
    request = Request(method=route[0], path=route[1], body=body)
    for checker in checkers:
        _assert_consistent(checker.check(request), request)


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=5))
def test_arbitrary_batch_items(checkers: tuple[Checker, ...], items: list[Any]) -> None:
    request = Request(
        method="POST", path="/api/v2/batch", body=json.dumps({"batch": items}).encode()
    )
    for checker in checkers:
        _assert_consistent(checker.check(request), request)


@FUZZ
@given(requests())
def test_plan_never_mutates_operation_bodies(d2c_plan: Plan, request: Request) -> None:
    compiled = CompiledPlan(d2c_plan)
    for op in evaluate(request).operations:
        before = copy.deepcopy(op.body)
        result = compiled.apply(op)
        assert _same(op.body, before)
        if not result.changes:
            assert result.operation.body is op.body


def _same(a: Any, b: Any) -> bool:
    """Deep equality where nan equals nan (bodies are decoded JSON, so nan never occurs)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _recheck(checker: Checker, op: Operation) -> Verdict:
    body = json.dumps(op.body).encode()
    if op.api == "v2":
        return checker.check(Request(method="POST", path="/api/v2/entity", body=body))
    return checker.check(Request(method=op.method, path=op.path, body=body))


@FUZZ
@given(requests())
def test_fixes_are_idempotent_and_stay_valid(
    checkers: tuple[Checker, ...], request: Request
) -> None:
    checker = checkers[0]
    verdict = checker.check(request)
    for op in (*verdict.operations, *verdict.rejected):
        again = _recheck(checker, op)
        assert again.contract_errors == ()
        assert again.changes == ()


@FUZZ
@given(st.sampled_from(["/api/v2/entity", "/api/v2/batch"]), json_values, json_values)
@example("/api/v2/entity", [1], "event")
@example("/api/v2/batch", "person", {"a": 1})
def test_any_v2_type_and_action(
    checkers: tuple[Checker, ...], path: str, kind: Any, action: Any
) -> None:
    item = {"type": kind, "action": action, "identifiers": {"id": "cus_1"}, "name": "x"}
    body = item if path.endswith("entity") else {"batch": [item]}
    request = Request(method="POST", path=path, body=json.dumps(body).encode())
    for checker in checkers:
        _assert_consistent(checker.check(request), request)
