"""Content-hash dedupe keys (``retry:…``): what makes a retry the same event, and their order."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.operations import Identifier
from trackguard.core.keys import RETRY_PREFIX, event_key

WHO = Identifier("id", "cus_1")
T = 1_796_577_232


def key(body: dict[str, Any], who: Identifier | None = WHO) -> str:
    found = event_key(body, who, "event", body.get("name"), body.get("data"))
    assert found is not None
    return found


def test_a_timed_event_key_is_its_second_then_the_hash_of_what_it_says() -> None:
    body = {"name": "viewed", "data": {"sku": "A"}, "timestamp": T}
    what = ["id:cus_1", "event", "viewed", {"sku": "A"}, T]
    digest = hashlib.sha256(msgspec.json.Encoder(order="sorted").encode(what)).hexdigest()
    assert key(body) == f"retry:1796577232:{digest[:32]}"


def test_a_retry_finds_the_same_key_and_anything_else_does_not() -> None:
    body = {"name": "viewed", "data": {"sku": "A", "qty": 1}, "timestamp": T}
    retry = {"timestamp": T, "data": {"qty": 1, "sku": "A"}, "name": "viewed"}  # re-serialized
    assert key(retry) == key(body)
    assert key({**body, "timestamp": T + 1}) != key(body)
    assert key({**body, "data": {"sku": "B", "qty": 1}}) != key(body)
    assert key(body, Identifier("id", "cus_2")) != key(body)
    # the same second, another fraction of it: another event, under the same prefix
    assert key({**body, "timestamp": T + 0.5}).startswith("retry:1796577232:")
    assert key({**body, "timestamp": T + 0.5}) != key(body)


def test_keys_without_a_number_of_seconds_have_no_prefix() -> None:
    for stamp in (None, "2026-12-06T22:00:00Z", True, -1, 10**10, float("nan"), float("inf")):
        body: dict[str, Any] = {"name": "viewed", "data": {}}
        if stamp is not None:
            body["timestamp"] = stamp
        assert re.fullmatch(r"retry:[0-9a-f]{32}", key(body)), stamp


def test_an_event_id_is_the_key_whatever_its_time() -> None:
    assert key({"name": "viewed", "id": "01JABC", "timestamp": T}) == "id:01JABC"


@given(
    st.integers(min_value=0, max_value=10**10 - 1),
    st.integers(min_value=0, max_value=10**10 - 1),
    st.text(max_size=8),
    st.text(max_size=8),
)
def test_retry_keys_sort_by_event_second(a: int, b: int, name_a: str, name_b: str) -> None:
    """The claims index relies on this: keys of later events sort after earlier ones."""
    ka = key({"name": name_a, "data": {}, "timestamp": a})
    kb = key({"name": name_b, "data": {}, "timestamp": b})
    assert ka.startswith(RETRY_PREFIX) and kb.startswith(RETRY_PREFIX)
    if a < b:
        assert ka < kb
    elif a > b:
        assert ka > kb
