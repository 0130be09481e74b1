"""Naming-drift clustering: what counts as one event, and which name is suggested."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trackguard.audit.drift import cluster, edit_distance, group_keys
from trackguard.plan.loader import parse_plan
from trackguard.plan.naming import name_key


def _clusters(names: dict[str, int], plan_text: str | None = None) -> dict[str, list[str]]:
    plan = parse_plan(plan_text) if plan_text else None
    return {c.canonical: [v.name for v in c.variants] for c in cluster(names, plan)}


def test_case_separators_and_small_edits_cluster() -> None:
    names = {
        "Order Completed": 5,
        "order_completed": 9,
        "orderCompleted": 2,
        "order_complete": 1,
        "product_viewed": 4,
        "Product Viewed": 1,
    }
    assert _clusters(names) == {
        "order_completed": [
            "Order Completed",
            "orderCompleted",
            "order_complete",
            "order_completed",
        ],
        "product_viewed": ["Product Viewed", "product_viewed"],
    }


def test_different_events_stay_apart() -> None:
    names = {
        "sign_in": 3,
        "sign_up": 3,
        "step_1_done": 1,
        "step_2_done": 1,
        "tag_added": 1,
        "tab_added": 1,
        "cart_updated": 1,
        "cart_viewed": 1,
        "login": 1,
        "logout": 1,
    }
    assert _clusters(names) == {}


def test_joined_words_plurals_and_typos_cluster() -> None:
    assert _clusters({"signup": 2, "sign_up": 5}) == {"sign_up": ["sign_up", "signup"]}
    assert _clusters({"user_created": 4, "users_created": 1}) == {
        "user_created": ["user_created", "users_created"]
    }
    assert _clusters({"checkout_started": 3, "checkout_startd": 1}) == {
        "checkout_started": ["checkout_startd", "checkout_started"]
    }
    # a transposition is two edits: too many for a seven-letter word
    assert _clusters({"checkout_started": 3, "checkout_startde": 1}) == {}


def test_canonical_is_most_frequent_snake_case_then_alphabetical() -> None:
    assert _clusters({"order_complete": 5, "order_completed": 5, "OrderCompleted": 50}) == {
        "order_complete": ["OrderCompleted", "order_complete", "order_completed"]
    }
    assert _clusters({"Order Completed": 3, "orderCompleted": 2}) == {
        "order_completed": ["Order Completed", "orderCompleted"]
    }


def test_plan_name_wins() -> None:
    plan = "version: 1\nevents:\n  purchase:\n    aliases: [order_completed]\n"
    assert _clusters({"order_completed": 9, "Order Completed": 1}, plan) == {
        "purchase": ["Order Completed", "order_completed"]
    }


def test_edit_distance() -> None:
    assert edit_distance("complete", "completed", 1) == 1
    assert edit_distance("kitten", "sitting", 5) == 3
    assert edit_distance("abc", "abcdef", 1) == 2  # over the limit: limit + 1


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.integers(1, 100), max_size=30))
def test_clusters_partition_names(names: dict[str, int]) -> None:
    found = cluster(names)
    seen: list[str] = [v.name for c in found for v in c.variants]
    assert len(seen) == len(set(seen))
    assert set(seen) <= set(names)
    for c in found:
        assert len(c.variants) >= 2
        assert c.total == sum(names[v.name] for v in c.variants)
    # names with the same key are always together
    where = {v.name: c.canonical for c in found for v in c.variants}
    for a in names:
        for b in names:
            if a != b and name_key(a) and name_key(a) == name_key(b):
                assert where.get(a) is not None and where.get(a) == where.get(b)


@given(st.lists(st.from_regex(r"[a-z]{1,8}(_[a-z0-9]{1,8}){0,3}", fullmatch=True), max_size=30))
def test_group_keys_is_a_partition(keys: list[str]) -> None:
    unique = sorted(set(keys))
    groups = group_keys(unique)
    assert sorted(k for g in groups for k in g) == unique
