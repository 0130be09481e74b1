"""``CompiledPlan.apply``: one test per normalization and per violation code, exactly."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from trackguard.contract.check import evaluate
from trackguard.contract.operations import Identifier, Request
from trackguard.core.plancheck import CompiledPlan, OpResult
from trackguard.core.verdict import Change, Violation
from trackguard.plan.model import (
    Action,
    Convention,
    EventSpec,
    EventVersion,
    IdentityPolicy,
    NamingPolicy,
    Plan,
    Policy,
    PropertySpec,
    PropertyType,
    TimestampPolicy,
    UnplannedPolicy,
)

P = PropertySpec
EVENTS = "/api/v1/customers/cus_1/events"
EMAIL_EVENTS = "/api/v1/customers/ana%40example.com/events"
PERSON = "/api/v1/customers/cus_1"
ANON = "/api/v1/events"
ENTITY = "/api/v2/entity"
T = 1_764_000_000  # 2025-11-24T16:00:00Z
ISO = "2025-11-24T16:00:00Z"
OC = "events.order_completed"


def apply(plan: Plan, method: str, path: str, body: Any) -> OpResult:
    """The plan applied to the one operation Customer.io's contract accepts in the request."""
    result = evaluate(Request(method=method, path=path, body=json.dumps(body).encode()))
    assert result.errors == ()
    (op,) = result.operations
    return CompiledPlan(plan).apply(op)


def order(**data: Any) -> dict[str, Any]:
    """A v1 order_completed body; ``data`` overrides the clean defaults (None removes)."""
    base: dict[str, Any] = {"order_id": "ORD-1", "total": 49.9, "currency": "USD"}
    base.update(data)
    return {"name": "order_completed", "data": {k: v for k, v in base.items() if v is not None}}


def v(
    code: str, rule: str, path: str, message: str, action: str, batch_index: int | None = None
) -> Violation:
    return Violation(
        code=code, rule=rule, path=path, message=message, action=action, batch_index=batch_index
    )


def ch(path: str, before: Any, after: Any, rule: str, batch_index: int | None = None) -> Change:
    return Change(path=path, before=before, after=after, rule=rule, batch_index=batch_index)


def one_event(*props: PropertySpec, **plan_kw: Any) -> Plan:
    """A plan with the single event ``review_submitted``."""
    spec = EventSpec(name="review_submitted", properties=props)
    return Plan(name="t", version="1", events={"review_submitted": spec}, **plan_kw)


def review(**data: Any) -> dict[str, Any]:
    return {"name": "review_submitted", "data": data}


RS = "events.review_submitted.properties"


# --- a clean operation --------------------------------------------------------------------------


def test_clean_event_has_no_findings_and_keeps_the_body_object(d2c_plan: Plan) -> None:
    result = evaluate(Request(method="POST", path=EVENTS, body=json.dumps(order()).encode()))
    (op,) = result.operations
    r = CompiledPlan(d2c_plan).apply(op)
    assert (r.violations, r.changes, r.rejected) == ((), (), False)
    assert r.operation.body is op.body
    assert r.dedupe_key == "order_completed:ORD-1"
    assert r.operation.dedupe_key == "order_completed:ORD-1"


# --- event names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["Order Completed", "orderCompleted", "order-completed", "ORDER_COMPLETED", "OrderCompleted"],
)
def test_event_name_drift_is_renamed(d2c_plan: Plan, raw: str) -> None:
    body = order()
    body["name"] = raw
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "event_name_drift",
            "naming",
            "name",
            f"event {raw!r} is 'order_completed' written differently; renamed to 'order_completed'",
            "fix",
        ),
    )
    assert r.changes == (ch("name", raw, "order_completed", "naming"),)
    assert r.rejected is False
    assert r.operation.body == order()


def test_declared_alias_is_renamed_to_canonical(d2c_plan: Plan) -> None:
    body = order()
    body["name"] = "Purchase"
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "event_alias",
            f"{OC}.aliases",
            "name",
            "event 'Purchase' is an alias of 'order_completed'; renamed to 'order_completed'",
            "fix",
        ),
    )
    assert r.changes == (ch("name", "Purchase", "order_completed", f"{OC}.aliases"),)
    assert r.operation.body == order()


def test_alias_written_differently_is_drift(d2c_plan: Plan) -> None:
    body = order()
    body["name"] = "purchase"
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert [x.code for x in r.violations] == ["event_name_drift"]
    assert r.changes == (ch("name", "purchase", "order_completed", "naming"),)


def test_surrounding_spaces_are_not_drift(d2c_plan: Plan) -> None:
    body = order()
    body["name"] = " order_completed "
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert (r.violations, r.changes) == ((), ())


@pytest.mark.parametrize(("action", "rejected"), [("warn", False), ("reject", True)])
def test_naming_drift_without_fix(d2c_plan: Plan, action: Action, rejected: bool) -> None:
    plan = msgspec.structs.replace(d2c_plan, naming=NamingPolicy(action=action))
    body = order()
    body["name"] = "Order Completed"
    r = apply(plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "event_name_drift",
            "naming",
            "name",
            "event 'Order Completed' is 'order_completed' written differently",
            action,
        ),
    )
    assert r.changes == ()
    assert r.rejected is rejected
    assert r.operation.body == body


