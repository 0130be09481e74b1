"""Operations → outbox rows: the exact v2 item (or v1 call) for every Track API operation kind."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.operations import Operation, Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.convert import SAFE_V2_ITEM_BYTES, to_outbox_rows
from trackguard.delivery.ulid import decode, ulid_from_key

RECEIVED = 1_700_000_123.75
RECEIVED_S = 1_700_000_123
RECEIVED_MS = 1_700_000_123_750
CLIENT_ID = "01HGW2N7EHJZ0SZ1Y5ZBQ3XK4P"
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
CHECKER = Checker()


def operations(
    method: str, path: str, body: Any = None, *, keys: bool = False
) -> tuple[Operation, ...]:
    """The checked operations; without ``keys``, with no dedupe key (the conversion alone)."""
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    verdict = CHECKER.check(Request(method=method, path=path, body=raw))
    assert 200 <= verdict.status < 300, verdict.response
    if keys:
        return verdict.operations
    return tuple(msgspec.structs.replace(op, dedupe_key=None) for op in verdict.operations)


def test_an_event_keyed_by_its_content_gets_the_same_ulid_on_a_retry() -> None:
    """An SDK retry of the same request carries the same id, so Customer.io drops it too."""
    (op,) = operations("POST", "/api/v1/customers/42/events", {"name": "signup"}, keys=True)
    assert op.dedupe_key is not None and op.dedupe_key.startswith("retry:")
    first = to_outbox_rows([op], received_at=RECEIVED, source="web")
    again = to_outbox_rows([op], received_at=RECEIVED + 5, source="web")
    assert json.loads(first[0].payload)["v2"]["id"] == json.loads(again[0].payload)["v2"]["id"]


def convert(method: str, path: str, body: Any = None) -> tuple[dict[str, Any], str]:
    """The one row's decoded payload and person key."""
    (row,) = to_outbox_rows(operations(method, path, body), received_at=RECEIVED, source="web")
    return json.loads(row.payload), row.person


IDENTIFY_CASES = [
    pytest.param(
        "/api/v1/customers/42",
        {"email": "Ann@Example.com", "plan": "pro", "id": "42"},
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": "42"},
            "attributes": {"email": "Ann@Example.com", "plan": "pro", "id": "42"},
        },
        "id:42",
        id="by-id-body-id-stays-an-attribute",
    ),
    pytest.param(
        "/api/v1/customers/Ann%40Example.com",
        {"id": "u-1", "first_name": "Ann"},
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"email": "Ann@Example.com"},
            "attributes": {"id": "u-1", "first_name": "Ann"},
        },
        "email:ann@example.com",
        id="by-email-key-lowercased",
    ),
    pytest.param(
        "/api/v1/customers/cio_03000001",
        {"email": "new@example.com"},
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"cio_id": "03000001"},
            "attributes": {"email": "new@example.com"},
        },
        "cio_id:03000001",
        id="by-cio-id-prefix-dropped",
    ),
    pytest.param(
        "/api/v1/customers/42",
        {"plan": "pro", "_timestamp": 1_700_000_000},
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": "42"},
            "timestamp": 1_700_000_000,
            "attributes": {"plan": "pro"},
        },
        "id:42",
        id="update-timestamp-becomes-item-timestamp",
    ),
    pytest.param(
        "/api/v1/customers/42",
        b"",
        {"type": "person", "action": "identify", "identifiers": {"id": "42"}, "attributes": {}},
        "id:42",
        id="empty-body",
    ),
]


@pytest.mark.parametrize(("path", "body", "item", "person"), IDENTIFY_CASES)
def test_identify_becomes_v2_identify(
    path: str, body: Any, item: dict[str, Any], person: str
) -> None:
    assert convert("PUT", path, body) == ({"v2": item}, person)


def test_identify_with_relationships_stays_v1() -> None:
    body = {
        "plan": "pro",
        "cio_relationships": {
            "action": "add_relationships",
            "relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}],
        },
    }
    assert convert("PUT", "/api/v1/customers/42", body) == (
        {"v1": {"method": "PUT", "path": "/api/v1/customers/42", "body": body}},
        "id:42",
    )


