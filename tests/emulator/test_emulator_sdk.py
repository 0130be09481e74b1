"""The official ``customerio`` Python SDK, unmodified, against the emulator over TLS.

The SDK speaks HTTPS only; it trusts the test CA through its ``requests`` session:
``cio.http.verify``, with ``trust_env`` off because requests lets ``REQUESTS_CA_BUNDLE``
override ``verify``. Every call's effect is checked through the read API, exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from customerio import CustomerIO, CustomerIOException

if TYPE_CHECKING:
    from conftest import Emu, TLSFiles

ULID = "01JBV2ZQ8Y5N3W6X7Y8Z9A0B1C"


@pytest.fixture
def cio(emu_tls: Emu, tls_files: TLSFiles) -> Iterator[CustomerIO]:
    client = CustomerIO(
        emu_tls.site_id, emu_tls.api_key, host="127.0.0.1", port=emu_tls.server.port
    )
    client.http.verify = str(tls_files.ca)
    client.http.trust_env = False  # else requests prefers REQUESTS_CA_BUNDLE over .verify
    with client:
        yield client


def _events(emu: Emu, **filters: str) -> list[dict[str, Any]]:
    keep = ("type", "name", "data", "timestamp", "person", "identifier", "anonymous_id", "id")
    return [{k: e[k] for k in keep} for e in emu.events(**filters)]


def test_python_sdk_calls_land_exactly(cio: CustomerIO, emu_tls: Emu) -> None:
    cio.track_anonymous("anon-1", "viewed", data={"page": "/"}, timestamp=1_700_000_000)
    cio.identify(
        "42",
        email="ann@example.com",
        plan="pro",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        anonymous_id="anon-1",
    )
    cio.track("42", "purchase", data={"sku": "A"}, id=ULID, timestamp=1_700_000_001)
    cio.track("42", "purchase", data={"sku": "A"}, id=ULID, timestamp=1_700_000_001)
    cio.pageview("42", "/pricing", referrer="google")
    cio.add_device("42", "tok-1", "ios", app_version="1.0", last_used=1_700_000_002)
    cio.add_device("42", "tok-2", "android")
    cio.delete_device("42", "tok-2")
    cio.identify("two@example.com", city="Oslo")
    cio.track("two@example.com", "signup", timestamp=1_700_000_003)
    cio.merge_customers("id", "42", "email", "two@example.com")
    cio.identify("43", plan="x")
    cio.suppress("43")
    cio.identify("43", plan="blocked")
    cio.unsuppress("43")
    cio.identify("43", plan="y")
    cio.identify("44")
    cio.delete("44")
    cio.batch(
        [
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "45"},
                "attributes": {"vip": True},
            },
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": "45"},
                "name": "batched",
                "timestamp": 1_700_000_004,
            },
        ]
    )

    blank = {"segments": [], "relationships": [], "anonymous_ids": [], "devices": []}
    assert emu_tls.people() == [
        {
            **blank,
            "cio_id": "00000001",
            "id": "42",
            "email": "ann@example.com",
            "attributes": {"plan": "pro", "created_at": 1_704_067_200, "city": "Oslo"},
            "devices": [
                {
                    "id": "tok-1",
                    "platform": "ios",
                    "last_used": 1_700_000_002,
                    "attributes": {"app_version": "1.0"},
                }
            ],
            "anonymous_ids": ["anon-1"],
        },
        {**blank, "cio_id": "00000004", "id": "43", "email": None, "attributes": {"plan": "y"}},
        {**blank, "cio_id": "00000006", "id": "45", "email": None, "attributes": {"vip": True}},
    ]
    me = {"person": "00000001", "anonymous_id": None, "id": None, "type": "event"}
    events = _events(emu_tls, person="ann@example.com")
    page_time = events[2].pop("timestamp")
    assert events == [
        {
            **me,
            "name": "viewed",
            "data": {"page": "/"},
            "timestamp": 1_700_000_000,
            "identifier": None,
            "anonymous_id": "anon-1",
        },
        {
            **me,
            "name": "purchase",
            "data": {"sku": "A"},
            "timestamp": 1_700_000_001,
            "identifier": {"id": "42"},
            "id": ULID,
        },
        {
            **me,
            "name": "/pricing",
            "data": {"referrer": "google"},
            "type": "page",
            "identifier": {"id": "42"},
        },
        {
            **me,
            "name": "signup",
            "data": {},
            "timestamp": 1_700_000_003,
            "identifier": {"email": "two@example.com"},
        },
    ]
    assert abs(page_time - datetime.now(UTC).timestamp()) < 60
    assert _events(emu_tls, person="45") == [
        {
            "type": "event",
            "name": "batched",
            "data": {},
            "timestamp": 1_700_000_004,
            "person": "00000006",
            "identifier": {"id": "45"},
            "anonymous_id": None,
            "id": None,
        }
    ]
    stats = emu_tls.stats()
    assert stats["by_status"] == {"200": 19}
    assert (stats["duplicates"], stats["failures"]) == (1, 1)  # the suppressed identify


def test_python_sdk_retries_5xx_and_then_raises(cio: CustomerIO, emu_tls: Emu) -> None:
    emu_tls.client.post("/_emulator/faults", json={"status": 503})
    with pytest.raises(CustomerIOException, match="Failed to receive valid response"):
        cio.identify("42", plan="pro")
    assert emu_tls.stats()["by_status"] == {"503": 4}  # the first try and 3 retries
    assert emu_tls.people() == []


def test_python_sdk_sees_contract_errors(cio: CustomerIO, emu_tls: Emu) -> None:
    with pytest.raises(CustomerIOException, match="event name cannot be longer than 100 bytes"):
        cio.track("42", "n" * 101)
    bad = CustomerIO(emu_tls.site_id, "wrong", host="127.0.0.1", port=emu_tls.server.port)
    bad.http.verify = cio.http.verify
    bad.http.trust_env = False
    with bad, pytest.raises(CustomerIOException, match=r"^401: "):
        bad.identify("42")
    assert emu_tls.people() == []