@pytest.mark.parametrize(
    ("policy", "expected", "rejected"),
    [
        ("allow", (), False),
        (
            "warn",
            (
                v(
                    "event_unplanned",
                    "unplanned.events",
                    "name",
                    "event 'wishlist_added' is not in the tracking plan",
                    "warn",
                ),
            ),
            False,
        ),
        (
            "reject",
            (
                v(
                    "event_unplanned",
                    "unplanned.events",
                    "name",
                    "event 'wishlist_added' is not in the tracking plan",
                    "reject",
                ),
            ),
            True,
        ),
    ],
)
def test_unplanned_event(
    d2c_plan: Plan, policy: Policy, expected: tuple[Violation, ...], rejected: bool
) -> None:
    plan = msgspec.structs.replace(d2c_plan, unplanned=UnplannedPolicy(events=policy))
    r = apply(plan, "POST", EVENTS, {"name": "wishlist_added", "data": {"anything": 1}})
    assert r.violations == expected
    assert r.changes == ()
    assert r.rejected is rejected
    assert r.dedupe_key is None


def test_unplanned_event_is_renamed_to_the_convention(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {"name": "Wishlist Added"})
    assert r.violations == (
        v(
            "event_unplanned",
            "unplanned.events",
            "name",
            "event 'Wishlist Added' is not in the tracking plan",
            "warn",
        ),
        v(
            "event_name_convention",
            "naming",
            "name",
            "event 'Wishlist Added' does not follow snake_case; renamed to 'wishlist_added'",
            "fix",
        ),
    )
    assert r.changes == (ch("name", "Wishlist Added", "wishlist_added", "naming"),)
    assert r.rejected is False


@pytest.mark.parametrize(
    ("convention", "raw", "fixed"),
    [
        ("camelCase", "wishlist_added", "wishlistAdded"),
        ("PascalCase", "wishlist added", "WishlistAdded"),
        ("kebab-case", "WishlistAdded", "wishlist-added"),
    ],
)
def test_unplanned_event_convention_variants(convention: Convention, raw: str, fixed: str) -> None:
    plan = Plan(
        naming=NamingPolicy(convention=convention),
        unplanned=UnplannedPolicy(events="allow"),
    )
    r = apply(plan, "POST", EVENTS, {"name": raw})
    assert r.violations == (
        v(
            "event_name_convention",
            "naming",
            "name",
            f"event {raw!r} does not follow {convention}; renamed to {fixed!r}",
            "fix",
        ),
    )
    assert r.changes == (ch("name", raw, fixed, "naming"),)


def test_convention_none_never_renames() -> None:
    plan = Plan(naming=NamingPolicy(convention="none"), unplanned=UnplannedPolicy(events="allow"))
    r = apply(plan, "POST", EVENTS, {"name": "Wishlist Added"})
    assert (r.violations, r.changes) == ((), ())


def test_snake_case_name_with_digits_is_not_renamed() -> None:
    plan = Plan(unplanned=UnplannedPolicy(events="allow"))
    r = apply(plan, "POST", EVENTS, {"name": "step1_completed"})
    assert r.changes == ()


def test_convention_fix_keeps_non_ascii_letters() -> None:
    plan = Plan(unplanned=UnplannedPolicy(events="allow"))
    r = apply(plan, "POST", EVENTS, {"name": "Café Visited"})
    assert r.changes == (ch("name", "Café Visited", "café_visited", "naming"),)


def test_convention_fix_never_breaks_the_name_limit() -> None:
    raw = (
        "thisIsAVeryLongEventNameThatKeepsGoingAndGoingForever"
        "AndEverUntilItIsNearlyHundredBytesLong"
    )
    assert len(raw) == 91
    r = apply(Plan(), "POST", EVENTS, {"name": raw})
    assert r.operation.body is not None
    name = r.operation.body["name"]
    assert len(name.encode()) <= 100


# --- property coercions (fix) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "raw", "fixed", "message"),
    [
        (
            P(name="total", type="number", action="fix"),
            "49.90",
            49.9,
            "'total' should be number, got string '49.90'; converted to 49.9",
        ),
        (
            P(name="qty", type="integer", action="fix"),
            "3.0",
            3,
            "'qty' should be integer, got string '3.0'; converted to 3",
        ),
        (
            P(name="qty", type="integer", action="fix"),
            2.0,
            2,
            "'qty' should be integer, got number 2.0; converted to 2",
        ),
        (
            P(name="gift", type="boolean", action="fix"),
            "true",
            True,
            "'gift' should be boolean, got string 'true'; converted to true",
        ),
        (
            P(name="sku", type="string", action="fix"),
            12,
            "12",
            "'sku' should be string, got integer 12; converted to '12'",
        ),
    ],
)
def test_property_type_fix(prop: PropertySpec, raw: Any, fixed: Any, message: str) -> None:
    r = apply(one_event(prop), "POST", EVENTS, review(**{prop.name: raw}))
    rule = f"{RS}.{prop.name}"
    assert r.violations == (v("property_type", rule, f"data.{prop.name}", message, "fix"),)
    assert r.changes == (ch(f"data.{prop.name}", raw, fixed, rule),)
    assert r.rejected is False
    assert r.operation.body == review(**{prop.name: fixed})
    assert r.operation.body is not None
    assert type(r.operation.body["data"][prop.name]) is type(fixed)


