"""The fast path gives the same verdict as the full pipeline, always, and is taken when it can.

The fast path only answers when it can prove a request has no finding; these tests run both
paths over the sample traffic and over generated bodies and compare whole verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.check.inputs import record_to_request
from trackguard.check.samples import BASE_TIME, d2c_traffic
from trackguard.contract.operations import Request
from trackguard.contract.routes import match
from trackguard.core.fastpath import FastEvents
from trackguard.core.pipeline import Checker
from trackguard.plan.loader import load_plan

PLAN = load_plan(Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml")
FAST = Checker(PLAN)
SLOW = Checker(PLAN, fast=False)
EVENTS = "/api/v1/customers/cus_1/events"
#: Events of the sample (3,000 requests, seed 11) whose only finding, once late, is event_late.
LATE_ONLY = 1789


def _taken(request: Request) -> bool:
    assert FAST.fast is not None
    return FAST.fast.check(request, match(request.method, request.path)) is not None


def test_sample_traffic_same_verdicts_and_most_clean_events_take_the_fast_path() -> None:
    taken = 0
    requests = [record_to_request(r, "sample") for r in d2c_traffic(3000, 11, base_time=BASE_TIME)]
    for request in requests:
        assert isinstance(request, Request)
        assert FAST.check(request) == SLOW.check(request)
        taken += _taken(request)
    clean = sum(
        1
        for r in requests
        if isinstance(r, Request)
        and r.path.startswith("/api/v1/customers/")
        and r.path.endswith("/events")
        and SLOW.check(r).outcome == "accepted"
        and not SLOW.check(r).violations
    )
    assert clean > 1000
    assert taken == clean  # every clean planned event, and nothing else


def test_late_events_same_verdicts_and_clean_late_ones_take_the_fast_path() -> None:
    """With a clock, an event older than ``max_age`` (``late: warn``) whose only finding is
    that gets the full walk's ``event_late`` warning from the fast path; the rest still match."""
    requests = [record_to_request(r, "sample") for r in d2c_traffic(3000, 11, base_time=BASE_TIME)]
    last = BASE_TIME + 3000 * 7
    for now in (last + 10 * 86_400, last + 100 * 86_400, last, BASE_TIME - 86_400):
        taken = late_only = 0
        for request in requests:
            assert isinstance(request, Request)
            slow = SLOW.check(request, now=now)
            assert FAST.check(request, now=now) == slow
            assert FAST.fast is not None
            hit = match(request.method, request.path)
            taken += FAST.fast.check(request, hit, now) is not None
            late_only += (
                request.path.endswith("/events")
                and slow.outcome == "warned"
                and [v.code for v in slow.violations] == ["event_late"]
            )
        if now > last + 3 * 86_400:  # every event is late
            assert taken == late_only == LATE_ONLY
        else:
            assert late_only == 0
    order = _post({"name": "order_completed", "data": ORDER, "timestamp": 1764000000})
    verdict = FAST.check(order, now=1764000000 + 5 * 86_400 + 7200)
    assert _taken(order)
    assert verdict.outcome == "warned"
    assert [v.message for v in verdict.violations] == [
        "event is 5d 2h old: Customer.io does not trigger campaigns on events older than 3d 0h"
    ]


def _post(body: Any) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request(method="POST", path=EVENTS, body=raw)


ORDER = {"order_id": "ORD-1", "total": 10.5, "currency": "USD"}


def test_a_clean_order_is_fast_and_carries_its_dedupe_key() -> None:
    request = _post({"name": "order_completed", "data": ORDER, "timestamp": 1764000000})
    assert _taken(request)
    (op,) = FAST.check(request).operations
    assert op.dedupe_key == "order_completed:ORD-1"
    assert FAST.check(request) == SLOW.check(request)


def test_what_the_fast_path_leaves_to_the_full_pipeline() -> None:
    cases = [
        {"name": "Order Completed", "data": ORDER},  # drift
        {"name": "order_completed", "data": {**ORDER, "total": "10.50"}},  # number as string
        {"name": "order_completed", "data": ORDER, "timestamp": 1764000000123},  # ms
        {"name": "order_completed", "data": {**ORDER, "schema_version": 2}},  # versions
        {"name": "order_completed", "data": {**ORDER, "gift": True}},  # unplanned: warn
        {"name": "order_completed", "data": ORDER, "id": "not-a-ulid"},  # contract warning
        {"name": "order_completed", "data": ORDER, "type": "page"},  # a page view
        {"name": "order_completed", "data": None},  # required properties missing
    ]
    for body in cases:
        request = _post(body)
        assert not _taken(request), body
        assert FAST.check(request) == SLOW.check(request)
    email_keyed = Request(
        method="POST",
        path="/api/v1/customers/a%40b.com/events",
        body=json.dumps({"name": "order_completed", "data": ORDER}).encode(),
    )
    assert not _taken(email_keyed)
    repeated_name = (
        b'{"name": "order_completed", "data": {"order_id": "1", "total": 1, '
        b'"currency": "USD"}, "name": "cart_updated"}'
    )
    assert not _taken(_post(repeated_name))
    assert FAST.check(_post(repeated_name)) == SLOW.check(_post(repeated_name))


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["USD", "usd", "ORD-1", "", "a@b.co", "A@B.co "]),
)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
_props = st.sampled_from(
    [
        "order_id",
        "total",
        "currency",
        "discount",
        "coupon",
        "item_count",
        "items",
        "shipping",
        "first_order",
        "cart_id",
        "product_id",
        "quantity",
        "price",
        "subtotal",
        "extra",
    ]
)


@settings(max_examples=400)
@given(
    name=st.sampled_from([*PLAN.events, "Order Completed", "x"]),
    data=st.one_of(st.none(), st.dictionaries(_props, _values, max_size=6)),
    timestamp=st.one_of(st.none(), st.integers(-5, 10**13), st.text(max_size=5)),
    extra=st.dictionaries(st.sampled_from(["id", "type", "anonymous_id"]), _values, max_size=2),
)
def test_generated_bodies_same_verdict(
    name: str, data: Any, timestamp: Any, extra: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"name": name, **extra}
    if data is not None:
        body["data"] = data
    if timestamp is not None:
        body["timestamp"] = timestamp
    request = _post(body)
    assert FAST.check(request) == SLOW.check(request)


def test_a_plan_without_events_has_no_fast_decoder() -> None:
    from trackguard.plan.model import Plan

    assert FastEvents(Plan()).decoder is None
