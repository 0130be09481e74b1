"""The official Pipelines SDKs (Python ``customerio-cdp-analytics`` and Node
``@customerio/cdp-analytics-node``, unmodified) → the trackguard gateway → the emulator playing
Customer.io's Pipelines API, all over loopback.

The SDK is pointed at the gateway the way its docs say (``host``); the gateway checks every
call, dedupes on messageId and the plan's business keys, and delivery sends what it accepted to
the emulator as ``/v1/batch`` with ``X-Strict-Mode: 1`` and the write key. What arrives at the
emulator is asserted call by call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sdk_env import WRITE_KEY, drive_node
from test_sdk_pipelines_cio_node import _expected as _cio_expected
from test_sdk_pipelines_cio_node import cio_node
from test_sdk_pipelines_node import _expected, node_sdk
from test_sdk_pipelines_python import BEARER_KEY, CALLS, PLAIN_KEY, drive, python_sdk

from outbox_wait import drain
from trackguard import __version__
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.sqlite import open_store

__all__ = ["cio_node", "node_sdk", "python_sdk"]  # the fixtures that install the SDKs

PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
AT = "2024-06-01T12:00:00.123+00:00"


@dataclass
class Path3:
    """SDK → gateway → emulator."""

    emulator: Emulator
    upstream: RunningServer
    app: Gateway
    gateway: RunningServer
    db: Path

    def drain(self, timeout: float = 20.0) -> None:
        """Wait until delivery settled every outbox row."""
        drain(self.db, timeout)

    def calls(self) -> list[dict[str, Any]]:
        return [c["call"] for c in self.emulator.pipelines.calls_view()]


@pytest.fixture
def through(tmp_path: Path) -> Iterator[Callable[..., Path3]]:
    made: list[tuple[RunningServer, RunningServer, Emulator]] = []

    def make(plan: Path | None, key: str = PLAIN_KEY) -> Path3:
        emulator = create_emulator("site", "key", write_key=key)
        upstream = start_in_thread(emulator)
        options = GatewayOptions(
            plan=plan,
            db=tmp_path / "tg.db",
            upstream=upstream.url,
            pipelines_upstream=upstream.url,
        )
        auth = AuthConfig(upstream=Credentials("site", "key"), pipelines_key=key)
        app = create_gateway(options, auth)
        gateway = start_in_thread(app)
        made.append((gateway, upstream, emulator))
        return Path3(emulator, upstream, app, gateway, options.db)

    yield make
    for gateway, upstream, emulator in made:
        gateway.stop()
        upstream.stop()
        emulator.close()


#: The Python SDK's batch-level ``sentAt``: microseconds and a numeric offset.
SENT_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def without_sent_at(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls without their ``sentAt``, which each must carry: the Python SDK sends it once
    per batch, and the gateway puts it on every call, since delivery batches calls anew."""
    assert all(SENT_AT.fullmatch(c["sentAt"]) for c in calls), [c.get("sentAt") for c in calls]
    return [{k: v for k, v in c.items() if k != "sentAt"} for c in calls]


@pytest.mark.parametrize("key", [PLAIN_KEY, BEARER_KEY], ids=["basic", "bearer"])
def test_every_call_type_arrives_once_unchanged_and_a_resend_is_delivered_once(
    python_sdk: Path, through: Callable[..., Path3], key: str
) -> None:
    p = through(None, key)  # the SDK sends Bearer for an sk_us_ key; delivery sends Basic
    assert drive(python_sdk, p.gateway, key, "calls", "--strict") == []
    p.drain()
    # messageIds, timestamps, context and integrations as sent, and the batch's sentAt
    assert without_sent_at(p.calls()) == CALLS
    requests = p.emulator.log.snapshot()
    assert {(r["path"], r["status"]) for r in requests} == {("/v1/batch", 200)}
    assert {(r["headers"]["x-strict-mode"], r["headers"]["user-agent"]) for r in requests} == {
        ("1", f"trackguard/{__version__}")
    }
    sent = len(requests)
    # The SDK resends a batch with the same messageIds when it retries: the gateway answers
    # 200 and delivers nothing again.
    assert drive(python_sdk, p.gateway, key, "calls") == []
    p.drain()
    assert without_sent_at(p.calls()) == CALLS
    assert len(p.emulator.log.snapshot()) == sent
    assert p.emulator.pipelines.counts()["pipelines_duplicates"] == 0  # upstream never saw a repeat
    assert p.app.parts.metrics.duplicates == len(CALLS)
    assert p.app.parts.metrics.requests["POST /v1/batch", 200] == 2


