"""``Checker(plan).check(request)``: outcomes, batches, strict bodies, purity, idempotence."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from trackguard.contract.check import evaluate
from trackguard.contract.operations import Operation, Request
from trackguard.core.pipeline import Checker, check_request
from trackguard.core.verdict import Change, Verdict, Violation
from trackguard.plan.model import IdentityPolicy, Plan, UnplannedPolicy

EVENTS = "/api/v1/customers/cus_1/events"
PERSON = "/api/v1/customers/cus_1"
ENTITY = "/api/v2/entity"
BATCH = "/api/v2/batch"
T = 1_764_000_000
ISO = "2025-11-24T16:00:00Z"
OK = b"{}\n"
OC = "events.order_completed"

Check = Callable[..., Verdict]
MakeRequest = Callable[..., Request]


def order(**data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"order_id": "ORD-1", "total": 49.9, "currency": "USD"}
    base.update(data)
    return {"name": "order_completed", "data": base}


def v2_order(order_id: str, **attrs: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"order_id": order_id, "total": 10, "currency": "USD"}
    base.update(attrs)
    return {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "cus_1"},
        "name": "order_completed",
        "attributes": base,
    }


def pretty(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


# --- outcomes -----------------------------------------------------------------------------------


def test_accepted(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order())
    assert verdict.outcome == "accepted"
    assert (verdict.status, verdict.response) == (200, OK)
    assert verdict.route == "POST /api/v1/customers/{identifier}/events"
    assert (verdict.violations, verdict.changes, verdict.rejected) == ((), (), ())
    assert verdict.contract_errors == ()
    assert verdict.plan_version == "2025.11"
    (op,) = verdict.operations
    assert op.body == order()
    assert op.dedupe_key == "order_completed:ORD-1"


def test_fixed(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(total="49.90"))
    assert verdict.outcome == "fixed"
    assert (verdict.status, verdict.response) == (200, OK)
    assert verdict.changes == (
        Change(path="data.total", before="49.90", after=49.9, rule=f"{OC}.properties.total"),
    )
    assert [op.body for op in verdict.operations] == [order()]
    assert verdict.rejected == ()


def test_warned(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(coupon="SAVE10"))
    assert verdict.outcome == "warned"
    assert verdict.violations == (
        Violation(
            code="property_unplanned",
            rule=f"{OC}.unplanned_properties",
            path="data.coupon",
            message="property 'coupon' is not in the tracking plan",
            action="warn",
        ),
    )
    assert len(verdict.operations) == 1
    assert verdict.rejected == ()


def test_warned_beats_fixed(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(total="1", coupon="SAVE10"))
    assert verdict.outcome == "warned"
    assert [v.action for v in verdict.violations] == ["fix", "warn"]


def test_rejected_is_answered_200_by_default(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(total="abc"))
    assert verdict.outcome == "rejected"
    assert (verdict.status, verdict.response) == (200, OK)
    assert verdict.operations == ()
    (op,) = verdict.rejected
    assert op.body == order(total="abc")
    assert verdict.violations == (
        Violation(
            code="property_type",
            rule=f"{OC}.properties.total",
            path="data.total",
            message="'total' should be number, got string 'abc'",
            action="reject",
        ),
    )


def test_invalid(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, {"data": {"order_id": "ORD-1"}})
    assert verdict.outcome == "invalid"
    assert verdict.status == 400
    assert verdict.response == pretty({"meta": {"errors": ["event name must not be blank"]}})
    assert [e.code for e in verdict.contract_errors] == ["event_name_blank"]
    assert (verdict.operations, verdict.rejected, verdict.changes) == ((), (), ())
    assert verdict.codes == ("event_name_blank",)


def test_invalid_json_and_unknown_route(d2c_plan: Plan, check: Check) -> None:
    broken = check(d2c_plan, "POST", EVENTS, b'{"name": "x", "data": {')
    assert (broken.outcome, broken.status) == ("invalid", 400)
    assert broken.response == pretty({"meta": {"errors": ["request body must be valid JSON"]}})
    unknown = check(d2c_plan, "POST", "/api/v1/nope", order())
    assert (unknown.outcome, unknown.status, unknown.route) == ("invalid", 404, None)
    assert unknown.codes == ("not_found",)


def test_invalid_keeps_contract_warnings(d2c_plan: Plan, check: Check) -> None:
    body = {"name": "", "timestamp": ISO}
    verdict = check(d2c_plan, "POST", EVENTS, body)
    assert verdict.outcome == "invalid"
    assert verdict.codes == ("event_name_blank", "timestamp_replaced")
    assert verdict.violations[0].rule == "contract"


def test_check_request_matches_checker(d2c_plan: Plan, make_request: MakeRequest) -> None:
    request = make_request("POST", EVENTS, order(total="49.90"))
    assert check_request(request, d2c_plan) == Checker(d2c_plan).check(request)
    assert check_request(request, d2c_plan, strict=True) == Checker(d2c_plan, strict=True).check(
        request
    )


# --- without a plan -----------------------------------------------------------------------------


def test_no_plan_only_has_contract_findings(check: Check) -> None:
    body = {
        "name": "Order Completed",
        "id": "not-a-ulid",
        "timestamp": ISO,
        "data": {"total": "abc"},
    }
    verdict = check(None, "POST", EVENTS, body)
    assert verdict.outcome == "warned"
    assert verdict.plan_version == ""
    assert verdict.violations == (
        Violation(
            code="timestamp_replaced",
            rule="contract",
            path="timestamp",
            message="timestamp is not an integer: Customer.io replaces it with the time of receipt",
            action="warn",
        ),
        Violation(
            code="event_id_not_ulid",
            rule="contract",
            path="id",
            message="event id is not a ULID: Customer.io may not deduplicate on it",
            action="warn",
        ),
    )
    assert (verdict.changes, verdict.rejected) == ((), ())
    (op,) = verdict.operations
    assert op.body == body
    assert op.dedupe_key == "id:not-a-ulid"  # no plan: the client's event id is the key


def test_no_plan_clean_request_is_accepted(check: Check) -> None:
    verdict = check(None, "PUT", PERSON, {"email": "ana@example.com"})
    assert (verdict.outcome, verdict.status, verdict.response) == ("accepted", 200, OK)
    assert verdict.violations == ()


# --- contract warnings and fixes ----------------------------------------------------------------


def test_contract_warning_dropped_when_its_field_is_fixed(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, {**order(), "timestamp": ISO})
    assert verdict.outcome == "fixed"
    assert verdict.violations == (
        Violation(
            code="timestamp_format",
            rule="timestamps",
            path="timestamp",
            message=f"timestamp '{ISO}' is iso8601, not unix seconds; converted to {T}",
            action="fix",
        ),
    )
    assert verdict.operations[0].body == {**order(), "timestamp": T}


def test_contract_warning_kept_when_its_field_is_not_fixed(d2c_plan: Plan, check: Check) -> None:
    plan = msgspec.structs.replace(
        d2c_plan, timestamps=msgspec.structs.replace(d2c_plan.timestamps, action="warn")
    )
    verdict = check(plan, "POST", EVENTS, {**order(), "timestamp": ISO})
    assert verdict.outcome == "warned"
    assert [(v.code, v.rule, v.action) for v in verdict.violations] == [
        ("timestamp_replaced", "contract", "warn"),
        ("timestamp_format", "timestamps", "warn"),
    ]
    assert verdict.changes == ()


def test_other_contract_warnings_survive_a_fix(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, {**order(), "timestamp": ISO, "id": "x"})
    assert verdict.outcome == "warned"
    assert verdict.codes == ("event_id_not_ulid", "timestamp_format")


def test_contract_warning_dropped_only_for_its_batch_item(d2c_plan: Plan, check: Check) -> None:
    item0 = {**v2_order("ORD-1"), "timestamp": ISO}
    item1 = {**v2_order("ORD-2"), "timestamp": ISO, "id": "x"}
    plan = msgspec.structs.replace(
        d2c_plan, timestamps=msgspec.structs.replace(d2c_plan.timestamps, action="warn")
    )
    fixed = check(d2c_plan, "POST", BATCH, {"batch": [item0, item1]})
    assert [(v.code, v.batch_index) for v in fixed.violations] == [
        ("event_id_not_ulid", 1),
        ("timestamp_format", 0),
        ("timestamp_format", 1),
    ]
    warned = check(plan, "POST", BATCH, {"batch": [item0, item1]})
    assert [(v.code, v.batch_index) for v in warned.violations] == [
        ("timestamp_replaced", 0),
        ("timestamp_replaced", 1),
        ("event_id_not_ulid", 1),
        ("timestamp_format", 0),
        ("timestamp_format", 1),
    ]


# --- v2 batches ---------------------------------------------------------------------------------


def test_batch_with_one_rejected_item(d2c_plan: Plan, check: Check) -> None:
    batch = [v2_order("ORD-1"), v2_order("ORD-2", total="abc"), v2_order("ORD-3", total="7.5")]
    verdict = check(d2c_plan, "POST", BATCH, {"batch": batch})
    assert verdict.outcome == "rejected"
    assert (verdict.status, verdict.response) == (200, OK)
    assert [op.batch_index for op in verdict.operations] == [0, 2]
    assert [op.batch_index for op in verdict.rejected] == [1]
    assert [op.dedupe_key for op in verdict.operations] == [
        "order_completed:ORD-1",
        "order_completed:ORD-3",
    ]
    assert verdict.rejected[0].body == batch[1]
    assert verdict.operations[1].body == v2_order("ORD-3", total=7.5)
    rule = f"{OC}.properties.total"
    assert verdict.violations == (
        Violation(
            code="property_type",
            rule=rule,
            path="attributes.total",
            message="'total' should be number, got string 'abc'",
            action="reject",
            batch_index=1,
        ),
        Violation(
            code="property_type",
            rule=rule,
            path="attributes.total",
            message="'total' should be number, got string '7.5'; converted to 7.5",
            action="fix",
            batch_index=2,
        ),
    )
    assert verdict.changes == (
        Change(path="attributes.total", before="7.5", after=7.5, rule=rule, batch_index=2),
    )


def test_batch_with_contract_invalid_item(d2c_plan: Plan, check: Check) -> None:
    batch = [
        v2_order("ORD-1"),
        {"type": "person", "action": "event", "identifiers": {"id": "cus_1"}},
    ]
    verdict = check(d2c_plan, "POST", BATCH, {"batch": batch})
    assert verdict.outcome == "invalid"
    assert verdict.status == 207
    assert verdict.response == pretty(
        {
            "errors": [
                {
                    "batch_index": 1,
                    "reason": "required",
                    "field": "name",
                    "message": "event name must not be blank",
                },
            ]
        }
    )
    assert [op.batch_index for op in verdict.operations] == [0]
    assert verdict.rejected == ()


def test_every_operation_is_either_sent_or_rejected(d2c_plan: Plan, check: Check) -> None:
    batch = [v2_order(f"ORD-{i}", total="abc" if i % 3 == 0 else i) for i in range(10)]
    verdict = check(d2c_plan, "POST", BATCH, {"batch": batch})
    indexes = sorted(op.batch_index or 0 for op in (*verdict.operations, *verdict.rejected))
    assert indexes == list(range(10))
    assert [op.batch_index for op in verdict.rejected] == [0, 3, 6, 9]


# --- strict mode --------------------------------------------------------------------------------


def test_strict_v1_answers_400_with_the_violation_messages(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(total="abc", currency="JPY"), strict=True)
    assert verdict.outcome == "rejected"
    assert verdict.status == 400
    assert verdict.response == (
        b'{\n  "meta": {\n    "errors": [\n'
        b"      \"'total' should be number, got string 'abc'\",\n"
        b"      \"'currency' 'JPY' is not one of: USD, EUR, GBP\"\n"
        b"    ]\n  }\n}\n"
    )


def test_strict_v1_lists_only_rejections(d2c_plan: Plan, check: Check) -> None:
    body = order(total="abc", coupon="X")
    body["name"] = "Order Completed"
    verdict = check(d2c_plan, "POST", EVENTS, body, strict=True)
    assert json.loads(verdict.response) == {
        "meta": {"errors": ["'total' should be number, got string 'abc'"]}
    }


def test_strict_v2_entity_answers_400(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", ENTITY, v2_order("ORD-1", total="abc"), strict=True)
    assert verdict.status == 400
    assert verdict.response == pretty(
        {
            "errors": [
                {
                    "reason": "property_type",
                    "field": "attributes.total",
                    "message": "'total' should be number, got string 'abc'",
                },
            ]
        }
    )


def test_strict_v2_batch_answers_207(d2c_plan: Plan, check: Check) -> None:
    batch = [v2_order("ORD-1"), v2_order("ORD-2", total="abc"), v2_order("ORD-3")]
    verdict = check(d2c_plan, "POST", BATCH, {"batch": batch}, strict=True)
    assert verdict.outcome == "rejected"
    assert verdict.status == 207
    assert verdict.response == pretty(
        {
            "errors": [
                {
                    "batch_index": 1,
                    "reason": "property_type",
                    "field": "attributes.total",
                    "message": "'total' should be number, got string 'abc'",
                },
            ]
        }
    )
    assert [op.batch_index for op in verdict.operations] == [0, 2]


def test_strict_v2_batch_keeps_contract_errors(d2c_plan: Plan, check: Check) -> None:
    batch = [v2_order("ORD-1", total="abc"), {"type": "nope"}]
    verdict = check(d2c_plan, "POST", BATCH, {"batch": batch}, strict=True)
    assert verdict.status == 207
    errors = sorted(json.loads(verdict.response)["errors"], key=lambda e: e["batch_index"])
    assert errors == [
        {
            "batch_index": 0,
            "reason": "property_type",
            "field": "attributes.total",
            "message": "'total' should be number, got string 'abc'",
        },
        {
            "batch_index": 1,
            "reason": "invalid",
            "field": "type",
            "message": "type must be one of: person, object, delivery",
        },
    ]


def test_strict_without_rejection_answers_like_customerio(d2c_plan: Plan, check: Check) -> None:
    verdict = check(d2c_plan, "POST", EVENTS, order(total="1", coupon="X"), strict=True)
    assert (verdict.outcome, verdict.status, verdict.response) == ("warned", 200, OK)


def test_strict_contract_errors_are_answered_as_customerio_does(
    d2c_plan: Plan, check: Check
) -> None:
    strict = check(d2c_plan, "POST", EVENTS, {"name": ""}, strict=True)
    lax = check(d2c_plan, "POST", EVENTS, {"name": ""})
    assert (strict.status, strict.response) == (lax.status, lax.response)


# --- identity, end to end -----------------------------------------------------------------------


def test_email_keyed_cart_rejected_by_policy(d2c_plan: Plan, check: Check) -> None:
    plan = msgspec.structs.replace(d2c_plan, identity=IdentityPolicy(email_keyed="reject"))
    verdict = check(
        plan,
        "POST",
        "/api/v1/customers/ana%40example.com/events",
        {"name": "cart_updated", "data": {"cart_id": "c1"}},
        strict=True,
    )
    assert verdict.outcome == "rejected"
    assert json.loads(verdict.response) == {
        "meta": {"errors": ["person addressed by email; the plan's canonical identifier is id"]}
    }


def test_unplanned_everything_rejected(d2c_plan: Plan, check: Check) -> None:
    plan = msgspec.structs.replace(
        d2c_plan,
        unplanned=UnplannedPolicy(events="reject", properties="reject", attributes="reject"),
    )
    assert check(plan, "POST", EVENTS, {"name": "wishlist_added"}).outcome == "rejected"
    assert check(plan, "POST", EVENTS, order(coupon="X")).outcome == "rejected"
    assert check(plan, "PUT", PERSON, {"nickname": "A"}).outcome == "rejected"
    assert check(plan, "PUT", PERSON, {"first_name": "A"}).outcome == "accepted"


# --- purity -------------------------------------------------------------------------------------

MESSY = [
    (
        "POST",
        EVENTS,
        {
            "name": "Order Completed",
            "timestamp": T * 1000,
            "data": {
                "order_id": "ORD-1",
                "total": "49.90",
                "currency": "usd",
                "item_count": "2",
                "meta": {"a": [1, {"b": 2}]},
            },
        },
    ),
    (
        "POST",
        EVENTS,
        {"name": "orderCompleted", "timestamp": ISO, "data": {"order_id": "ORD-2", "total": "abc"}},
    ),
    (
        "PUT",
        PERSON,
        {
            "email": " ANA@EXAMPLE.COM ",
            "lifetime_value": "10.5",
            "vip": "TRUE",
            "created_at": str(T),
        },
    ),
    (
        "POST",
        ENTITY,
        {
            "type": "person",
            "action": "event",
            "identifiers": {"id": "cus_1"},
            "name": "Added To Cart",
            "timestamp": f"{T}123",
            "attributes": {"sku": "S", "price": "24", "quantity": "3.0"},
        },
    ),
    (
        "POST",
        BATCH,
        {
            "batch": [
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": {"id": "cus_2"},
                    "attributes": {"email": "Bo@Example.com ", "created_at": ISO},
                },
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": {"id": "cus_2"},
                    "name": "checkout-started",
                    "attributes": {"cart_id": "c", "currency": "eur"},
                },
                v2_order("ORD-9", total="x"),
            ]
        },
    ),
]


def _items(body: dict[str, Any], path: str) -> list[Any]:
    return body["batch"] if path == BATCH else [body]


@pytest.mark.parametrize(("method", "path", "body"), MESSY)
def test_input_is_never_mutated(
    d2c_plan: Plan, make_request: MakeRequest, method: str, path: str, body: dict[str, Any]
) -> None:
    request = make_request(method, path, body)
    checker = Checker(d2c_plan)
    # The decoded input the checker works on, deep-compared before and after the plan runs.
    decoded = evaluate(request).operations
    snapshot = copy.deepcopy([op.body for op in decoded])
    assert checker.compiled is not None
    results = [checker.compiled.apply(op) for op in decoded]
    assert [op.body for op in decoded] == snapshot
    assert any(r.changes for r in results)
    # The verdict: changed operations carry new bodies, unchanged ones the input as sent.
    verdict = checker.check(request)
    items = _items(json.loads(request.body), path)
    changed = {c.batch_index for c in verdict.changes}
    for op in (*verdict.operations, *verdict.rejected):
        original = items[op.batch_index or 0]
        assert (op.body != original) is (op.batch_index in changed)


def _recheck(checker: Checker, op: Operation) -> Verdict:
    if op.api == "v2":
        return checker.check(Request(method="POST", path=ENTITY, body=json.dumps(op.body).encode()))
    return checker.check(Request(method=op.method, path=op.path, body=json.dumps(op.body).encode()))


@pytest.mark.parametrize(("method", "path", "body"), MESSY)
def test_fixing_is_idempotent(
    d2c_plan: Plan, make_request: MakeRequest, method: str, path: str, body: dict[str, Any]
) -> None:
    checker = Checker(d2c_plan)
    verdict = checker.check(make_request(method, path, body))
    assert verdict.changes != ()
    for op in (*verdict.operations, *verdict.rejected):
        again = _recheck(checker, op)
        assert again.changes == ()
        assert [v for v in again.violations if v.action == "fix"] == []


def test_fixed_operation_rechecks_as_accepted(d2c_plan: Plan, check: Check) -> None:
    body = {
        "name": "Purchase",
        "timestamp": str(T),
        "data": {"order_id": "ORD-1", "total": "49.90", "currency": "usd", "item_count": 2.0},
    }
    verdict = check(d2c_plan, "POST", EVENTS, body)
    assert verdict.outcome == "fixed"
    assert len(verdict.changes) == 5
    (op,) = verdict.operations
    assert op.body == {
        "name": "order_completed",
        "timestamp": T,
        "data": {"order_id": "ORD-1", "total": 49.9, "currency": "USD", "item_count": 2},
    }
    again = check(d2c_plan, "POST", EVENTS, op.body)
    assert (again.outcome, again.violations, again.changes) == ("accepted", (), ())


def test_far_future_iso_timestamp_is_rejected_not_converted(d2c_plan: Plan, check: Check) -> None:
    """Year 9999 is no time a store means; converting it would not be idempotent."""
    verdict = check(d2c_plan, "POST", EVENTS, {**order(), "timestamp": "9999-12-31T23:59:59Z"})
    assert verdict.operations == ()
    assert [(v.code, v.action) for v in verdict.violations] == [
        ("timestamp_replaced", "warn"),
        ("timestamp_format", "reject"),
    ]
    assert verdict.outcome == "rejected"