def test_email_case_and_spaces_fixed() -> None:
    # " Ana@Example.COM " is email-shaped once trimmed: normalized, not a type error.
    prop = P(name="contact", type="email", action="fix")
    r = apply(one_event(prop), "POST", EVENTS, review(contact=" Ana@Example.COM "))
    rule = f"{RS}.contact"
    assert r.violations == (
        v(
            "email_not_normalized",
            rule,
            "data.contact",
            "'contact' email is not trimmed and lower-case; normalized",
            "fix",
        ),
    )
    assert r.changes == (ch("data.contact", " Ana@Example.COM ", "ana@example.com", rule),)


def test_email_not_normalized_warn() -> None:
    prop = P(name="contact", type="email", action="warn")
    r = apply(one_event(prop), "POST", EVENTS, review(contact="Ana@Example.com"))
    assert r.violations == (
        v(
            "email_not_normalized",
            f"{RS}.contact",
            "data.contact",
            "'contact' email is not trimmed and lower-case",
            "warn",
        ),
    )
    assert (r.changes, r.rejected) == ((), False)


@pytest.mark.parametrize(
    ("kind", "raw", "described"),
    [
        ("number", "abc", "string 'abc'"),
        ("number", "1e999", "string '1e999'"),
        ("integer", "3.5", "string '3.5'"),
        ("integer", True, "boolean true"),
        ("boolean", "maybe", "string 'maybe'"),
        ("email", "not-an-email", "string 'not-an-email'"),
        ("timestamp", "yesterday", "string 'yesterday'"),
        ("string", None, None),  # null is "not given", never a type error
        ("string", {"a": 1}, 'object {"a":1}'),
        ("object", [1], "array [1]"),
        ("array", "a,b", "string 'a,b'"),
    ],
)
def test_unfixable_value_is_rejected(kind: PropertyType, raw: Any, described: str | None) -> None:
    prop = P(name="x", type=kind, action="fix")
    r = apply(one_event(prop), "POST", EVENTS, review(x=raw))
    if described is None:
        assert (r.violations, r.rejected) == ((), False)
        return
    assert r.violations == (
        v("property_type", f"{RS}.x", "data.x", f"'x' should be {kind}, got {described}", "reject"),
    )
    assert r.changes == ()
    assert r.rejected is True


@pytest.mark.parametrize("action", ["warn", "reject"])
def test_type_mismatch_without_fix_is_not_coerced(action: Action) -> None:
    prop = P(name="total", type="number", action=action)
    r = apply(one_event(prop), "POST", EVENTS, review(total="49.90"))
    assert r.violations == (
        v(
            "property_type",
            f"{RS}.total",
            "data.total",
            "'total' should be number, got string '49.90'",
            action,
        ),
    )
    assert r.changes == ()
    assert r.rejected is (action == "reject")
    assert r.operation.body == review(total="49.90")


def test_long_values_are_shortened_in_messages() -> None:
    prop = P(name="x", type="number", action="reject")
    raw = "z" * 80
    r = apply(one_event(prop), "POST", EVENTS, review(x=raw))
    shown = repr(raw)[:57] + "..."
    assert r.violations[0].message == f"'x' should be number, got string {shown}"


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "shown"),
    [
        (T * 1000 + 123, "milliseconds", str(T * 1000 + 123)),
        (T * 1_000_000, "microseconds", str(T * 1_000_000)),
        (T * 1_000_000_000, "nanoseconds", str(T * 1_000_000_000)),
        (T + 0.5, "float seconds", f"{T}.5"),
        (ISO, "iso8601", repr(ISO)),
        (str(T), "numeric string", repr(str(T))),
    ],
)
def test_event_timestamp_converted_to_seconds(
    d2c_plan: Plan, raw: Any, kind: str, shown: str
) -> None:
    body = {**order(), "timestamp": raw}
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "timestamp_format",
            "timestamps",
            "timestamp",
            f"timestamp {shown} is {kind}, not unix seconds; converted to {T}",
            "fix",
        ),
    )
    assert r.changes == (ch("timestamp", raw, T, "timestamps"),)
    assert r.operation.body == {**order(), "timestamp": T}
    assert r.rejected is False


def test_event_timestamp_in_seconds_is_untouched(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {**order(), "timestamp": T})
    assert (r.violations, r.changes) == ((), ())


def test_unfixable_event_timestamp_is_rejected(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {**order(), "timestamp": "yesterday"})
    assert r.violations == (
        v(
            "timestamp_format",
            "timestamps",
            "timestamp",
            "timestamp 'yesterday' is invalid, not unix seconds",
            "reject",
        ),
    )
    assert (r.changes, r.rejected) == ((), True)


def test_negative_event_timestamp_is_rejected(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {**order(), "timestamp": -5})
    assert r.violations == (
        v(
            "timestamp_format",
            "timestamps",
            "timestamp",
            "timestamp -5 is negative, not unix seconds",
            "reject",
        ),
    )
    assert r.rejected is True