EVENT_CASES = [
    pytest.param(
        {"name": "purchase", "data": {"total": 9.5}, "timestamp": 1_700_000_000, "id": CLIENT_ID},
        {
            "type": "person",
            "action": "event",
            "identifiers": {"id": "42"},
            "name": "purchase",
            "id": CLIENT_ID,
            "timestamp": 1_700_000_000,
            "attributes": {"total": 9.5},
        },
        id="event",
    ),
    pytest.param(
        {"type": "page", "name": "/pricing", "data": {"title": "P"}, "timestamp": 5, "id": "x"},
        {
            "type": "person",
            "action": "page",
            "identifiers": {"id": "42"},
            "name": "/pricing",
            "id": "x",
            "timestamp": 5,
            "attributes": {"title": "P"},
        },
        id="page-keeps-a-non-ulid-client-id",
    ),
    pytest.param(
        {"type": "screen", "name": "Home", "timestamp": 5, "id": CLIENT_ID},
        {
            "type": "person",
            "action": "screen",
            "identifiers": {"id": "42"},
            "name": "Home",
            "id": CLIENT_ID,
            "timestamp": 5,
        },
        id="screen-without-data",
    ),
    pytest.param(
        {"name": "signup", "data": None, "id": CLIENT_ID},
        {
            "type": "person",
            "action": "event",
            "identifiers": {"id": "42"},
            "name": "signup",
            "id": CLIENT_ID,
            "timestamp": RECEIVED_S,
        },
        id="go-null-data-and-no-timestamp",
    ),
    pytest.param(
        {"name": "signup", "timestamp": "yesterday", "id": CLIENT_ID},
        {
            "type": "person",
            "action": "event",
            "identifiers": {"id": "42"},
            "name": "signup",
            "id": CLIENT_ID,
            "timestamp": RECEIVED_S,
        },
        id="non-integer-timestamp-replaced-like-customerio-does",
    ),
]


@pytest.mark.parametrize(("body", "item"), EVENT_CASES)
def test_event_becomes_v2_event(body: dict[str, Any], item: dict[str, Any]) -> None:
    assert convert("POST", "/api/v1/customers/42/events", body) == ({"v2": item}, "id:42")


def test_event_without_id_gets_a_new_ulid_at_receipt_time() -> None:
    payload, _ = convert("POST", "/api/v1/customers/42/events", {"name": "signup"})
    item = payload["v2"]
    event_id = item.pop("id")
    assert ULID.fullmatch(event_id)
    assert decode(event_id)[0] == RECEIVED_MS
    assert item == {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "42"},
        "name": "signup",
        "timestamp": RECEIVED_S,
    }


@pytest.mark.parametrize(
    ("timestamp", "expected_id_time"),
    [(1_700_000_000, 1_700_000_000_000), (None, 0)],
    ids=["client-timestamp", "no-timestamp-uses-time-zero-not-receipt"],
)
def test_event_with_dedupe_key_gets_the_keys_ulid(
    timestamp: int | None, expected_id_time: int
) -> None:
    body: dict[str, Any] = {"name": "order_completed", "data": {"order_id": "A-1"}}
    if timestamp is not None:
        body["timestamp"] = timestamp
    (op,) = operations("POST", "/api/v1/customers/42/events", body)
    keyed = msgspec.structs.replace(op, dedupe_key="order_completed:A-1")
    (row,) = to_outbox_rows([keyed], received_at=RECEIVED, source=None)
    item = json.loads(row.payload)["v2"]
    assert item["id"] == ulid_from_key("order_completed:A-1", timestamp)
    assert decode(item["id"])[0] == expected_id_time
    assert item["timestamp"] == (timestamp or RECEIVED_S)
    assert row.dedupe_key == "order_completed:A-1"
    # Converting again (a retry, another gateway) gives the same id: Customer.io drops it.
    (again,) = to_outbox_rows([keyed], received_at=RECEIVED + 60, source=None)
    assert json.loads(again.payload)["v2"]["id"] == item["id"]


def test_event_with_an_unknown_key_stays_v1_with_id_and_timestamp() -> None:
    body = {"name": "signup", "anonymous_id": "a-1", "id": CLIENT_ID}
    assert convert("POST", "/api/v1/customers/42/events", body) == (
        {
            "v1": {
                "method": "POST",
                "path": "/api/v1/customers/42/events",
                "body": {**body, "timestamp": RECEIVED_S},
            }
        },
        "id:42",
    )


def test_event_too_large_for_a_batch_item_stays_v1() -> None:
    data = {"blob": "x" * SAFE_V2_ITEM_BYTES}
    body = {"name": "big", "data": data, "timestamp": 5, "id": CLIENT_ID}
    payload, _ = convert("POST", "/api/v1/customers/42/events", body)
    assert payload == {
        "v1": {"method": "POST", "path": "/api/v1/customers/42/events", "body": body}
    }


