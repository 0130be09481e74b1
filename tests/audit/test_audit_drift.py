"""Naming-drift clustering: what counts as one event, how sure, and which name is suggested."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from trackguard.audit.drift import Traffic, cluster, near_pairs
from trackguard.audit.findings import from_drift
from trackguard.audit.model import Example
from trackguard.plan.loader import parse_plan
from trackguard.plan.naming import name_key


def _clusters(names: dict[str, int], plan_text: str | None = None) -> dict[str, list[str]]:
    plan = parse_plan(plan_text) if plan_text else None
    return {c.canonical: [v.name for v in c.variants] for c in cluster(names, plan)}


def _confidence(
    names: dict[str, int], traffic: dict[str, Traffic] | None = None
) -> dict[str, dict[str, tuple[str, str]]]:
    """canonical -> {variant: (confidence, evidence)} for every variant but the canonical."""
    return {
        c.canonical: {m.name: (m.confidence, m.evidence) for m in c.matches}
        for c in cluster(names, traffic=traffic)
    }


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
    assert _clusters({"checkout_started": 30, "checkout_startd": 1}) == {
        "checkout_started": ["checkout_startd", "checkout_started"]
    }
    # a transposition is one edit
    assert _clusters({"checkout_started": 30, "checkout_startde": 1}) == {
        "checkout_started": ["checkout_startde", "checkout_started"]
    }


def test_each_match_says_how_sure_and_why() -> None:
    names = {
        "order_canceled": 50,
        "Order Cancelled": 4,
        "orderCanceled": 3,
        "canceled_order": 2,
        "product_viewed": 400,
        "products_viewed": 3,
        "Prodcut Viewed": 3,
    }
    assert _confidence(names) == {
        "order_canceled": {
            "Order Cancelled": ("strong", "US/UK spelling (canceled, cancelled)"),
            "canceled_order": ("certain", "same words (another order)"),
            "orderCanceled": ("certain", "same words (case or separators)"),
        },
        "product_viewed": {
            "Prodcut Viewed": ("possible", "1 edit (prodcut / product), 3 events vs 403 (0.7%)"),
            "products_viewed": ("strong", "plural (product, products)"),
        },
    }


def test_opposites_are_never_merged_however_rare() -> None:
    names = {
        "Application Installed": 5000,
        "Application Uninstalled": 3,
        "Application Reinstalled": 2,
        "account_activated": 900,
        "account_deactivated": 1,
        "signed_in": 800,
        "signed_out": 1,
        "signedin": 2,
    }
    assert _clusters(names) == {"signed_in": ["signed_in", "signedin"]}


def test_a_short_word_missing_a_letter_is_a_possible_typo() -> None:
    assert _clusters({"menu_hidden": 200, "mnu_hidden": 2, "tab_added": 90, "tag_added": 2}) == {
        "menu_hidden": ["menu_hidden", "mnu_hidden"]
    }
    other_keys = {
        "chat_opened": Traffic({"chat_id"}, {"web"}),
        "cat_opened": Traffic({"cat_id"}, {"web"}),
    }
    assert _confidence({"chat_opened": 500, "cat_opened": 10}, other_keys) == {}


def test_two_frequent_names_are_two_events() -> None:
    # one edit apart, but neither is rare beside the other
    assert _clusters({"cart_viewed": 100, "card_viewed": 90, "level_passed": 50}) == {}
    assert _clusters({"level_passed": 50, "level_pased": 30}) == {}
    assert _clusters({"level_passed": 50, "level_pased": 10}) == {
        "level_passed": ["level_pased", "level_passed"]
    }


def test_traffic_evidence_decides_possible_matches() -> None:
    names = {"Product Viewed": 412, "Prodcut Viewed": 12}
    same = {
        "product_viewed": Traffic({"sku", "price"}, {"ios", "web"}),
        "prodcut_viewed": Traffic({"sku", "price"}, {"ios"}),
    }
    assert _confidence(names, same) == {
        "product_viewed": {
            "Product Viewed": ("certain", "same words (case or separators)"),
            "Prodcut Viewed": (
                "possible",
                "1 edit (prodcut / product), 12 events vs 412 (2.9%), same keys, same source",
            ),
        }
    }
    other_keys = {
        "product_viewed": Traffic({"sku", "price"}, {"ios"}),
        "prodcut_viewed": Traffic({"error_code"}, {"ios"}),
    }
    assert _confidence(names, other_keys) == {}
    other_source = {
        "product_viewed": Traffic((), {"ios"}),
        "prodcut_viewed": Traffic((), {"android"}),
    }
    assert _confidence(names, other_source) == {}
    typo_in_one_app = {
        "product_viewed": Traffic({"sku", "price", "currency"}, {"ios"}),
        "prodcut_viewed": Traffic({"sku", "price"}, {"android"}),
    }
    assert _confidence(names, typo_in_one_app)["product_viewed"]["Prodcut Viewed"] == (
        "possible",
        "1 edit (prodcut / product), 12 events vs 412 (2.9%), keys a subset (2 of 3), "
        "another source",
    )
    # distinct events on one object share most keys, not all
    one_key_more = {
        "round_selected": Traffic({"round_id", "selected_at"}, {"ios"}),
        "round_rejected": Traffic({"round_id", "rejected_at"}, {"ios"}),
    }
    assert _confidence({"round_selected": 1000, "round_rejected": 9}, one_key_more) == {}
    # two edits need the keys to agree: names alone are not enough
    assert _confidence({"round_selected": 1000, "round_rejected": 9}) == {}
    assert _confidence({"round_selected": 1000, "round_zelectet": 9}) == {}
    assert _confidence({"round_selected": 1000, "round_selcted": 9}) == {
        "round_selected": {
            "round_selcted": ("possible", "1 edit (selcted / selected), 9 events vs 1000 (0.9%)")
        }
    }


def test_canonical_is_most_frequent_snake_case_then_alphabetical() -> None:
    assert _clusters({"signup": 5, "sign_up": 5, "SignUp": 50}) == {
        "sign_up": ["SignUp", "sign_up", "signup"]
    }
    assert _clusters({"Order Completed": 3, "orderCompleted": 2}) == {
        "order_completed": ["Order Completed", "orderCompleted"]
    }


def test_plan_name_wins() -> None:
    plan = "version: 1\nevents:\n  purchase:\n    aliases: [order_completed]\n"
    assert _clusters({"order_completed": 9, "Order Completed": 1}, plan) == {
        "purchase": ["Order Completed", "order_completed"]
    }


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


@given(st.lists(st.from_regex(r"[a-z]{1,9}(_[a-z0-9]{1,9}){0,3}", fullmatch=True), max_size=30))
@example(["aaa", "aaaa"])
def test_near_pairs_are_the_same_words_but_one_near_word(keys: list[str]) -> None:
    unique = set(keys)
    pairs = list(near_pairs(unique))
    assert len({frozenset((a, b)) for a, b, _, _ in pairs}) == len(pairs)
    for a, b, wa, wb in pairs:
        assert {a, b} <= unique
        xs, ys = a.split("_"), b.split("_")
        assert len(xs) == len(ys)
        assert [(x, y) for x, y in zip(xs, ys, strict=True) if x != y] == [(wa, wb)]
        assert wa.isalpha() and wb.isalpha()
        short, long = sorted((wa, wb), key=len)
        if len(short) < 4:  # a short word pairs only with a longer one it is missing a letter of
            assert len(short) == 3 and len(long) == 4
            assert any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def test_findings_say_how_sure() -> None:
    names = {"order_canceled": 50, "Order Cancelled": 4, "Prodcut Viewed": 3, "product_viewed": 400}
    first = {"Order Cancelled": "log:7", "Prodcut Viewed": "log:9"}
    found = from_drift(cluster(names), 457, first)
    assert [(f.id, f.severity, f.title, f.count, f.examples) for f in found] == [
        (
            "naming_drift_possible.product_viewed.Prodcut Viewed",
            "info",
            "possible naming drift: 'Prodcut Viewed' may be 'product_viewed' "
            "(1 edit (prodcut / product), 3 events vs 400 (0.8%))",
            3,
            (Example("log:9", "'Prodcut Viewed' (3 events)"),),
        ),
        (
            "naming_drift.order_canceled",
            "warning",
            "one event under 2 names: 'Order Cancelled', 'order_canceled'; suggested "
            "'order_canceled'; strong match 'Order Cancelled': US/UK spelling "
            "(canceled, cancelled)",
            4,
            (Example("log:7", "'Order Cancelled' (4 events)"),),
        ),
    ]