def test_the_d2c_defects_are_fixed_flagged_and_deduplicated_per_the_plan(
    python_sdk: Path, through: Callable[..., Path3]
) -> None:
    p = through(PLAN)
    assert drive(python_sdk, p.gateway, PLAIN_KEY, "d2c") == []
    p.drain()
    got = [
        (c["messageId"], c["userId"], c.get("event"), c.get("properties") or c.get("traits"))
        for c in p.calls()
    ]
    assert got == [
        ("d2c-id-1", "cust-1", None, {"email": "dana@example.com"}),
        # keyed by email: the plan's identity.email_keyed is warn, so it is delivered, flagged
        (
            "d2c-cart-1",
            "shopper@example.com",
            "cart_updated",
            {"cart_id": "C-1", "subtotal": 49.9, "currency": "USD"},
        ),
        # renamed by the naming fix; money and counts converted by the plan's fix rules
        (
            "d2c-order-1",
            "cust-1",
            "order_completed",
            {"order_id": "A-1001", "total": 49.9, "currency": "USD", "item_count": 2},
        ),
        # d2c-order-2 is the same order (business key order_completed:A-1001): not delivered
    ]
    assert all(c["timestamp"] == AT for c in p.calls())  # ISO-8601 kept, never converted
    codes = p.app.parts.metrics.codes
    assert codes["identity_not_canonical", "warn"] == 1
    assert codes["event_name_drift", "fix"] == 1
    assert codes["property_type", "fix"] == 4  # total and item_count, in both orders
    assert p.app.parts.metrics.duplicates == 1
    assert p.emulator.pipelines.counts()["pipelines_duplicates"] == 0


def test_the_node_sdk_through_the_gateway_arrives_once_unchanged(
    node_sdk: str, through: Callable[..., Path3]
) -> None:
    assert WRITE_KEY == PLAIN_KEY  # drive_node sends the emulator's (and here the gateway's) key
    p = through(None)
    lines = drive_node("driver.js", p.gateway.url)
    assert lines[-1] == {"done": True}
    assert [line for line in lines if "error" in line] == []
    p.drain()
    assert p.calls() == _expected(node_sdk)  # _metadata, context and all, as the SDK sent them
    again = drive_node("driver.js", p.gateway.url)  # the same messageIds again
    assert [line for line in again if "error" in line] == []
    p.drain()
    assert p.calls() == _expected(node_sdk)
    assert p.app.parts.metrics.duplicates == len(_expected(node_sdk))


