"""``trackguard.demo.run_demo``: the D2C story, whatever day the demo runs."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from trackguard.demo import DemoResult, run_demo

PLAN = Path(__file__).resolve().parents[1] / "examples" / "d2c-plan.yaml"
YEAR = 365.25 * 86400


def headline(r: DemoResult) -> dict[str, object]:
    return {
        "sdk_calls": r.sdk_calls,
        "raw_requests": r.raw_requests,
        "client_errors": r.client_errors,
        "outcomes": dict(r.outcomes),
        "quarantined": r.quarantined,
        "delivered": r.delivered,
        "pending": r.pending,
        "people": r.people,
        "events": dict(r.events),
        "retries_dropped": r.duplicates_dropped,
        "duplicates_upstream": r.duplicates_ignored,
    }


EXPECTED = {
    "sdk_calls": 237,
    "raw_requests": 3,
    "client_errors": 7,
    "outcomes": {"accepted": 188, "fixed": 25, "warned": 13, "rejected": 4, "invalid": 10},
    "quarantined": 14,
    "delivered": 257,
    "pending": 0,
    "people": 60,
    "events": {
        "product_viewed": 60,
        "cart_updated": 53,
        "order_completed": 36,
        "added_to_cart": 12,
    },
    "retries_dropped": 5,
    "duplicates_upstream": 0,
}


@pytest.mark.parametrize("years", [0, 7])
def test_the_demo_shows_the_d2c_defects_on_any_day(years: int) -> None:
    """Seven years on, the demo tells the same story: the defects, not the age of its data."""
    result = run_demo(PLAN, clock=lambda: time.time() + years * YEAR)
    assert headline(result) == EXPECTED
    assert "event_late" not in result.codes
    assert "event_future" not in result.codes
    top = Counter(result.codes).most_common(4)
    assert top == [
        ("identity_not_canonical", 13),
        ("event_name_drift", 10),
        ("property_type", 10),
        ("timestamp_format", 9),
    ]