@pytest.mark.parametrize(("action", "rejected"), [("warn", False), ("reject", True)])
def test_event_timestamp_policy_without_fix(d2c_plan: Plan, action: Action, rejected: bool) -> None:
    plan = msgspec.structs.replace(d2c_plan, timestamps=TimestampPolicy(action=action))
    r = apply(plan, "POST", EVENTS, {**order(), "timestamp": T * 1000})
    assert r.violations == (
        v(
            "timestamp_format",
            "timestamps",
            "timestamp",
            f"timestamp {T * 1000} is milliseconds, not unix seconds",
            action,
        ),
    )
    assert (r.changes, r.rejected) == ((), rejected)


def test_timestamp_property_converted(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "PUT", PERSON, {"created_at": ISO})
    rule = "attributes.created_at"
    assert r.violations == (
        v(
            "timestamp_format",
            rule,
            "created_at",
            f"'created_at' should be timestamp, got string '{ISO}'; converted to {T}",
            "fix",
        ),
    )
    assert r.changes == (ch("created_at", ISO, T, rule),)
    assert r.operation.body == {"created_at": T}


def test_millisecond_timestamp_property_converted(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "PUT", PERSON, {"created_at": T * 1000})
    assert r.violations == (
        v(
            "timestamp_format",
            "attributes.created_at",
            "created_at",
            f"'created_at' should be timestamp, got integer {T * 1000}; converted to {T}",
            "fix",
        ),
    )
    assert r.changes == (ch("created_at", T * 1000, T, "attributes.created_at"),)


# --- enums --------------------------------------------------------------------------------------


def test_enum_case_is_fixed(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order(currency=" usd"))
    rule = f"{OC}.properties.currency"
    assert r.violations == (
        v(
            "property_enum",
            rule,
            "data.currency",
            "'currency' ' usd' is not one of the allowed values; normalized to 'USD'",
            "fix",
        ),
    )
    assert r.changes == (ch("data.currency", " usd", "USD", rule),)
    assert r.operation.body == order()


def test_unknown_enum_value_is_rejected(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order(currency="JPY"))
    assert r.violations == (
        v(
            "property_enum",
            f"{OC}.properties.currency",
            "data.currency",
            "'currency' 'JPY' is not one of: USD, EUR, GBP",
            "reject",
        ),
    )
    assert (r.changes, r.rejected) == ((), True)


def test_enum_does_not_confuse_types() -> None:
    prop = P(name="stars", type="enum", values=(1, 2, 3, "4"), action="warn")
    plan = one_event(prop)
    assert apply(plan, "POST", EVENTS, review(stars=2)).violations == ()
    r = apply(plan, "POST", EVENTS, review(stars="2"))
    assert r.violations == (
        v(
            "property_enum",
            f"{RS}.stars",
            "data.stars",
            "'stars' '2' is not one of: 1, 2, 3, 4",
            "warn",
        ),
    )
    assert [x.code for x in apply(plan, "POST", EVENTS, review(stars=True)).violations] == [
        "property_enum"
    ]


# --- required, unplanned ------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["absent", "null"])
def test_required_property_missing_is_rejected(d2c_plan: Plan, missing: str) -> None:
    body = order(order_id=None)
    if missing == "null":
        body["data"]["order_id"] = None
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "property_missing",
            f"{OC}.properties.order_id",
            "data.order_id",
            "required property 'order_id' is missing",
            "reject",
        ),
    )
    assert r.rejected is True
    assert r.dedupe_key is None


def test_required_fix_property_missing_is_rejected(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order(total=None))
    assert r.violations == (
        v(
            "property_missing",
            f"{OC}.properties.total",
            "data.total",
            "required property 'total' is missing",
            "reject",
        ),
    )
    assert r.rejected is True


def test_required_warn_property_missing_is_warned() -> None:
    plan = one_event(P(name="stars", type="integer", required=True, action="warn"))
    r = apply(plan, "POST", EVENTS, {"name": "review_submitted"})
    assert r.violations == (
        v(
            "property_missing",
            f"{RS}.stars",
            "data.stars",
            "required property 'stars' is missing",
            "warn",
        ),
    )
    assert r.rejected is False


def test_data_null_is_checked_as_empty(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {"name": "order_completed", "data": None})
    assert [(x.code, x.path) for x in r.violations] == [
        ("property_missing", "data.order_id"),
        ("property_missing", "data.total"),
    ]


@pytest.mark.parametrize(
    ("policy", "expected", "rejected"),
    [
        ("allow", (), False),
        (
            "warn",
            (
                v(
                    "property_unplanned",
                    f"{OC}.unplanned_properties",
                    "data.coupon",
                    "property 'coupon' is not in the tracking plan",
                    "warn",
                ),
            ),
            False,
        ),
        (
            "reject",
            (
                v(
                    "property_unplanned",
                    f"{OC}.unplanned_properties",
                    "data.coupon",
                    "property 'coupon' is not in the tracking plan",
                    "reject",
                ),
            ),
            True,
        ),
    ],
)
def test_unplanned_property(
    d2c_plan: Plan, policy: Policy, expected: tuple[Violation, ...], rejected: bool
) -> None:
    plan = msgspec.structs.replace(d2c_plan, unplanned=UnplannedPolicy(properties=policy))
    r = apply(plan, "POST", EVENTS, order(coupon="SAVE10"))
    assert r.violations == expected
    assert r.rejected is rejected