PERSON_CASES = [
    pytest.param(
        "DELETE",
        "/api/v1/customers/42",
        None,
        {"type": "person", "action": "delete", "identifiers": {"id": "42"}},
        id="delete",
    ),
    pytest.param(
        "DELETE",
        "/api/v1/customers/42",
        {},
        {"type": "person", "action": "delete", "identifiers": {"id": "42"}},
        id="delete-python-sdk-empty-body",
    ),
    pytest.param(
        "POST",
        "/api/v1/customers/42/suppress",
        None,
        {"type": "person", "action": "suppress", "identifiers": {"id": "42"}},
        id="suppress",
    ),
    pytest.param(
        "POST",
        "/api/v1/customers/42/unsuppress",
        {},
        {"type": "person", "action": "unsuppress", "identifiers": {"id": "42"}},
        id="unsuppress",
    ),
    pytest.param(
        "DELETE",
        "/api/v1/customers/42/devices/tok%2F1",
        None,
        {
            "type": "person",
            "action": "delete_device",
            "identifiers": {"id": "42"},
            "device": {"token": "tok/1"},
        },
        id="delete-device-token-from-path",
    ),
    pytest.param(
        "PUT",
        "/api/v1/customers/42/devices",
        {
            "device": {
                "id": "tok1",
                "platform": "ios",
                "last_used": 1_700_000_000,
                "attributes": {"app_version": "2.1"},
            }
        },
        {
            "type": "person",
            "action": "add_device",
            "identifiers": {"id": "42"},
            "device": {
                "token": "tok1",
                "platform": "ios",
                "last_used": 1_700_000_000,
                "attributes": {"app_version": "2.1"},
            },
        },
        id="add-device-node",
    ),
    pytest.param(
        "PUT",
        "/api/v1/customers/42/devices",
        {"device": {"id": "tok2", "platform": "android", "app_version": "3.0", "push": "true"}},
        {
            "type": "person",
            "action": "add_device",
            "identifiers": {"id": "42"},
            "device": {
                "token": "tok2",
                "platform": "android",
                "attributes": {"app_version": "3.0", "push": "true"},
            },
        },
        id="add-device-python-flat-attributes",
    ),
    pytest.param(
        "PUT",
        "/api/v1/customers/42/devices",
        {"device": {"id": "tok3", "platform": "ios", "last_used": "1700000000"}},
        {
            "type": "person",
            "action": "add_device",
            "identifiers": {"id": "42"},
            "device": {"token": "tok3", "platform": "ios", "last_used": 1_700_000_000},
        },
        id="add-device-go-string-last-used",
    ),
    pytest.param(
        "PUT",
        "/api/v1/customers/42/devices",
        {"device": {"id": "t", "platform": "ios", "os": "17", "attributes": {"os": "18"}}},
        {
            "type": "person",
            "action": "add_device",
            "identifiers": {"id": "42"},
            "device": {"token": "t", "platform": "ios", "attributes": {"os": "18"}},
        },
        id="add-device-explicit-attributes-win",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "item"), PERSON_CASES)
def test_person_operation_becomes_v2(
    method: str, path: str, body: Any, item: dict[str, Any]
) -> None:
    assert convert(method, path, body) == ({"v2": item}, "id:42")


def test_add_device_with_unreadable_last_used_stays_v1() -> None:
    body = {"device": {"id": "t", "platform": "ios", "last_used": "yesterday"}}
    assert convert("PUT", "/api/v1/customers/42/devices", body) == (
        {"v1": {"method": "PUT", "path": "/api/v1/customers/42/devices", "body": body}},
        "id:42",
    )


def test_merge_becomes_v2_merge_keyed_by_primary() -> None:
    body = {"primary": {"email": "Ann@Example.com"}, "secondary": {"id": "anon-7"}}
    assert convert("POST", "/api/v1/merge_customers", body) == (
        {"v2": {"type": "person", "action": "merge", **body}},
        "email:ann@example.com",
    )


V1_CASES = [
    pytest.param(
        "POST",
        "/api/v1/segments/7/add_customers?id_type=email",
        {"ids": ["a@example.com"]},
        "route:POST /api/v1/segments/{segment_id}/add_customers",
        id="segment-add-keeps-query",
    ),
    pytest.param(
        "POST",
        "/api/v1/segments/7/remove_customers",
        {"ids": ["42"]},
        "route:POST /api/v1/segments/{segment_id}/remove_customers",
        id="segment-remove",
    ),
    pytest.param(
        "POST",
        "/api/v1/forms/f1/submit",
        {"data": {"email": "a@example.com"}},
        "route:POST /api/v1/forms/{form_id}/submit",
        id="form",
    ),
    pytest.param(
        "POST",
        "/api/v1/metrics",
        {"delivery_id": "d1", "metric": "opened"},
        "route:POST /api/v1/metrics",
        id="metrics",
    ),
    pytest.param(
        "POST",
        "/api/v1/push/events",
        {"delivery_id": "d1", "event": "opened", "device_id": "t", "timestamp": 5},
        "route:POST /api/v1/push/events",
        id="push-metrics",
    ),
    pytest.param(
        "POST",
        "/unsubscribe/d1",
        {"unsubscribe": True},
        "route:POST /unsubscribe/{delivery_id}",
        id="unsubscribe",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "person"), V1_CASES)
