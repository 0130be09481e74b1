"""US/UK spellings and plurals that are one word (``trackguard.audit.variants``), and its data."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.audit.variants import singular, spelling, spellings, variant_key
from trackguard.plan.similarity import opposite


def test_spellings_data_is_pairs_of_distinct_lower_case_words() -> None:
    text = resources.files("trackguard.audit").joinpath("spellings.txt").read_text("utf-8")
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 109
    for parts in lines:
        assert len(parts) == 2 and parts[0] != parts[1], parts
        assert all(p.isalpha() and p == p.lower() for p in parts), parts
    uk = [p[1] for p in lines]
    assert len(uk) == len(set(uk))
    assert len(spellings()) == 109
    # a US spelling is never itself the UK spelling of something else
    assert not {p[0] for p in lines} & set(uk)


def test_no_spelling_pair_is_an_opposite() -> None:
    for uk, us in spellings().items():
        assert opposite(uk, us) is None, (uk, us)


@pytest.mark.parametrize(
    ("word", "one"),
    [
        ("cancelled", "canceled"),
        ("canceled", "canceled"),
        ("colour", "color"),
        ("favourited", "favorited"),
        ("organised", "organized"),
        ("personalisation", "personalization"),
        ("analysed", "analyzed"),
        ("catalogue", "catalog"),
        ("raised", "raised"),
        ("advised", "advised"),
        ("viewed", "viewed"),
    ],
)
def test_spelling(word: str, one: str) -> None:
    assert spelling(word) == one


@pytest.mark.parametrize(
    ("one", "many"),
    [
        ("product", "products"),
        ("category", "categories"),
        ("box", "boxes"),
        ("match", "matches"),
        ("wish", "wishes"),
        ("purchase", "purchases"),
        ("menu", "menus"),
        ("cookie", "cookies"),
        ("address", "addresses"),
    ],
)
def test_a_word_and_its_plural_meet(one: str, many: str) -> None:
    assert singular(one) == singular(many)


@pytest.mark.parametrize("word", ["address", "status", "news", "series", "ads", "product"])
def test_words_that_are_not_plurals_stay(word: str) -> None:
    assert singular(word) == word


def test_variant_key_ignores_spelling_plural_and_order() -> None:
    assert variant_key(("orders", "cancelled")) == variant_key(("canceled", "order"))
    assert variant_key(("order", "completed")) != variant_key(("order", "complete"))


@given(st.lists(st.from_regex(r"[a-z]{1,12}", fullmatch=True), max_size=5))
def test_variant_key_is_idempotent(ws: list[str]) -> None:
    key = variant_key(tuple(ws))
    assert variant_key(key) == key