def test_event_unplanned_properties_overrides_the_plan_default() -> None:
    spec = EventSpec(name="review_submitted", unplanned_properties="reject")
    plan = Plan(events={"review_submitted": spec}, unplanned=UnplannedPolicy(properties="allow"))
    r = apply(plan, "POST", EVENTS, review(extra=1))
    assert r.violations == (
        v(
            "property_unplanned",
            "events.review_submitted.unplanned_properties",
            "data.extra",
            "property 'extra' is not in the tracking plan",
            "reject",
        ),
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("allow", ()),
        (
            "warn",
            (
                v(
                    "attribute_unplanned",
                    "unplanned.attributes",
                    "nickname",
                    "attribute 'nickname' is not in the tracking plan",
                    "warn",
                ),
            ),
        ),
        (
            "reject",
            (
                v(
                    "attribute_unplanned",
                    "unplanned.attributes",
                    "nickname",
                    "attribute 'nickname' is not in the tracking plan",
                    "reject",
                ),
            ),
        ),
    ],
)
def test_unplanned_attribute(
    d2c_plan: Plan, policy: Policy, expected: tuple[Violation, ...]
) -> None:
    plan = msgspec.structs.replace(d2c_plan, unplanned=UnplannedPolicy(attributes=policy))
    body = {
        "nickname": "Ana",
        "id": "cus_1",
        "anonymous_id": "a1",
        "unsubscribed": False,
        "cio_subscription_preferences.topics.topic_1": True,
        "first_name": "Ana",
    }
    r = apply(plan, "PUT", PERSON, body)
    assert r.violations == expected
    assert r.rejected is (policy == "reject")


def test_unplanned_attribute_v2_path(d2c_plan: Plan) -> None:
    plan = msgspec.structs.replace(d2c_plan, unplanned=UnplannedPolicy(attributes="warn"))
    body = {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": "cus_1"},
        "attributes": {"nickname": "Ana"},
    }
    r = apply(plan, "POST", ENTITY, body)
    assert r.violations == (
        v(
            "attribute_unplanned",
            "unplanned.attributes",
            "attributes.nickname",
            "attribute 'nickname' is not in the tracking plan",
            "warn",
        ),
    )


def test_identify_email_attribute_normalized(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "PUT", PERSON, {"email": "  ANA@EXAMPLE.COM ", "vip": "yes"})
    assert r.violations == (
        v(
            "email_not_normalized",
            "attributes.email",
            "email",
            "'email' email is not trimmed and lower-case; normalized",
            "fix",
        ),
        v(
            "property_type",
            "attributes.vip",
            "vip",
            "'vip' should be boolean, got string 'yes'; converted to true",
            "fix",
        ),
    )
    assert r.changes == (
        ch("email", "  ANA@EXAMPLE.COM ", "ana@example.com", "attributes.email"),
        ch("vip", "yes", True, "attributes.vip"),
    )
    assert r.operation.body == {"email": "ana@example.com", "vip": True}


def test_v2_identify_attribute_fixed_with_batch_index(d2c_plan: Plan) -> None:
    body = {
        "batch": [
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "cus_1"},
                "attributes": {"lifetime_value": "120.50"},
            }
        ]
    }
    result = evaluate(Request(method="POST", path="/api/v2/batch", body=json.dumps(body).encode()))
    r = CompiledPlan(d2c_plan).apply(result.operations[0])
    assert r.violations == (
        v(
            "property_type",
            "attributes.lifetime_value",
            "attributes.lifetime_value",
            "'lifetime_value' should be number, got string '120.50'; converted to 120.5",
            "fix",
            0,
        ),
    )
    assert r.changes == (
        ch("attributes.lifetime_value", "120.50", 120.5, "attributes.lifetime_value", 0),
    )


def test_identify_null_attribute_is_not_checked(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "PUT", PERSON, {"lifetime_value": None})
    assert (r.violations, r.changes) == ((), ())


# --- constraints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "raw", "problem"),
    [
        (P(name="x", type="number", minimum=1), 0, "0 is less than the minimum 1"),
        (P(name="x", type="number", maximum=5), 5.5, "5.5 is more than the maximum 5"),
        (P(name="x", type="integer", minimum=0.5), 0, "0 is less than the minimum 0.5"),
        (P(name="x", type="string", min_length=3), "ab", "'ab' is shorter than 3 characters"),
        (
            P(name="x", type="string", max_length=5),
            "abcdef",
            "'abcdef' is longer than 5 characters",
        ),
        (P(name="x", type="string", pattern=r"^[A-Z]+$"), "abc", "'abc' does not match '^[A-Z]+$'"),
        (P(name="x", type="array", min_items=1), [], "[] has fewer than 1 items"),
        (
            P(name="x", type="array", max_items=2),
            ["a", "b", "c"],
            '["a","b","c"] has more than 2 items',
        ),
        (P(name="x", type="array", items="string"), ["a", 1, 2], '["a",1,2] item 1 is not string'),
        (P(name="x", type="array", items="integer"), [1, True], "[1,true] item 1 is not integer"),
    ],
)
def test_constraint_violations(prop: PropertySpec, raw: Any, problem: str) -> None:
    r = apply(one_event(prop), "POST", EVENTS, review(x=raw))
    assert r.violations == (
        v("property_constraint", f"{RS}.x", "data.x", f"'x' {problem}", "reject"),
    )
    assert (r.changes, r.rejected) == ((), True)