def test_other_v1_calls_stay_v1(method: str, path: str, body: Any, person: str) -> None:
    assert convert(method, path, body) == (
        {"v1": {"method": method, "path": path, "body": body}},
        person,
    )


def test_anonymous_event_stays_v1_with_id_and_timestamp() -> None:
    body = {"name": "visited", "anonymous_id": "anon-7", "data": {}}
    payload, person = convert("POST", "/api/v1/events", body)
    sent = payload["v1"]["body"]
    assert ULID.fullmatch(sent.pop("id"))
    assert payload["v1"]["path"] == "/api/v1/events"
    assert sent == {**body, "timestamp": RECEIVED_S}
    assert person == "anon:anon-7"


def test_region_lookup_is_never_queued() -> None:
    ops = operations("GET", "/api/v1/accounts/region")
    assert to_outbox_rows(ops, received_at=RECEIVED, source=None) == ()


def test_v2_items_pass_through_and_events_get_id_and_timestamp() -> None:
    identify = {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": "7"},
        "attributes": {"plan": "pro"},
    }
    event = {
        "type": "person",
        "action": "event",
        "identifiers": {"email": "B@x.io"},
        "name": "signup",
        "id": CLIENT_ID,
    }
    obj = {
        "type": "object",
        "action": "identify",
        "identifiers": {"object_type_id": "1", "object_id": "acme"},
        "attributes": {"n": 1},
    }
    delivery = {
        "type": "delivery",
        "action": "event",
        "identifiers": {"id": "d1"},
        "name": "opened",
        "attributes": {"device_token": "t"},
    }
    ops = operations("POST", "/api/v2/batch", {"batch": [identify, event, obj, delivery]})
    rows = to_outbox_rows(ops, received_at=RECEIVED, source="backend")
    assert [r.payload for r in rows] == [
        b'{"v2":' + msgspec.json.encode(identify) + b"}",
        b'{"v2":' + msgspec.json.encode({**event, "timestamp": RECEIVED_S}) + b"}",
        b'{"v2":' + msgspec.json.encode(obj) + b"}",
        b'{"v2":' + msgspec.json.encode(delivery) + b"}",
    ]
    assert [r.person for r in rows] == [
        "id:7",
        "email:b@x.io",
        "route:POST /api/v2/batch",
        "route:POST /api/v2/batch",
    ]
    assert [(r.event_name, r.source, r.received_at) for r in rows] == [
        (None, "backend", RECEIVED),
        ("signup", "backend", RECEIVED),
        (None, "backend", RECEIVED),
        ("opened", "backend", RECEIVED),
    ]


def test_row_fields() -> None:
    (row,) = to_outbox_rows(
        operations("POST", "/api/v1/customers/42/events", {"name": "signup", "id": CLIENT_ID}),
        received_at=RECEIVED,
        source="web",
    )
    assert (row.seq, row.state, row.attempts, row.event_name, row.source, row.dedupe_key) == (
        0,
        "pending",
        0,
        "signup",
        "web",
        None,
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(data=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=6))
def test_any_event_data_is_sent_unchanged_with_a_ulid(data: dict[str, Any]) -> None:
    body = {"name": "e", "data": data}
    (row,) = to_outbox_rows(
        operations("POST", "/api/v1/customers/u%201/events", body),
        received_at=RECEIVED,
        source=None,
    )
    item = json.loads(row.payload)["v2"]
    assert item["attributes"] == data
    assert item["identifiers"] == {"id": "u 1"}
    assert ULID.fullmatch(item["id"]) and item["timestamp"] == RECEIVED_S


@given(attrs=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=6))
def test_any_identify_body_is_sent_as_attributes_or_unchanged_v1(attrs: dict[str, Any]) -> None:
    raw = json.dumps(attrs).encode()
    verdict = CHECKER.check(Request(method="PUT", path="/api/v1/customers/42", body=raw))
    rows = to_outbox_rows(verdict.operations, received_at=RECEIVED, source=None)
    if not verdict.operations:
        assert rows == ()  # the contract refused it (e.g. a body id that is not the path id)
        return
    (payload,) = [json.loads(r.payload) for r in rows]
    if "v1" in payload:
        assert payload["v1"]["body"] == attrs and "cio_relationships" in attrs
        return
    item = payload["v2"]
    expected = dict(attrs)
    ts = expected.get("_timestamp")
    if isinstance(ts, int) and not isinstance(ts, bool):
        del expected["_timestamp"]
        assert item["timestamp"] == ts
    assert item["attributes"] == expected
