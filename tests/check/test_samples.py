"""``trackguard.check.samples.d2c_traffic``: pinned defect counts, determinism, readable records."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from trackguard.check.inputs import record_to_request
from trackguard.check.samples import BASE_TIME, d2c_traffic
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker

EVENTS = ("product_viewed", "added_to_cart", "cart_updated", "checkout_started", "order_completed")
TITLE_CASE = {e.replace("_", " ").title() for e in EVENTS}  # Order Completed
CAMEL_CASE = {e.split("_")[0] + e.title().replace("_", "")[len(e.split("_")[0]) :] for e in EVENTS}


def defects(record: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """The defects of one record, read from the record itself (not from the generator)."""
    body = record["body"]
    if record["method"] == "PUT":
        found = ["identify"]
        if body["email"] != body["email"].strip().lower():
            found.append("email_not_normalized")
        if isinstance(body.get("lifetime_value"), str):
            found.append("lifetime_value_string")
        if "created_at" in body:
            found.append("created_at")
        return found
    if isinstance(body, str):
        return ["malformed_json"]
    if record == previous:
        return ["sdk_retry"]
    name, data, ts = body.get("name"), body.get("data"), body.get("timestamp")
    checks = [
        ("missing_name", name is None),
        ("title_case_name", name in TITLE_CASE),
        ("camel_case_name", name in CAMEL_CASE),
        ("email_keyed", "%40" in record["path"]),
        ("ms_timestamp", isinstance(ts, int) and ts >= 10**11),
        ("iso_timestamp", isinstance(ts, str)),
        ("data_not_hash", isinstance(data, str)),
        ("total_string", isinstance(data, dict) and isinstance(data.get("total"), str)),
        (
            "price_string",
            isinstance(data, dict)
            and any(isinstance(data.get(k), str) for k in ("price", "subtotal")),
        ),
        ("name_too_long", isinstance(name, str) and len(name.encode()) > 100),
        ("unplanned_event", name == "wishlist_added"),
    ]
    hits = [code for code, hit in checks if hit]
    assert len(hits) <= 1, hits  # the generator gives each event at most one defect
    return hits or ["clean"]


def count(records: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    previous = None
    for record in records:
        counts.update(defects(record, previous))
        previous = record
    return counts


def test_defect_counts_are_pinned() -> None:
    records = list(d2c_traffic(2000, 7))
    assert len(records) == 2046
    assert count(records) == Counter(
        {
            "clean": 1209,
            "identify": 217,
            "price_string": 90,
            "title_case_name": 88,
            "missing_name": 87,
            "ms_timestamp": 71,
            "camel_case_name": 54,
            "email_not_normalized": 53,
            "sdk_retry": 46,
            "lifetime_value_string": 45,
            "total_string": 39,
            "iso_timestamp": 37,
            "email_keyed": 35,
            "malformed_json": 24,
            "unplanned_event": 23,
            "created_at": 21,
            "data_not_hash": 17,
            "name_too_long": 9,
        }
    )


def test_event_names_are_pinned() -> None:
    names = Counter(
        r["body"].get("name", "<none>")
        for r in d2c_traffic(2000, 7)
        if r["method"] == "POST" and isinstance(r["body"], dict)
    )
    assert names == Counter(
        {
            "product_viewed": 512,
            "added_to_cart": 380,
            "order_completed": 286,
            "cart_updated": 228,
            "checkout_started": 129,
            "<none>": 90,
            "Product Viewed": 31,
            "productViewed": 23,
            "wishlist_added": 23,
            "Added To Cart": 20,
            "Order Completed": 19,
            "addedToCart": 14,
            "Cart Updated": 12,
            "Checkout Started": 10,
            "order_completed_" + "x" * 100: 9,
            "orderCompleted": 7,
            "cartUpdated": 6,
            "checkoutStarted": 6,
        }
    )


def test_retries_repeat_an_order() -> None:
    records = list(d2c_traffic(2000, 7))
    retries = [r for prev, r in itertools.pairwise(records) if r == prev]
    assert len(retries) == 46
    assert all(r["method"] == "POST" and isinstance(r["body"], dict) for r in retries)
    assert all("order_id" in r["body"]["data"] for r in retries)


def test_same_seed_same_records() -> None:
    assert list(d2c_traffic(500, 7)) == list(d2c_traffic(500, 7))
    assert list(d2c_traffic(500, 7)) != list(d2c_traffic(500, 8))
    assert list(d2c_traffic(2000, 7))[:100] == list(d2c_traffic(100, 7))[:100]


def test_timestamps_follow_the_fixed_clock() -> None:
    stamps = [
        r["body"]["timestamp"]
        for r in d2c_traffic(2000, 7)
        if isinstance(r["body"], dict) and isinstance(r["body"].get("timestamp"), int)
    ]
    seconds = [t for t in stamps if t < 10**11]
    assert min(seconds) >= BASE_TIME
    assert max(seconds) <= BASE_TIME + 1999 * 7


def test_every_record_is_a_request() -> None:
    for n, record in enumerate(d2c_traffic(2000, 7)):
        request = record_to_request(record, f"sample:{n}")
        assert isinstance(request, Request), (n, request)
        assert request.method in ("POST", "PUT")
        assert request.source == f"sample:{n}"


def test_contract_only_invalid_count_matches_the_contract_defects() -> None:
    """Without a plan, exactly the records Customer.io rejects are invalid."""
    checker = Checker()
    outcomes: Counter[str] = Counter()
    for n, record in enumerate(d2c_traffic(2000, 7)):
        request = record_to_request(record, f"sample:{n}")
        assert isinstance(request, Request)
        outcomes[checker.check(request).outcome] += 1
    # 90 nameless (87 + 3 retried), 24 malformed, 17 data strings, 9 over-long names
    assert outcomes["invalid"] == 140
    assert sum(outcomes.values()) == 2046
