"""Fixtures for the core tests: plans built from model structs, and request helpers.

The plans are written with ``trackguard.plan.model`` directly so the core tests do not depend
on the YAML loader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.plan.model import (
    EventSpec,
    EventVersion,
    IdentityPolicy,
    NamingPolicy,
    Plan,
    PropertySpec,
    TimestampPolicy,
    UnplannedPolicy,
)

P = PropertySpec

MakeRequest = Callable[..., Request]
Check = Callable[..., Verdict]


def build_d2c_plan() -> Plan:
    """A realistic D2C store plan, close to what ``examples/d2c-plan.yaml`` describes."""
    currency = P(name="currency", type="enum", values=("USD", "EUR", "GBP"), action="fix")
    events = {
        "order_completed": EventSpec(
            name="order_completed",
            aliases=("Purchase",),
            dedupe_key="data.order_id",
            properties=(
                P(name="order_id", type="string", required=True, pattern=r"^ORD-\d+$"),
                P(name="total", type="number", required=True, action="fix", minimum=0),
                currency,
                P(name="item_count", type="integer", action="fix", minimum=1, maximum=99),
            ),
            versions=(
                EventVersion(
                    version="2",
                    properties=(
                        P(name="order_ref", type="string", required=True),
                        P(name="total", type="number", required=True, action="fix"),
                    ),
                ),
            ),
        ),
        "product_viewed": EventSpec(
            name="product_viewed",
            properties=(
                P(name="sku", type="string", required=True),
                P(name="title", type="string"),
                P(name="price", type="number", action="fix", minimum=0),
            ),
        ),
        "added_to_cart": EventSpec(
            name="added_to_cart",
            properties=(
                P(name="sku", type="string", required=True),
                P(name="price", type="number", action="fix", minimum=0),
                P(name="quantity", type="integer", action="fix", minimum=1),
                P(name="cart_id", type="string"),
            ),
        ),
        "cart_updated": EventSpec(
            name="cart_updated",
            properties=(
                P(name="cart_id", type="string", required=True),
                P(name="item_count", type="integer", action="fix"),
                P(name="cart_total", type="number", action="fix"),
            ),
        ),
        "checkout_started": EventSpec(
            name="checkout_started",
            properties=(
                P(name="cart_id", type="string", required=True),
                P(name="cart_total", type="number", action="fix"),
                currency,
            ),
        ),
    }
    attributes = {
        "email": P(name="email", type="email", action="fix"),
        "first_name": P(name="first_name", type="string", max_length=50, action="warn"),
        "lifetime_value": P(name="lifetime_value", type="number", action="fix", minimum=0),
        "created_at": P(name="created_at", type="timestamp", action="fix"),
        "vip": P(name="vip", type="boolean", action="fix"),
    }
    return Plan(
        name="d2c",
        version="2025.11",
        identity=IdentityPolicy(),
        naming=NamingPolicy(),
        timestamps=TimestampPolicy(),
        unplanned=UnplannedPolicy(),
        events=events,
        attributes=attributes,
    )


@pytest.fixture(scope="session")
def d2c_plan() -> Plan:
    """Session-scoped: plans are frozen, and hypothesis tests may use it."""
    return build_d2c_plan()


@pytest.fixture
def make_request() -> MakeRequest:
    """``make_request(method, path, body)``: a dict/list body is JSON-encoded, bytes kept."""

    def make(method: str, path: str, body: Any = None) -> Request:
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        return Request(method=method, path=path, body=raw)

    return make


@pytest.fixture
def check(make_request: MakeRequest) -> Check:
    """``check(plan, method, path, body, strict=False)``: one request through a Checker."""

    def run(
        plan: Plan | None, method: str, path: str, body: Any = None, *, strict: bool = False
    ) -> Verdict:
        return Checker(plan, strict=strict).check(make_request(method, path, body))

    return run
