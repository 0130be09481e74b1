"""Drives the official Customer.io Data Pipelines Python SDK (``customerio-cdp-analytics``,
pinned in ``requirements.txt``) against any Pipelines API host: trackguard's emulator in
``tests/sdk_pipelines/test_sdk_pipelines_python.py``.

    python driver_python.py SDK_DIR URL WRITE_KEY SCENARIO [--strict]

``SDK_DIR`` holds the SDK installed on its own (``pip install --target``): it shares the
``customerio`` package name with the Track API SDK, so the two cannot live in one environment.
The host is changed the way the SDK documents it (``host``; it posts ``/v1/batch`` under it).
``--strict`` adds ``X-Strict-Mode: 1`` to the SDK's own HTTP session, as a gateway in front of
Customer.io would. Scenarios:

* ``calls``: every call type once, fixed messageIds and timestamps, gzip on; then ``flush()``.
* ``one_bad``: a good identify and a track with an empty event name in one batch.
* ``d2c``: a D2C store's defects: a cart keyed by email, ``Order Completed`` with money as
  strings, the same order again under another messageId (a retried checkout); fixed messageIds.
* ``plan``: the plan's Pipelines rules: an anonymous cart, then a login (identify with the
  anonymousId), a page without ``properties.url`` and one with it, ``User Deleted`` and
  ``Device Created or Updated`` (semantic events), a group and an alias; fixed messageIds.

Prints one JSON line per ``on_error`` callback ({"error": {...}, "batch": [messageIds]}) and
{"done": true} at the end.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

sdk_dir, url, write_key, scenario, *flags = sys.argv[1:]
sys.path.insert(0, sdk_dir)

from customerio.analytics import Client, request  # noqa: E402

AT = datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)


def out(line: object) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def on_error(exc: Exception, batch: list[dict[str, object]]) -> None:
    error = {
        "type": type(exc).__name__,
        "status": getattr(exc, "status", None),
        "code": getattr(exc, "code", None),
        "message": getattr(exc, "message", str(exc)),
    }
    out({"error": error, "batch": [m["messageId"] for m in batch]})


if "--strict" in flags:
    request._session.headers["X-Strict-Mode"] = "1"

if scenario == "calls":
    client = Client(write_key, host=url, gzip=True, on_error=on_error, max_retries=2)
    client.identify(
        "py-1",
        {"email": "pia@example.com", "plan": "pro", "created_at": datetime(2024, 1, 2, 3, 4, 5)},
        timestamp=AT,
        message_id="py-identify-1",
    )
    client.track(
        "py-1",
        "Order Completed",
        {"order_id": "P-1", "total": 49.9},
        context={"ip": "203.0.113.9"},
        integrations={"All": False, "Actions Customerio": True},
        timestamp=AT,
        message_id="py-track-1",
    )
    client.page(
        None,
        "Shop",
        "Pricing",
        {"url": "https://shop.example.com/pricing"},
        anonymous_id="anon-py",
        timestamp=AT,
        message_id="py-page-1",
    )
    client.screen(
        "py-1", name="Home", properties={"tab": "feed"}, timestamp=AT, message_id="py-screen-1"
    )
    client.group(
        "py-1", "acme", {"objectTypeId": "1", "name": "Acme"}, timestamp=AT, message_id="py-group-1"
    )
    client.alias("py-old", "py-1", timestamp=AT, message_id="py-alias-1")
elif scenario == "d2c":
    client = Client(write_key, host=url, on_error=on_error, max_retries=2)
    client.identify("cust-1", {"email": "dana@example.com"}, timestamp=AT, message_id="d2c-id-1")
    client.track(
        "shopper@example.com",
        "cart_updated",
        {"cart_id": "C-1", "subtotal": 49.9, "currency": "USD"},
        timestamp=AT,
        message_id="d2c-cart-1",
    )
    order = {"order_id": "A-1001", "total": "49.90", "currency": "USD", "item_count": "2"}
    client.track("cust-1", "Order Completed", order, timestamp=AT, message_id="d2c-order-1")
    client.track("cust-1", "order_completed", order, timestamp=AT, message_id="d2c-order-2")
elif scenario == "plan":
    client = Client(write_key, host=url, on_error=on_error, max_retries=2)
    cart = {"cart_id": "C-9", "subtotal": 20.0, "currency": "USD"}
    client.track(event="Cart Updated", properties=cart, anonymous_id="anon-cart", timestamp=AT,
                 message_id="pl-cart")  # fmt: skip
    client.track(event="product_viewed", properties={"product_id": "P-1"},
                 anonymous_id="anon-lost", timestamp=AT, message_id="pl-lost")  # fmt: skip
    client.identify("guest-7", {"plan": "free"}, timestamp=AT, message_id="pl-guest")
    client.identify("cust-7", {"email": "lee@example.com"}, anonymous_id="anon-cart",
                    timestamp=AT, message_id="pl-login")  # fmt: skip
    client.page("cust-7", "Shop", "Pricing", {"path": "/pricing"}, timestamp=AT,
                message_id="pl-page-no-url")  # fmt: skip
    client.page("cust-7", "Shop", "Pricing", {"url": "https://shop.example/pricing"},
                timestamp=AT, message_id="pl-page")  # fmt: skip
    client.track("cust-7", "User Deleted", timestamp=AT, message_id="pl-deleted")
    client.track("cust-7", "Device Created or Updated",
                 context={"device": {"token": "tok-7", "type": "ios"}}, timestamp=AT,
                 message_id="pl-device")  # fmt: skip
    client.group("cust-7", "acme", {"objectTypeId": "1", "name": "Acme"}, timestamp=AT,
                 message_id="pl-group")  # fmt: skip
    client.alias("guest-7", "cust-7", timestamp=AT, message_id="pl-alias")
else:
    # Both calls wait for each other: one batch of two, whatever the machine's speed.
    client = Client(write_key, host=url, on_error=on_error, max_retries=3, upload_size=2,
                    upload_interval=30)  # fmt: skip
    client.identify("py-2", {"plan": "free"}, timestamp=AT, message_id="py-identify-2")
    client.track("py-2", "", {"total": 1}, timestamp=AT, message_id="py-track-empty")
client.flush()
out({"done": True})
# The SDK's atexit hook joins a consumer that may sit in a 30 s queue wait: everything is sent
# and printed, so leave without it.
os._exit(0)