@pytest.mark.parametrize(
    ("prop", "raw"),
    [
        (P(name="x", type="number", minimum=1, maximum=5), 1),
        (P(name="x", type="number", minimum=1, maximum=5), 5),
        (P(name="x", type="string", min_length=2, max_length=2, pattern="^[a-z]"), "ab"),
        (P(name="x", type="array", min_items=1, max_items=2, items="string"), ["a", "b"]),
        (P(name="x", type="array", items="any"), [1, "a", None]),
    ],
)
def test_constraint_boundaries_pass(prop: PropertySpec, raw: Any) -> None:
    r = apply(one_event(prop), "POST", EVENTS, review(x=raw))
    assert (r.violations, r.rejected) == ((), False)


def test_every_broken_constraint_is_reported() -> None:
    prop = P(name="code", type="string", max_length=3, pattern="^[0-9]+$", action="warn")
    r = apply(one_event(prop), "POST", EVENTS, review(code="abcd"))
    assert r.violations == (
        v(
            "property_constraint",
            f"{RS}.code",
            "data.code",
            "'code' 'abcd' is longer than 3 characters",
            "warn",
        ),
        v(
            "property_constraint",
            f"{RS}.code",
            "data.code",
            "'code' 'abcd' does not match '^[0-9]+$'",
            "warn",
        ),
    )
    assert r.rejected is False


def test_constraint_after_fix_is_rejected(d2c_plan: Plan) -> None:
    # "-5" is converted to -5, which then breaks the minimum: no fix exists for that.
    r = apply(d2c_plan, "POST", EVENTS, order(total="-5"))
    rule = f"{OC}.properties.total"
    assert r.violations == (
        v(
            "property_type",
            rule,
            "data.total",
            "'total' should be number, got string '-5'; converted to -5",
            "fix",
        ),
        v(
            "property_constraint",
            rule,
            "data.total",
            "'total' -5 is less than the minimum 0",
            "reject",
        ),
    )
    assert r.changes == (ch("data.total", "-5", -5, rule),)
    assert r.rejected is True


def test_pattern_on_planned_event(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order(order_id="1001"))
    assert r.violations == (
        v(
            "property_constraint",
            f"{OC}.properties.order_id",
            "data.order_id",
            "'order_id' '1001' does not match '^ORD-\\\\d+$'",
            "reject",
        ),
    )


NESTED = P(
    name="address",
    type="object",
    properties=(
        P(name="zip", type="string", required=True),
        P(name="country", type="enum", values=("US", "DE"), action="fix"),
        P(name="geo", type="object", properties=(P(name="lat", type="number", action="fix"),)),
    ),
)


def test_nested_object_members_are_checked_and_fixed() -> None:
    raw = {"country": "de", "geo": {"lat": "52.5"}, "extra": True}
    r = apply(one_event(NESTED), "POST", EVENTS, review(address=raw))
    base = f"{RS}.address.properties"
    assert r.violations == (
        v(
            "property_missing",
            f"{base}.zip",
            "data.address.zip",
            "required property 'zip' is missing",
            "reject",
        ),
        v(
            "property_enum",
            f"{base}.country",
            "data.address.country",
            "'country' 'de' is not one of the allowed values; normalized to 'DE'",
            "fix",
        ),
        v(
            "property_type",
            f"{base}.geo.properties.lat",
            "data.address.geo.lat",
            "'lat' should be number, got string '52.5'; converted to 52.5",
            "fix",
        ),
    )
    assert r.changes == (
        ch("data.address.country", "de", "DE", f"{base}.country"),
        ch("data.address.geo.lat", "52.5", 52.5, f"{base}.geo.properties.lat"),
    )
    assert r.operation.body == review(
        address={"country": "DE", "geo": {"lat": 52.5}, "extra": True}
    )
    assert r.rejected is True


def test_nested_object_not_an_object() -> None:
    r = apply(one_event(NESTED), "POST", EVENTS, review(address="Main St 1"))
    assert r.violations == (
        v(
            "property_type",
            f"{RS}.address",
            "data.address",
            "'address' should be object, got string 'Main St 1'",
            "reject",
        ),
    )


# --- schema versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, "2"])
def test_known_schema_version_uses_its_own_properties(d2c_plan: Plan, version: Any) -> None:
    body = {
        "name": "order_completed",
        "data": {"schema_version": version, "order_ref": "R-1", "total": "10"},
    }
    r = apply(d2c_plan, "POST", EVENTS, body)
    rule = f"{OC}.versions.2.properties.total"
    assert r.violations == (
        v(
            "property_type",
            rule,
            "data.total",
            "'total' should be number, got string '10'; converted to 10",
            "fix",
        ),
    )
    assert r.changes == (ch("data.total", "10", 10, rule),)
    assert r.rejected is False


def test_known_schema_version_requires_its_own_properties(d2c_plan: Plan) -> None:
    body = {
        "name": "order_completed",
        "data": {"schema_version": "2", "order_id": "ORD-1", "total": 1},
    }
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "property_missing",
            f"{OC}.versions.2.properties.order_ref",
            "data.order_ref",
            "required property 'order_ref' is missing",
            "reject",
        ),
        v(
            "property_unplanned",
            f"{OC}.unplanned_properties",
            "data.order_id",
            "property 'order_id' is not in the tracking plan",
            "warn",
        ),
    )


