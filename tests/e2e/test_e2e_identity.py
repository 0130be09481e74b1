"""Identity scenarios through the gateway with the official SDK: mixed id/email carts end up
on one person, an anonymous cart is linked at login, and a cart after the purchase is flagged."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from e2e_env import PLAN, GatewayFactory, Upstream

from trackguard.store.sqlite import SQLiteStore


def _plan(tmp_path: Path, replace: dict[str, str]) -> Path:
    text = PLAN.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def _codes(log: Path) -> list[list[str]]:
    return [msgspec.json.decode(line).get("codes", []) for line in log.read_bytes().splitlines()]


def test_mixed_id_and_email_carts_end_up_on_one_person(
    gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, {"email_keyed: warn": "email_keyed: fix"})
    gw = gateway(plan=plan)
    cio = gw.sdk()
    cart = {"cart_id": "c1", "item_count": 1, "subtotal": 20.0, "currency": "USD"}
    now = int(time.time())
    cio.identify(id="cus_1", email="Ana@Example.com")
    cio.track(customer_id="cus_1", name="cart_updated", data=cart, timestamp=now)
    cio.track(customer_id="ana@example.com", name="cart_updated", data=cart, timestamp=now + 1)
    cio.track(customer_id="bo@example.com", name="cart_updated", data=cart, timestamp=now + 2)
    gw.drain()
    gw.server.stop()  # flushes the request log
    carts = upstream.events(name="cart_updated")
    assert [(e["identifier"], e["timestamp"]) for e in carts] == [
        ({"id": "cus_1"}, now),
        ({"id": "cus_1"}, now + 1),  # rewritten from the email to the known id
        ({"email": "bo@example.com"}, now + 2),  # unknown email: passed with a warning
    ]
    codes = _codes(gw.request_log)
    assert codes[2] == ["identity_not_canonical"] and codes[3] == ["identity_not_canonical"]


def test_an_email_bound_to_another_id_is_a_conflict_never_a_merge(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    cio = gw.sdk()
    cio.identify(id="cus_1", email="ana@example.com")
    cio.identify(id="cus_2", email="ANA@example.com")
    cio.identify(id="CUS_1", first_name="Ana")
    gw.drain()
    gw.server.stop()  # flushes the request log
    assert sorted(p["id"] for p in upstream.get("/_emulator/people")) == ["CUS_1", "cus_1"]
    codes = _codes(gw.request_log)
    assert codes[1] == ["identity_conflict", "email_not_normalized"]
    assert codes[2] == ["identity_id_case"]
    store = SQLiteStore(gw.db)
    try:
        (record,) = store.quarantine_list()
        assert record.codes == ("email_not_normalized", "identity_conflict")
        assert store.identities() == [("ana@example.com", "cus_1")]
    finally:
        store.close()


def test_an_anonymous_cart_is_linked_at_login_and_delivered_first(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    cio = gw.sdk()
    now = int(time.time())
    item = {"cart_id": "c9", "product_id": "tee", "quantity": 1}
    cio.track_anonymous(anonymous_id="anon-1", name="added_to_cart", data=item, timestamp=now)
    cio.track_anonymous(anonymous_id="anon-2", name="added_to_cart", data=item, timestamp=now)
    cio.identify(id="cus_7", email="cy@example.com", anonymous_id="anon-1")
    gw.drain()
    gw.server.stop()  # flushes the request log
    person = upstream.person("cus_7")
    assert person is not None and person["anonymous_ids"] == ["anon-1"]
    (event,) = [e for e in upstream.events() if e["anonymous_id"] == "anon-1"]
    assert event["person"] == person["cio_id"]  # merged: the cart reached the known person
    store = SQLiteStore(gw.db)
    try:
        unlinked = store.unlinked_anonymous(time.time() + 1)
        assert [(a, e) for a, _, e in unlinked] == [("anon-2", "added_to_cart")]
    finally:
        store.close()


def test_a_cart_event_that_arrives_after_the_purchase_is_flagged(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    plan = _plan(
        tmp_path,
        {
            "timestamps:\n": "timeliness:\n  stale_after_purchase: {events: [cart_updated]}\n"
            "timestamps:\n",
        },
    )
    gw = gateway(plan=plan)
    cio = gw.sdk()
    now = int(time.time())
    order = {"order_id": "ORD-9", "total": 20.0, "currency": "USD"}
    cart = {"cart_id": "c1", "item_count": 1, "subtotal": 20.0, "currency": "USD"}
    cio.track(customer_id="cus_3", name="order_completed", data=order, timestamp=now)
    cio.track(customer_id="cus_3", name="cart_updated", data=cart, timestamp=now - 300)
    cio.track(customer_id="cus_3", name="cart_updated", data=cart, timestamp=now + 5)
    cio.track(customer_id="cus_3", name="cart_updated", data=cart, timestamp=now - 5 * 86_400)
    gw.server.stop()
    codes = _codes(gw.request_log)
    assert codes[1] == ["stale_after_purchase"]
    assert codes[2] == []
    assert codes[3] == ["event_late", "stale_after_purchase"]