def test_customerio_node_pipelines_client_gets_the_contracts_answers_from_the_gateway(
    cio_node: str, through: Callable[..., Path3]
) -> None:
    p = through(None)
    steps = drive_node("driver_cio_node.js", p.gateway.url)
    assert [(s["step"], s.get("response"), s.get("error")) for s in steps] == [
        *[(name, {}, None) for name in
          ("identify", "track", "page", "screen", "group", "alias", "batch")],
        ("strict bad timestamp", None, {
            "name": "CustomerIORequestError", "statusCode": 400,
            "message": "1 error:\n  - timestamp: must be an ISO-8601 date-time string"}),
        ("permissive bad timestamp", {}, None),
        ("strict wrong key", None, {
            "name": "CustomerIORequestError", "statusCode": 401,
            "message": "1 error:\n  - Unauthorized request"}),
    ]  # fmt: skip
    p.drain()
    # Each call type arrived on its own endpoint; delivery sends them on as one /v1/batch.
    assert p.calls() == [call for _path, call in _cio_expected(cio_node)]
    assert {r["path"] for r in p.emulator.log.snapshot()} == {"/v1/batch"}
    store = open_store(p.db)
    try:
        records = store.quarantine_list()
    finally:
        store.close()
    assert sorted((r.path, r.status, r.codes) for r in records) == [
        ("/v1/track", 200, ("timestamp_invalid",)),
        ("/v1/track", 400, ("timestamp_invalid",)),
    ]  # the wrong key's call is not kept


PIPELINES_PLAN = """\
version: 1
naming: {convention: snake_case, action: fix}
semantic_events:
  allow: [Device Created or Updated]
events:
  cart_updated:
    properties:
      cart_id: {type: string, required: true}
      subtotal: number
      currency: string
pages:
  Pricing:
    properties:
      url: {type: string, required: true}
      path: string
"""


def test_the_plans_pipelines_rules_hold_from_the_python_sdk_to_the_emulator(
    python_sdk: Path, through: Callable[..., Path3], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PIPELINES_PLAN)
    p = through(plan)
    assert drive(python_sdk, p.gateway, PLAIN_KEY, "plan") == []  # permissive: 200 for all
    p.drain()
    calls = without_sent_at(p.calls())
    assert [(c["messageId"], c["type"], c.get("event") or c.get("name")) for c in calls] == [
        ("pl-cart", "track", "cart_updated"),  # renamed by the naming fix
        ("pl-lost", "track", "product_viewed"),
        ("pl-guest", "identify", None),
        ("pl-login", "identify", None),
        ("pl-page", "page", "Pricing"),
        ("pl-device", "track", "Device Created or Updated"),  # allowed: sent as written
        ("pl-group", "group", None),
        ("pl-alias", "alias", None),
    ]
    by_id = {c["messageId"]: c for c in calls}
    assert by_id["pl-device"]["context"]["device"] == {"token": "tok-7", "type": "ios"}
    assert (by_id["pl-group"]["userId"], by_id["pl-group"]["groupId"]) == ("cust-7", "acme")
    assert (by_id["pl-alias"]["previousId"], by_id["pl-alias"]["userId"]) == ("guest-7", "cust-7")

    # What Journeys would hold: the cart merged into the person at login, the guest profile
    # merged by the alias, the relationship to the group's object.
    state = p.emulator.state
    person = state.person_view("cust-7")
    assert person is not None
    assert person["anonymous_ids"] == ["anon-cart"]
    assert person["attributes"]["plan"] == "free"  # from guest-7, merged in
    assert [(r["object_type_id"], r["object_id"]) for r in person["relationships"]] == [
        ("1", "acme")
    ]
    assert state.person_view("guest-7") is None
    names = [e["name"] for e in state.events_view(person="cust-7")]
    assert names == [
        "cart_updated",
        "https://shop.example/pricing",
        "Device Created or Updated",
    ]

    store = open_store(p.db)
    try:
        records = store.quarantine_list()
        unlinked = store.unlinked_anonymous(1e12)
        identities = store.identities()
    finally:
        store.close()
    kept = sorted((json.loads(r.body)["messageId"], r.codes) for r in records)
    assert kept == [
        ("pl-deleted", ("destructive_event", "semantic_event_not_allowed")),
        ("pl-page-no-url", ("page_without_url", "property_missing")),
    ]
    # The store learned the login: the cart's anonymousId is linked, the lost one is not.
    assert [(a, e) for a, _seen, e in unlinked] == [("anon-lost", "product_viewed")]
    assert ("lee@example.com", "cust-7") in identities
