"""Deterministic D2C store traffic with the defects retention teams actually ship.

Used by ``trackguard sample``, the benchmarks and the tests. Each record is one request, a line
of the ``check`` input format: ``{"method", "path", "body"}``, where ``body`` is a JSON value, or
a string holding raw (possibly broken) body text.

Event times are ``SAMPLE_SPACING`` seconds apart and, by default, end at the run's clock, so the
traffic is as fresh today as on the day it was written (a fixed date would age into
``event_late`` findings); ``base_time`` fixes them for reproducible files and tests.

The defects, each at a known rate: event names drifting (``Order Completed``, ``orderCompleted``),
carts keyed by email instead of id, events with no name, millisecond and ISO timestamps, money
and quantities as strings, SDK retries (the same order twice), ``data`` sent as a string,
over-long event names, malformed JSON, and emails with stray case and spaces.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from trackguard.plan.naming import to_convention

#: A fixed first event time (2025-11-24) for reproducible samples: tests and benchmarks pass it.
BASE_TIME = 1_764_000_000
#: Seconds between consecutive sample requests' event times.
SAMPLE_SPACING = 7
PRODUCTS = [
    ("SKU-TEE-BLK", "Black tee", 24.0),
    ("SKU-HOOD-GRY", "Grey hoodie", 59.9),
    ("SKU-CAP-NVY", "Navy cap", 19.5),
    ("SKU-SOCK-3PK", "Socks 3-pack", 12.0),
    ("SKU-JKT-OLV", "Olive jacket", 129.0),
]
CURRENCIES = ["USD", "EUR", "GBP"]


def _person(rng: random.Random) -> tuple[str, str]:
    n = rng.randrange(1, 400)
    return f"cus_{n:05d}", f"shopper{n}@example.com"


def _customer_path(ident: str, suffix: str = "") -> str:
    return f"/api/v1/customers/{quote(ident, safe='')}{suffix}"


#: The share of event requests with a defect by default: high, so a short sample shows them all.
DEMO_DEFECT_RATE = 0.33


def d2c_traffic(
    n: int = 2000,
    seed: int = 7,
    defect_rate: float = DEMO_DEFECT_RATE,
    *,
    base_time: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Exactly ``n`` request records (an SDK retry is one of them); the same ``(n, seed,
    defect_rate, base_time)`` always gives the same records.

    ``defect_rate`` scales every defect's share (``0.05`` is closer to production traffic,
    where most requests are clean); the default shows each kind of defect often.
    ``base_time`` is the first request's event time; by default the run's clock less the
    sample's span, so no event time is later than now.
    """
    if not 0 < defect_rate <= DEMO_DEFECT_RATE:
        raise ValueError(f"defect_rate must be in (0, {DEMO_DEFECT_RATE}]")
    if base_time is None:
        base_time = int(time.time()) - max(n - 1, 0) * SAMPLE_SPACING
    return itertools.islice(_traffic(seed, defect_rate, base_time), max(n, 0))


def _traffic(seed: int, defect_rate: float, base_time: int) -> Iterator[dict[str, Any]]:
    """The endless stream ``d2c_traffic`` cuts; draw ``i`` happens at ``base_time + 7 i`` (a
    retry repeats its draw, so no record is later than ``base_time + 7 (n - 1)``)."""
    scale = DEMO_DEFECT_RATE / defect_rate  # >= 1: draws spread over a wider range
    rng = random.Random(seed)
    order_seq = 1000
    for i in itertools.count():
        t = base_time + i * SAMPLE_SPACING
        cid, email = _person(rng)
        roll = rng.random()
        if roll < 0.10:
            attrs: dict[str, Any] = {
                "email": email,
                "first_name": rng.choice(["Ana", "Bo", "Chen"]),
            }
            if rng.random() * scale < 0.2:
                attrs["email"] = "  " + email.upper() + " "
            if rng.random() * scale < 0.2:
                attrs["lifetime_value"] = f"{rng.uniform(10, 900):.2f}"
            if rng.random() < 0.1:
                attrs["created_at"] = t
            yield {"method": "PUT", "path": _customer_path(cid), "body": attrs}
            continue
        sku, title, price = rng.choice(PRODUCTS)
        qty = rng.randint(1, 3)
        kind = rng.random()
        product = sku.split("-")[1].lower()
        cart = f"cart_{i % 97}"
        if kind < 0.35:
            name = "product_viewed"
            data = {"product_id": product, "sku": sku, "name": title, "price": price}
        elif kind < 0.60:
            name = "added_to_cart"
            data = {
                "cart_id": cart,
                "product_id": product,
                "sku": sku,
                "price": price,
                "quantity": qty,
            }
        elif kind < 0.75:
            name = "cart_updated"
            data = {
                "cart_id": cart,
                "item_count": qty,
                "subtotal": round(price * qty, 2),
                "currency": "USD",
            }
        elif kind < 0.85:
            name = "checkout_started"
            data = {
                "cart_id": cart,
                "checkout_id": f"chk_{i}",
                "total": round(price * qty, 2),
                "currency": rng.choice(CURRENCIES),
                "item_count": qty,
            }
        else:
            order_seq += 1
            name = "order_completed"
            data = {
                "order_id": f"ORD-{order_seq}",
                "total": round(price * qty, 2),
                "currency": rng.choice(CURRENCIES),
                "item_count": qty,
            }
        body: dict[str, Any] = {"name": name, "data": data, "timestamp": t}
        path = _customer_path(cid, "/events")
        defect = rng.random() * scale
        if defect < 0.05:
            body["name"] = to_convention(name, "none").replace("_", " ").title()  # Order Completed
        elif defect < 0.08:
            body["name"] = to_convention(name, "camelCase")  # orderCompleted
        elif defect < 0.13 and name in ("cart_updated", "added_to_cart"):
            path = _customer_path(email, "/events")  # the same cart keyed by email
        elif defect < 0.15:
            del body["name"]  # the release that lost the event name
        elif defect < 0.20:
            body["timestamp"] = t * 1000  # milliseconds
        elif defect < 0.22:
            body["timestamp"] = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif defect < 0.27 and "total" in data:
            data["total"] = f"{data['total']:.2f}"  # money as a string
        elif defect < 0.29:
            key = next(k for k in ("price", "subtotal", "total") if k in data)
            data[key] = str(data[key])  # a number sent as a string
        elif defect < 0.30:
            body["data"] = f"sku={sku}"  # data must be a hash
        elif defect < 0.305:
            body["name"] = "order_completed_" + "x" * 100  # over 100 bytes
        elif defect < 0.315:
            yield {"method": "POST", "path": path, "body": '{"name": "cart_updated", "data": {'}
            continue
        elif defect < 0.33:
            body["name"] = "wishlist_added"  # not in the plan
        yield {"method": "POST", "path": path, "body": body}
        if name == "order_completed" and rng.random() * scale < 0.15:
            yield {"method": "POST", "path": path, "body": body}  # SDK retry: same order again
