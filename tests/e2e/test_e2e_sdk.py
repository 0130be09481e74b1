"""The official ``customerio`` SDK, unmodified, talks to the gateway over TLS; what the gateway
delivers reaches the emulator exactly as it should."""

from __future__ import annotations

import json

from e2e_env import GatewayFactory, Gw, Upstream


def _strip(events: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (e["person"], e["type"], e["name"], json.dumps(e["data"], sort_keys=True)) for e in events
    ]


def test_identify_and_track_arrive_fixed(gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Gw = gateway()
    cio = gw.sdk()
    cio.identify(id="cus_1", email="  Ana@Example.COM ", first_name="Ana", lifetime_value="10.5")
    cio.track(
        customer_id="cus_1",
        name="Order Completed",
        data={"order_id": "ORD-1", "total": "49.90", "currency": "usd"},
        timestamp=1764000000,
    )
    gw.drain()
    person = upstream.person("cus_1")
    assert person is not None
    assert person["email"] == "ana@example.com"
    # The order's derived attributes follow the identify (the plan derives them from orders).
    assert person["attributes"] == {
        "first_name": "Ana",
        "lifetime_value": 49.9,
        "order_count": 1,
        "first_order_date": 1764000000,
        "last_order_date": 1764000000,
    }
    (event,) = upstream.events()
    assert event["name"] == "order_completed"
    assert event["data"] == {"order_id": "ORD-1", "total": 49.9, "currency": "USD"}
    assert event["timestamp"] == 1764000000
    assert len(event["id"]) == 26  # every delivered event carries a ULID


def test_every_sdk_method(gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = gateway(plan=None)  # the contract only: nothing is rewritten
    cio = gw.sdk()
    cio.identify(id="cus_1", email="a@example.com", plan="pro")
    cio.identify(id="cus_2", email="b@example.com")
    cio.track(customer_id="cus_1", name="purchase", data={"sku": "A"}, timestamp=1764000001)
    cio.track_anonymous(anonymous_id="anon-1", name="added_to_cart", data={"sku": "B"})
    cio.identify(id="cus_3", email="c@example.com", anonymous_id="anon-1")
    cio.pageview(customer_id="cus_1", page="https://shop.example.com/p/1", referrer="ad")
    cio.backfill(customer_id="cus_1", name="signed_up", timestamp=1700000000, source="import")
    cio.add_device(customer_id="cus_1", device_id="tok-1", platform="ios", app_version="2.0")
    cio.add_device(customer_id="cus_1", device_id="tok-2", platform="android")
    cio.delete_device(customer_id="cus_1", device_id="tok-2")
    cio.suppress(customer_id="cus_2")
    cio.unsuppress(customer_id="cus_2")
    cio.identify(id="cus_4", email="d@example.com", plan="basic")
    cio.merge_customers("id", "cus_1", "id", "cus_4")
    cio.batch(
        [
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "cus_5"},
                "attributes": {"email": "e@example.com"},
            },
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": "cus_5"},
                "name": "batch_event",
                "attributes": {"n": 1},
            },
        ]
    )
    cio.identify(id="cus_6")
    cio.delete(customer_id="cus_6")
    gw.drain()

    ids = sorted(p["id"] for p in upstream.get("/_emulator/people"))
    assert ids == ["cus_1", "cus_3", "cus_5"]  # cus_2 suppressed, cus_4 merged, cus_6 deleted
    cus1 = upstream.person("cus_1")
    assert cus1 is not None
    assert [d["id"] for d in cus1["devices"]] == ["tok-1"]
    assert cus1["attributes"]["plan"] == "pro"
    names = [(e["name"], e["type"]) for e in upstream.events()]
    assert ("purchase", "event") in names
    assert ("https://shop.example.com/p/1", "page") in names
    assert ("signed_up", "event") in names
    assert ("batch_event", "event") in names
    anon = [e for e in upstream.events() if e["name"] == "added_to_cart"]
    assert len(anon) == 1 and anon[0]["anonymous_id"] == "anon-1"
    cus3 = upstream.person("cus_3")
    assert cus3 is not None and cus3["anonymous_ids"] == ["anon-1"]