def test_unknown_schema_version_warns_and_checks_the_base(d2c_plan: Plan) -> None:
    body = order(schema_version=3)
    r = apply(d2c_plan, "POST", EVENTS, body)
    assert r.violations == (
        v(
            "schema_version_unknown",
            f"{OC}.versions",
            "data.schema_version",
            "order_completed has no schema_version 3; checked against the base version",
            "warn",
        ),
    )
    assert r.rejected is False


def test_version_unplanned_policy() -> None:
    spec = EventSpec(
        name="review_submitted",
        properties=(P(name="stars", type="integer"),),
        versions=(
            EventVersion(
                version="2",
                properties=(P(name="rating", type="integer"),),
                unplanned_properties="reject",
            ),
        ),
    )
    plan = Plan(events={"review_submitted": spec})
    r = apply(plan, "POST", EVENTS, review(schema_version="2", stars=5))
    assert r.violations == (
        v(
            "property_unplanned",
            "events.review_submitted.unplanned_properties",
            "data.stars",
            "property 'stars' is not in the tracking plan",
            "reject",
        ),
    )


def test_schema_version_without_versions_is_not_unplanned(d2c_plan: Plan) -> None:
    body = {"name": "product_viewed", "data": {"sku": "SKU-1", "schema_version": 9}}
    assert apply(d2c_plan, "POST", EVENTS, body).violations == ()


# --- dedupe keys --------------------------------------------------------------------------------


def test_dedupe_key_v1(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order())
    assert r.dedupe_key == "order_completed:ORD-1"
    assert r.operation.dedupe_key == "order_completed:ORD-1"


def test_dedupe_key_v2_reads_attributes(d2c_plan: Plan) -> None:
    body = {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "cus_1"},
        "name": "order_completed",
        "attributes": {"order_id": "ORD-1", "total": 1},
    }
    r = apply(d2c_plan, "POST", ENTITY, body)
    assert r.violations == ()
    assert r.dedupe_key == "order_completed:ORD-1"


def test_dedupe_key_uses_the_canonical_name(d2c_plan: Plan) -> None:
    body = order()
    body["name"] = "Purchase"
    assert apply(d2c_plan, "POST", EVENTS, body).dedupe_key == "order_completed:ORD-1"


@pytest.mark.parametrize("order_id", ["", {"a": 1}, [1]])
def test_dedupe_key_absent_for_unusable_values(d2c_plan: Plan, order_id: Any) -> None:
    r = apply(d2c_plan, "POST", EVENTS, order(order_id=order_id))
    assert r.dedupe_key is None
    assert r.operation.dedupe_key is None


def test_dedupe_key_top_level_id() -> None:
    spec = EventSpec(name="review_submitted", dedupe_key="id")
    plan = Plan(events={"review_submitted": spec}, unplanned=UnplannedPolicy(properties="allow"))
    r = apply(plan, "POST", EVENTS, {"name": "review_submitted", "id": "R-9"})
    assert r.dedupe_key == "review_submitted:R-9"


def test_no_dedupe_key_for_events_without_one(d2c_plan: Plan) -> None:
    r = apply(d2c_plan, "POST", EVENTS, {"name": "product_viewed", "data": {"sku": "S"}})
    assert r.dedupe_key is None
    assert r.operation.dedupe_key is None


# --- identity -----------------------------------------------------------------------------------


NOT_CANONICAL = "person addressed by email; the plan's canonical identifier is id"


@pytest.mark.parametrize(
    ("policy", "expected", "rejected"),
    [
        ("allow", (), False),
        (
            "warn",
            (
                v(
                    "identity_not_canonical",
                    "identity.email_keyed",
                    "identifier",
                    NOT_CANONICAL,
                    "warn",
                ),
            ),
            False,
        ),
        (
            "reject",
            (
                v(
                    "identity_not_canonical",
                    "identity.email_keyed",
                    "identifier",
                    NOT_CANONICAL,
                    "reject",
                ),
            ),
            True,
        ),
    ],
)
def test_email_keyed_call(
    d2c_plan: Plan, policy: Policy, expected: tuple[Violation, ...], rejected: bool
) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(email_keyed=policy))
    r = apply(plan, "POST", EMAIL_EVENTS, {"name": "cart_updated", "data": {"cart_id": "c1"}})
    assert r.violations == expected
    assert r.rejected is rejected
    assert r.operation.identifier == Identifier("email", "ana@example.com")


def test_email_keyed_v2_path(d2c_plan: Plan) -> None:
    body = {"type": "person", "action": "identify", "identifiers": {"email": "ana@example.com"}}
    r = apply(d2c_plan, "POST", ENTITY, body)
    assert r.violations == (
        v(
            "identity_not_canonical",
            "identity.email_keyed",
            "identifiers.email",
            NOT_CANONICAL,
            "warn",
        ),
    )


def test_id_keyed_call_when_email_is_canonical(d2c_plan: Plan) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(canonical="email"))
    r = apply(plan, "POST", EVENTS, {"name": "cart_updated", "data": {"cart_id": "c1"}})
    assert r.violations == (
        v(
            "identity_not_canonical",
            "identity.email_keyed",
            "identifier",
            "person addressed by id; the plan's canonical identifier is email",
            "warn",
        ),
    )
    assert (
        apply(
            plan, "POST", EMAIL_EVENTS, {"name": "cart_updated", "data": {"cart_id": "c1"}}
        ).violations
        == ()
    )


