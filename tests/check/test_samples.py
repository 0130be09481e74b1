"""``trackguard.check.samples.d2c_traffic``: pinned defect counts, determinism, readable records."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import Counter
from typing import Any

import pytest

from trackguard.check.inputs import record_to_request
from trackguard.check.samples import BASE_TIME, SAMPLE_SPACING, d2c_traffic
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
    records = list(d2c_traffic(2000, 7, base_time=BASE_TIME))
    assert len(records) == 2000
    assert count(records) == Counter(
        {
            "clean": 1187,
            "identify": 207,
            "price_string": 90,
            "title_case_name": 87,
            "missing_name": 84,
            "ms_timestamp": 66,
            "camel_case_name": 54,
            "email_not_normalized": 50,
            "sdk_retry": 45,
            "lifetime_value_string": 43,
            "total_string": 38,
            "iso_timestamp": 37,
            "email_keyed": 35,
            "malformed_json": 24,
            "unplanned_event": 22,
            "created_at": 21,
            "data_not_hash": 15,
            "name_too_long": 9,
        }
    )


def test_event_names_are_pinned() -> None:
    names = Counter(
        r["body"].get("name", "<none>")
        for r in d2c_traffic(2000, 7, base_time=BASE_TIME)
        if r["method"] == "POST" and isinstance(r["body"], dict)
    )
    assert names == Counter(
        {
            "product_viewed": 501,
            "added_to_cart": 371,
            "order_completed": 280,
            "cart_updated": 226,
            "checkout_started": 126,
            "<none>": 87,
            "Product Viewed": 31,
            "productViewed": 23,
            "wishlist_added": 22,
            "Added To Cart": 19,
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
    records = list(d2c_traffic(2000, 7, base_time=BASE_TIME))
    retries = [r for prev, r in itertools.pairwise(records) if r == prev]
    assert len(retries) == 45
    assert all(r["method"] == "POST" and isinstance(r["body"], dict) for r in retries)
    assert all("order_id" in r["body"]["data"] for r in retries)


@pytest.mark.parametrize("n", [0, 1, 2, 46, 2000])
def test_n_counts_requests_retries_included(n: int) -> None:
    assert len(list(d2c_traffic(n, 7, base_time=BASE_TIME))) == n


def test_event_times_end_at_the_run_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``base_time`` the sample ends now, whatever year it is: nothing late, nothing
    ahead of the clock."""
    now = 2_000_000_000  # 2033
    monkeypatch.setattr(time, "time", lambda: float(now))
    records = list(d2c_traffic(2000, 7))
    times = sorted(event_time(r) for r in records if event_time(r) is not None)
    assert times[0] == now - 1999 * SAMPLE_SPACING
    assert times[-1] <= now
    assert records == list(d2c_traffic(2000, 7, base_time=now - 1999 * SAMPLE_SPACING))


def event_time(record: dict[str, Any]) -> int | None:
    """The event time of a record in unix seconds, whatever form the defect gave it."""
    body = record["body"]
    ts = body.get("timestamp") if isinstance(body, dict) else None
    if isinstance(ts, str):
        return int(dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    if isinstance(ts, int):
        return ts // 1000 if ts >= 10**11 else ts
    return None


def test_same_seed_same_records() -> None:
    assert list(d2c_traffic(500, 7, base_time=BASE_TIME)) == list(
        d2c_traffic(500, 7, base_time=BASE_TIME)
    )
    assert list(d2c_traffic(500, 7, base_time=BASE_TIME)) != list(
        d2c_traffic(500, 8, base_time=BASE_TIME)
    )
    assert (
        list(d2c_traffic(2000, 7, base_time=BASE_TIME))[:100]
        == list(d2c_traffic(100, 7, base_time=BASE_TIME))[:100]
    )


def test_timestamps_follow_the_fixed_clock() -> None:
    stamps = [
        r["body"]["timestamp"]
        for r in d2c_traffic(2000, 7, base_time=BASE_TIME)
        if isinstance(r["body"], dict) and isinstance(r["body"].get("timestamp"), int)
    ]
    seconds = [t for t in stamps if t < 10**11]
    assert min(seconds) == BASE_TIME
    assert max(seconds) <= BASE_TIME + 1999 * SAMPLE_SPACING


def test_every_record_is_a_request() -> None:
    for n, record in enumerate(d2c_traffic(2000, 7, base_time=BASE_TIME)):
        request = record_to_request(record, f"sample:{n}")
        assert isinstance(request, Request), (n, request)
        assert request.method in ("POST", "PUT")
        assert request.source == f"sample:{n}"


def test_contract_only_invalid_count_matches_the_contract_defects() -> None:
    """Without a plan, exactly the records Customer.io rejects are invalid."""
    checker = Checker()
    outcomes: Counter[str] = Counter()
    for n, record in enumerate(d2c_traffic(2000, 7, base_time=BASE_TIME)):
        request = record_to_request(record, f"sample:{n}")
        assert isinstance(request, Request)
        outcomes[checker.check(request).outcome] += 1
    # 87 nameless (84 + 3 retried), 24 malformed, 15 data strings, 9 over-long names
    assert outcomes["invalid"] == 135
    assert sum(outcomes.values()) == 2000
