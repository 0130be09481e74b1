"""The official Node SDK, ``customerio-node`` (pinned in ``package.json``), unmodified, talks to
the gateway over TLS on loopback; what the gateway delivers reaches the emulator exactly.

``driver.js`` calls every method of the SDK's ``TrackClient`` the way a D2C shop does, with the
host changed the way the SDK documents it (``url: "https://HOST:PORT/api/v1"``) and the test CA
trusted through ``NODE_EXTRA_CA_CERTS``. The Node quirks of the reference
(``shared/reference/customerio-track-api.md`` §5.2, §7, §8) are asserted where they show:
``Date.now()`` milliseconds passed through as timestamps, DELETE without a body, ``{}`` bodies on
suppress, device attributes nested under ``attributes``, page views without ``data``, an invite
with no ``anonymous_id``, the v2 root derived from the v1 ``url``, ``unsubscribe`` at the host
root, and a 204 form answer taken as success.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from e2e_env import API_KEY, SITE_ID, GatewayFactory, Gw, Upstream

from npm_pinned import npm_ci

HERE = Path(__file__).resolve().parent
PINNED = json.loads((HERE / "package.json").read_text())["dependencies"]["customerio-node"]
USER_AGENT = f"Customer.io Node Client/{PINNED}"

CALLS = [
    "identify",
    "identify",
    "trackAnonymous",
    "trackAnonymous",
    "identify",
    "track",
    "track",
    "trackPageView",
    "addDevice",
    "addDevice",
    "deleteDevice",
    "suppress",
    "unsuppress",
    "identify",
    "mergeCustomers",
    "identify",
    "destroy",
    "trackAnonymous",
    "batch",
    "entity",
    "getAccountRegion",
    "addCustomersToSegment",
    "removeCustomersFromSegment",
    "submitForm",
    "reportMetric",
    "trackPush",
    "unsubscribe",
]


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """``npm ci`` into ``tests/sdk_node/node_modules`` once, unless the pinned SDK is there."""
    return npm_ci(HERE, "customerio-node")


def _drive(gw: Gw, now_ms: int, *, trust: bool = True) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    env["TG_NOW_MS"] = str(now_ms)
    if trust:
        env["NODE_EXTRA_CA_CERTS"] = str(gw.tls.ca)
    done = subprocess.run(
        ["node", str(HERE / "driver.js"), gw.url, SITE_ID, API_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["call"] for line in lines] == CALLS, done.stderr
    assert done.returncode == (0 if trust else 1), done.stderr
    return lines


def _log(gw: Gw) -> list[dict[str, Any]]:
    gw.server.stop()  # flushes the request log
    return [msgspec.json.decode(line) for line in gw.request_log.read_bytes().splitlines()]


def _sent(now_s: int, now_ms: int) -> list[tuple[str, str, Any]]:
    """What the SDK sends for each call of driver.js: method, path, JSON body (None: no body)."""
    person = "/api/v1/customers"
    cart7 = {"cart_id": "C-7", "product_id": "P-1", "quantity": 1, "price": 19.9, "currency": "USD"}
    cart1 = {"cart_id": "C-1", "product_id": "P-2", "quantity": 2, "price": 24.5, "currency": "USD"}
    order = {"order_id": "ORD-1001", "total": 49, "currency": "USD", "item_count": 2}
    return [
        (
            "PUT",
            f"{person}/cus_1",
            {"email": "ana@example.com", "first_name": "Ana", "created_at": now_s},
        ),
        ("PUT", f"{person}/cus_2", {"email": "ben@example.com", "created_at": now_ms}),
        (
            "POST",
            "/api/v1/events",
            {
                "name": "product_viewed",
                "data": {"product_id": "P-1", "price": 19.9, "currency": "USD"},
                "anonymous_id": "anon-7",
            },
        ),
        (
            "POST",
            "/api/v1/events",
            {"name": "added_to_cart", "data": cart7, "anonymous_id": "anon-7"},
        ),
        (
            "PUT",
            f"{person}/cus_3",
            {"email": "cy@example.com", "created_at": now_s, "anonymous_id": "anon-7"},
        ),
        (
            "POST",
            f"{person}/cus_1/events",
            {"name": "added_to_cart", "data": cart1, "timestamp": now_s},
        ),
        (
            "POST",
            f"{person}/cus_1/events",
            {"name": "order_completed", "data": order, "timestamp": now_ms},
        ),
        (
            "POST",
            f"{person}/cus_1/events",
            {"type": "page", "name": "https://shop.example.com/orders/ORD-1001"},
        ),
        (
            "PUT",
            f"{person}/cus_1/devices",
            {
                "device": {
                    "id": "apns-tok-1",
                    "platform": "ios",
                    "last_used": now_s,
                    "attributes": {"app_version": "3.1.0", "push_enabled": "true"},
                }
            },
        ),
        ("PUT", f"{person}/cus_1/devices", {"device": {"id": "fcm-tok-2", "platform": "android"}}),
        ("DELETE", f"{person}/cus_1/devices/fcm-tok-2", None),
        ("POST", f"{person}/cus_2/suppress", {}),
        ("POST", f"{person}/cus_2/unsuppress", {}),
        (
            "PUT",
            f"{person}/cus_4",
            {"email": "ana.work@example.com", "first_name": "Ana", "created_at": now_s},
        ),
        (
            "POST",
            "/api/v1/merge_customers",
            {"primary": {"id": "cus_1"}, "secondary": {"id": "cus_4"}},
        ),
        ("PUT", f"{person}/cus_5", {"email": "eve@example.com", "created_at": now_s}),
        ("DELETE", f"{person}/cus_5", None),
        (
            "POST",
            "/api/v1/events",
            {
                "name": "referral_invited",
                "data": {"recipient": "friend@example.com", "referrer": "cus_1"},
            },
        ),
        (
            "POST",
            "/api/v2/batch",
            {
                "batch": [
                    {
                        "type": "person",
                        "action": "identify",
                        "identifiers": {"id": "cus_6"},
                        "attributes": {"email": "fay@example.com", "created_at": now_s},
                    },
                    {
                        "type": "person",
                        "action": "event",
                        "identifiers": {"id": "cus_6"},
                        "name": "product_viewed",
                        "timestamp": now_s,
                        "attributes": {"product_id": "P-3"},
                    },
                ]
            },
        ),
        (
            "POST",
            "/api/v2/entity",
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "cus_7"},
                "attributes": {"email": "gus@example.com", "created_at": now_s},
            },
        ),
        ("GET", "/api/v1/accounts/region", None),
        ("POST", "/api/v1/segments/7/add_customers", {"ids": ["cus_1", "cus_3"]}),
        ("POST", "/api/v1/segments/7/remove_customers?id_type=id", {"ids": ["cus_3"]}),
        (
            "POST",
            "/api/v1/forms/newsletter/submit",
            {"data": {"email": "hal@example.com", "first_name": "Hal"}},
        ),
        (
            "POST",
            "/api/v1/metrics",
            {"delivery_id": "dlv-1", "metric": "opened", "timestamp": now_s},
        ),
        (
            "POST",
            "/api/v1/push/events",
            {
                "delivery_id": "dlv-2",
                "event": "opened",
                "device_id": "apns-tok-1",
                "timestamp": now_s,
            },
        ),
        ("POST", "/unsubscribe/dlv-3", {"unsubscribe": True}),
    ]


def _check_wire(log: list[dict[str, Any]], now_s: int, now_ms: int) -> None:
    """The requests the gateway received are exactly what the SDK sends (reference §5.2)."""
    got = [(e["method"], e["path"], json.loads(e["body"]) if e["body"] else None) for e in log]
    assert got == _sent(now_s, now_ms)
    for entry in log:
        headers = entry["headers"]
        assert headers["user-agent"] == USER_AGENT
        assert headers["content-type"] == "application/json"
        assert headers["authorization"] == "[redacted]"
        assert "x-retry-count" not in headers  # no call was retried
        # Content-Length only when there is a body: DELETE and GET carry none.
        assert ("content-length" in headers) == (entry["body"] != "")
    # Every call is answered 200 {}, but the form (Customer.io answers it 204, no body), and the
    # region lookup, which the gateway answers itself.
    statuses = [(e["path"], e["status"]) for e in log if e["status"] != 200]
    assert statuses == [("/api/v1/forms/newsletter/submit", 204)]
    assert all(e["response"] == "{}\n" for e in log if e["status"] == 200 and e["method"] != "GET")


@pytest.mark.usefixtures("node_sdk")
def test_node_sdk_every_track_call_through_the_d2c_plan(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()  # examples/d2c-plan.yaml
    now_ms = int(time.time() * 1000)  # the driver's Date.now()
    now_s = now_ms // 1000
    answers = _drive(gw, now_ms)
    done_s = int(time.time()) + 1

    # The SDK resolved every call: {} for each, the region lookup's own answer.
    assert all(a["ok"] for a in answers), answers
    region = {"url": upstream.server.url, "region": "us", "environment_id": 0}
    assert [a["response"] for a in answers] == [
        region if call == "getAccountRegion" else {} for call in CALLS
    ]

    gw.drain()
    log = _log(gw)
    _check_wire(log, now_s, now_ms)
    # The request log keeps the region answer the gateway gave, as it keeps every response.
    assert [json.loads(e["response"]) for e in log if e["method"] == "GET"] == [region]
    # Verdicts: Date.now() milliseconds (identify's created_at, the order's timestamp) are fixed
    # to seconds by the plan's `timestamps: fix`; the unplanned invite event is warned; the rest
    # passes as sent.
    verdicts = {
        i: (e["outcome"], e["codes"]) for i, e in enumerate(log) if e["outcome"] != "accepted"
    }
    assert verdicts == {
        1: ("fixed", ["timestamp_format"]),
        6: ("fixed", ["timestamp_format"]),
        17: ("warned", ["event_unplanned"]),
    }
    assert all(e["codes"] == [] for e in log if e["outcome"] == "accepted")

    # What the emulator holds after delivery.
    people = upstream.get("/_emulator/people")
    cio = {p["cio_id"]: p["id"] for p in people}
    for p in people:
        del p["cio_id"]
    order_attrs = {
        "first_order_date": now_s,
        "last_order_date": now_s,
        "order_count": 1,
        "lifetime_value": 49.0,
    }

    def person(pid: str, email: str, attributes: dict[str, Any], **rest: Any) -> dict[str, Any]:
        view = {
            "id": pid,
            "email": email,
            "attributes": attributes,
            "devices": [],
            "segments": [],
            "relationships": [],
            "anonymous_ids": [],
        }
        return view | rest

    # cus_2 suppressed (unsuppress frees the id, it does not restore the profile), cus_4 merged
    # into cus_1, cus_5 deleted.
    assert people == [
        person(
            "cus_1",
            "ana@example.com",
            {"first_name": "Ana", "created_at": now_s} | order_attrs,
            devices=[
                {
                    "id": "apns-tok-1",
                    "platform": "ios",
                    "last_used": now_s,
                    "attributes": {"app_version": "3.1.0", "push_enabled": "true"},
                }
            ],
            segments=["7"],
        ),
        person("cus_3", "cy@example.com", {"created_at": now_s}, anonymous_ids=["anon-7"]),
        person("cus_6", "fay@example.com", {"created_at": now_s}),
        person("cus_7", "gus@example.com", {"created_at": now_s}),
    ]
    assert upstream.person("cus_2") is None
    assert upstream.get("/_emulator/segments") == {
        "7": [next(c for c, pid in cio.items() if pid == "cus_1")]
    }

    events = upstream.events()
    ids = [e.pop("id") for e in events]
    assert len(set(ids)) == len(ids) and all(len(i) == 26 for i in ids)  # ULIDs
    for e in events:
        del e["seq"], e["received_at"]
        e["person"] = cio.get(e["person"])
    # Sent without a timestamp: stamped with the time the gateway received them.
    stamped = [events[i].pop("timestamp") for i in (0, 1, 4, 5)]
    assert all(now_s <= t <= done_s for t in stamped), (now_s, stamped, done_s)

    def event(kind: str, name: str, data: dict[str, Any], **rest: Any) -> dict[str, Any]:
        return {"type": kind, "name": name, "data": data, "anonymous_id": None} | rest

    by_id = {"identifier": {"id": "cus_1"}, "person": "cus_1", "api": "v2"}
    assert events == [
        event(
            "event",
            "product_viewed",
            {"product_id": "P-1", "price": 19.9, "currency": "USD"},
            api="v1",
            person="cus_3",  # linked by identify's anonymous_id
            identifier=None,
            anonymous_id="anon-7",
        ),
        event(
            "event",
            "added_to_cart",
            _sent(now_s, now_ms)[3][2]["data"],
            api="v1",
            person="cus_3",
            identifier=None,
            anonymous_id="anon-7",
        ),
        event("event", "added_to_cart", _sent(now_s, now_ms)[5][2]["data"], timestamp=now_s)
        | by_id,
        # Sent with Date.now() milliseconds; delivered in seconds.
        event("event", "order_completed", _sent(now_s, now_ms)[6][2]["data"], timestamp=now_s)
        | by_id,
        event("page", "https://shop.example.com/orders/ORD-1001", {}) | by_id,
        event(
            "event",
            "referral_invited",
            {"recipient": "friend@example.com", "referrer": "cus_1"},
            api="v1",
            person=None,
            identifier=None,
        ),
        event(
            "event",
            "product_viewed",
            {"product_id": "P-3"},
            timestamp=now_s,
            api="v2",
            person="cus_6",
            identifier={"id": "cus_6"},
        ),
    ]

    activity = upstream.get("/_emulator/activity")
    for row in activity["forms"] + activity["deliveries"]:
        del row["received_at"]
    assert activity == {
        "forms": [
            {"form_id": "newsletter", "data": {"email": "hal@example.com", "first_name": "Hal"}}
        ],
        "deliveries": [
            {
                "kind": "metric",
                "delivery_id": "dlv-1",
                "metric": "opened",
                "body": {"delivery_id": "dlv-1", "metric": "opened", "timestamp": now_s},
            },
            {
                "kind": "push_metric",
                "delivery_id": "dlv-2",
                "metric": "opened",
                "body": {
                    "delivery_id": "dlv-2",
                    "event": "opened",
                    "device_id": "apns-tok-1",
                    "timestamp": now_s,
                },
            },
            {
                "kind": "unsubscribe",
                "delivery_id": "dlv-3",
                "metric": "unsubscribed",
                "body": {"unsubscribe": True},
            },
        ],
        "failures": [],
    }

    # cus_2's Date.now() created_at reached Customer.io in seconds before the suppression.
    delivered = [
        item
        for r in upstream.get("/_emulator/requests")
        if r["path"] == "/api/v2/batch"
        for item in json.loads(r["body"])["batch"]
    ]
    assert [
        (i["action"], i.get("attributes"))
        for i in delivered
        if i.get("identifiers") == {"id": "cus_2"}
    ] == [
        ("identify", {"email": "ben@example.com", "created_at": now_s}),
        ("suppress", None),
        ("unsuppress", None),
    ]


@pytest.mark.usefixtures("node_sdk")
def test_node_sdk_millisecond_timestamps_pass_the_contract_unchanged(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    """Customer.io does not reject millisecond timestamps (reference §7.1, §8): without a plan
    the gateway accepts every Node call as sent and delivers the milliseconds untouched."""
    gw = gateway(plan=None)
    now_ms = int(time.time() * 1000)
    now_s = now_ms // 1000
    answers = _drive(gw, now_ms)
    assert all(a["ok"] for a in answers), answers
    gw.drain()
    log = _log(gw)
    _check_wire(log, now_s, now_ms)
    assert [(e["outcome"], e["codes"]) for e in log] == [("accepted", [])] * len(CALLS)
    (order,) = upstream.events(name="order_completed")
    assert order["timestamp"] == now_ms
    assert order["data"] == _sent(now_s, now_ms)[6][2]["data"]


@pytest.mark.usefixtures("node_sdk")
def test_node_sdk_refuses_the_gateway_without_the_test_ca(gateway: GatewayFactory) -> None:
    """The TLS is real: without NODE_EXTRA_CA_CERTS the SDK's fetch rejects the certificate and
    no request reaches the gateway."""
    gw = gateway()
    answers = _drive(gw, int(time.time() * 1000), trust=False)
    for answer in answers:
        assert answer["ok"] is False
        assert answer["error"]["name"] == "TypeError"
        assert answer["error"]["message"] == "fetch failed"
        assert "certificate" in answer["error"]["cause"]
    assert _log(gw) == []