def test_cio_id_keyed_call_is_fine(d2c_plan: Plan) -> None:
    r = apply(
        d2c_plan,
        "POST",
        "/api/v1/customers/cio_03000001/events",
        {"name": "cart_updated", "data": {"cart_id": "c1"}},
    )
    assert r.violations == ()


@pytest.mark.parametrize(
    ("action", "expected"), [("reject", "reject"), ("fix", "reject"), ("warn", "warn")]
)
def test_email_in_id_v2(d2c_plan: Plan, action: Action, expected: str) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(email_in_id=action))
    body = {"type": "person", "action": "identify", "identifiers": {"id": "ana@example.com"}}
    r = apply(plan, "POST", ENTITY, body)
    assert r.violations == (
        v(
            "identity_email_in_id",
            "identity.email_in_id",
            "identifiers.id",
            "an email address ('ana@example.com') is used as the person id",
            expected,
        ),
    )
    assert r.rejected is (expected == "reject")


def test_email_in_id_v1_identify_body(d2c_plan: Plan) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(email_keyed="allow"))
    r = apply(plan, "PUT", "/api/v1/customers/ana%40example.com", {"id": "ana@example.com"})
    assert r.violations == (
        v(
            "identity_email_in_id",
            "identity.email_in_id",
            "id",
            "an email address ('ana@example.com') is used as the person id",
            "reject",
        ),
    )
    assert r.rejected is True


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("allow", ()),
        (
            "warn",
            (
                v(
                    "identity_anonymous",
                    "identity.anonymous",
                    "anonymous_id",
                    "anonymous event: the plan does not allow anonymous activity",
                    "warn",
                ),
            ),
        ),
        (
            "reject",
            (
                v(
                    "identity_anonymous",
                    "identity.anonymous",
                    "anonymous_id",
                    "anonymous event: the plan does not allow anonymous activity",
                    "reject",
                ),
            ),
        ),
    ],
)
def test_anonymous_events(d2c_plan: Plan, policy: Policy, expected: tuple[Violation, ...]) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(anonymous=policy))
    body = {"name": "product_viewed", "anonymous_id": "anon-1", "data": {"sku": "S"}}
    r = apply(plan, "POST", ANON, body)
    assert r.violations == expected
    assert r.rejected is (policy == "reject")
    assert r.operation.identifier == Identifier("anonymous_id", "anon-1")


def test_anonymous_v2_identifier(d2c_plan: Plan) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(anonymous="reject"))
    body = {
        "type": "person",
        "action": "event",
        "identifiers": {"anonymous_id": "anon-1"},
        "name": "product_viewed",
        "attributes": {"sku": "S"},
    }
    r = apply(plan, "POST", ENTITY, body)
    assert [(x.code, x.action) for x in r.violations] == [("identity_anonymous", "reject")]
    assert r.rejected is True


def test_anonymous_event_still_checked_against_the_plan(d2c_plan: Plan) -> None:
    body = {"name": "Product Viewed", "data": {"sku": "S", "price": "24"}}
    r = apply(d2c_plan, "POST", ANON, body)
    assert [x.code for x in r.violations] == ["event_name_drift", "property_type"]
    assert r.operation.body == {"name": "product_viewed", "data": {"sku": "S", "price": 24}}


# --- what the plan leaves alone -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", EVENTS, {"name": "Order Completed", "type": "page", "data": {"x": "1"}}),
        ("PUT", "/api/v1/customers/cus_1/devices", {"device": {"id": "t", "platform": "ios"}}),
        ("POST", "/api/v1/merge_customers", {"primary": {"id": "a"}, "secondary": {"id": "b"}}),
        (
            "POST",
            ENTITY,
            {
                "type": "object",
                "action": "identify",
                "identifiers": {"object_type_id": "1", "object_id": "acme"},
                "attributes": {"nickname": "x", "email": "NOT AN EMAIL"},
            },
        ),
    ],
)
def test_operations_the_plan_does_not_cover(
    d2c_plan: Plan, method: str, path: str, body: dict[str, Any]
) -> None:
    plan = msgspec.structs.replace(d2c_plan, unplanned=UnplannedPolicy(attributes="reject"))
    r = apply(plan, method, path, body)
    assert (r.violations, r.changes, r.rejected) == ((), (), False)


def test_apply_never_mutates_the_operation_body(d2c_plan: Plan) -> None:
    body = {
        "name": "Order Completed",
        "timestamp": ISO,
        "data": {
            "order_id": "ORD-1",
            "total": "49.90",
            "currency": "eur",
            "nested": {"keep": [1, 2]},
        },
    }
    result = evaluate(Request(method="POST", path=EVENTS, body=json.dumps(body).encode()))
    (op,) = result.operations
    r = CompiledPlan(d2c_plan).apply(op)
    assert op.body == body
    assert r.operation.body == {
        "name": "order_completed",
        "timestamp": T,
        "data": {"order_id": "ORD-1", "total": 49.9, "currency": "EUR", "nested": {"keep": [1, 2]}},
    }
    assert r.operation.body is not op.body
    assert r.operation.body is not None
    assert op.body is not None
    assert r.operation.body["data"] is not op.body["data"]
