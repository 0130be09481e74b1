"""Retries are harmless: duplicates are answered 2xx, delivered once, and derived profile
attributes (lifetime value, order count, order dates) never count an order twice."""

from __future__ import annotations

from e2e_env import GatewayFactory, Upstream

from trackguard.store.sqlite import SQLiteStore

T = 1_764_000_000


def _order(order_id: str, total: object) -> dict[str, object]:
    return {"order_id": order_id, "total": total, "currency": "USD"}


def test_a_retried_order_is_delivered_once_and_lifetime_value_adds_up(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    cio = gw.sdk()
    cio.identify(id="cus_1", email="ana@example.com")
    cio.track(customer_id="cus_1", name="order_completed", data=_order("ORD-1", 10.5), timestamp=T)
    cio.track(customer_id="cus_1", name="order_completed", data=_order("ORD-1", 10.5), timestamp=T)
    cio.track(
        customer_id="cus_1", name="Order Completed", data=_order("ORD-2", "20.25"), timestamp=T + 60
    )
    cio.track(
        customer_id="cus_1", name="order_completed", data=_order("ORD-1", 10.5), timestamp=T
    )  # a replay hours later: still the same order
    gw.drain()

    orders = upstream.events(name="order_completed")
    assert sorted(e["data"]["order_id"] for e in orders) == ["ORD-1", "ORD-2"]
    person = upstream.person("cus_1")
    assert person is not None
    assert {
        k: person["attributes"][k]
        for k in ("first_order_date", "last_order_date", "order_count", "lifetime_value")
    } == {
        "first_order_date": T,
        "last_order_date": T + 60,
        "order_count": 2,
        "lifetime_value": 30.75,
    }
    assert upstream.emulator.stats()["duplicates"] == 0  # nothing was even sent twice
    store = SQLiteStore(gw.db)
    try:
        assert store.duplicate_count() == 2
        assert store.profile("id:cus_1") == {
            "first_order_date": T,
            "last_order_date": T + 60,
            "order_count": 2,
            "lifetime_value": 30.75,
        }
    finally:
        store.close()


def test_an_sdk_retry_of_an_event_without_a_key_is_delivered_once(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    cio = gw.sdk()
    data = {"product_id": "tee", "sku": "SKU-TEE", "price": 24.0}
    for _ in range(3):  # the same request, as an SDK retry after a timeout sends it
        cio.track(customer_id="cus_2", name="product_viewed", data=data, timestamp=T)
    cio.track(customer_id="cus_2", name="product_viewed", data=data, timestamp=T + 1)
    gw.drain()
    assert [e["timestamp"] for e in upstream.events(name="product_viewed")] == [T, T + 1]
