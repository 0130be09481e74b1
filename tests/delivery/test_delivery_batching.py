"""Packing rows into upstream requests: exact batch counts and sizes at the limits, order."""

from __future__ import annotations

import itertools
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.messages import MAX_BATCH_ITEM_BYTES
from trackguard.delivery.batching import (
    BATCH_PATH,
    DEFAULT_MAX_BATCH_BYTES,
    ENTITY_PATH,
    alone,
    batch_size,
    pack,
    split,
)
from trackguard.store.base import OutboxRow


def item_of_size(size: int, seq: int) -> bytes:
    """A v2 identify item whose JSON is exactly ``size`` bytes."""
    base = msgspec.json.encode(
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": str(seq)},
            "attributes": {"pad": ""},
        }
    )
    assert size >= len(base)
    return base[:-3] + b"x" * (size - len(base)) + b'"}}'


def v2_row(seq: int, size: int = 100) -> OutboxRow:
    item = item_of_size(size, seq)
    assert len(item) == size and json.loads(item)
    return OutboxRow(seq=seq, received_at=1.0, person=f"id:{seq}", payload=b'{"v2":' + item + b"}")


def v1_row(seq: int, body: object = None) -> OutboxRow:
    call = {"method": "POST", "path": "/api/v1/events", "body": body}
    return OutboxRow(
        seq=seq, received_at=1.0, person="anon:a", payload=msgspec.json.encode({"v1": call})
    )


def items_of(row: OutboxRow) -> bytes:
    return msgspec.json.encode(json.loads(row.payload)["v2"])


def test_two_items_fill_a_batch_exactly_at_the_limit() -> None:
    rows = [v2_row(1, 500), v2_row(2, 500), v2_row(3, 500)]
    requests, rejected = pack(rows, max_batch_bytes=12 + 500 + 1 + 500)
    assert rejected == []
    assert [len(r.rows) for r in requests] == [2, 1]
    first = requests[0]
    assert first.body == b'{"batch":[' + items_of(rows[0]) + b"," + items_of(rows[1]) + b"]}"
    assert first.body is not None and len(first.body) == 1013 == batch_size(first.items)
    assert (first.method, first.path) == ("POST", BATCH_PATH)
    assert requests[1].body == b'{"batch":[' + items_of(rows[2]) + b"]}"


def test_one_byte_less_and_every_item_goes_alone() -> None:
    rows = [v2_row(1, 500), v2_row(2, 500), v2_row(3, 500)]
    requests, _ = pack(rows, max_batch_bytes=1012)
    assert [len(r.rows) for r in requests] == [1, 1, 1]


def test_default_limit_packs_fourteen_largest_items_per_batch() -> None:
    rows = [v2_row(i, MAX_BATCH_ITEM_BYTES) for i in range(1, 31)]
    requests, rejected = pack(rows)
    assert rejected == []
    assert [len(r.rows) for r in requests] == [14, 14, 2]
    sizes = [len(r.body or b"") for r in requests]
    assert sizes == [12 + 14 * 32_768 + 13, 12 + 14 * 32_768 + 13, 12 + 2 * 32_768 + 1]
    assert max(sizes) <= DEFAULT_MAX_BATCH_BYTES < 500_000


def test_item_at_the_item_limit_is_sent_and_one_byte_more_is_rejected() -> None:
    ok, big = v2_row(1, MAX_BATCH_ITEM_BYTES), v2_row(2, MAX_BATCH_ITEM_BYTES + 1)
    requests, rejected = pack([ok, big])
    assert [r.rows for r in requests] == [(ok,)]
    assert len(rejected) == 1
    (r,) = rejected
    assert (r.row, r.code, r.method, r.path, r.body) == (
        big,
        "item_too_large",
        "POST",
        ENTITY_PATH,
        items_of(big),
    )
    assert r.reason == (
        "batch item is 32769 bytes; Customer.io accepts at most 32768 bytes per item"
    )


def test_v1_rows_are_single_calls_between_batches_in_seq_order() -> None:
    body = {"name": "visited", "anonymous_id": "a"}
    rows = [v2_row(1), v2_row(2), v1_row(3, body), v1_row(4), v2_row(5)]
    requests, _ = pack(rows)
    assert [(r.method, r.path, [x.seq for x in r.rows]) for r in requests] == [
        ("POST", BATCH_PATH, [1, 2]),
        ("POST", "/api/v1/events", [3]),
        ("POST", "/api/v1/events", [4]),
        ("POST", BATCH_PATH, [5]),
    ]
    assert requests[1].body == msgspec.json.encode(body)
    assert requests[2].body is None  # a v1 call without a body sends none
    assert requests[1].items == ()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "unreadable outbox payload: JSON is malformed: invalid character (byte 4)"),
        (b"{}", "outbox payload has neither v1 nor v2"),
    ],
)
def test_unreadable_payload_is_rejected(payload: bytes, reason: str) -> None:
    row = OutboxRow(seq=1, received_at=1.0, person="id:1", payload=payload)
    requests, rejected = pack([row])
    assert requests == []
    assert [(r.code, r.reason, r.body) for r in rejected] == [
        ("unreadable_payload", reason, payload)
    ]


def test_split_halves_a_batch_and_alone_isolates_an_item() -> None:
    rows = [v2_row(i) for i in range(1, 6)]
    (request,), _ = pack(rows)
    left, right = split(request)
    assert [r.seq for r in left.rows] == [1, 2] and [r.seq for r in right.rows] == [3, 4, 5]
    assert left.body == b'{"batch":[' + b",".join(request.items[:2]) + b"]}"
    single = alone(request, 3)
    assert (single.path, single.body, single.rows) == (ENTITY_PATH, request.items[3], (rows[3],))
    v1 = pack([v1_row(9, {"a": 1})])[0][0]
    assert alone(v1, 0) is v1


@given(
    kinds=st.lists(
        st.one_of(st.integers(90, 3000), st.just(-1)),  # item size, or -1 for a v1 row
        max_size=40,
    ),
    limit=st.integers(3013, 12_000),
)
def test_packing_keeps_order_fills_greedily_and_respects_limits(
    kinds: list[int], limit: int
) -> None:
    rows = [v1_row(i) if k < 0 else v2_row(i, k) for i, k in enumerate(kinds, 1)]
    requests, rejected = pack(rows, max_batch_bytes=limit, max_item_bytes=3000)
    assert rejected == []
    assert [row.seq for r in requests for row in r.rows] == [row.seq for row in rows]
    for r in requests:
        if r.is_batch:
            assert r.body is not None and len(r.body) == batch_size(r.items) <= limit
            assert json.loads(r.body)["batch"] == [json.loads(i) for i in r.items]
    for a, b in itertools.pairwise(requests):
        if a.is_batch and b.is_batch:  # the next item would not have fitted
            assert batch_size((*a.items, b.items[0])) > limit
