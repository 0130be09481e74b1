"""Edit distance and the opposite-words guard (``trackguard.plan.similarity``), and its lexicon."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.plan.naming import words
from trackguard.plan.similarity import Lexicon, edit_distance, forms, lexicon, opposite


def _lines() -> list[list[str]]:
    text = resources.files("trackguard.plan").joinpath("opposites.txt").read_text("utf-8")
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def test_lexicon_lines_are_two_lower_case_words_and_never_repeat() -> None:
    lines = _lines()
    assert len(lines) == 205
    for parts in lines:
        assert len(parts) == 2, parts
        assert all(p.isalpha() and p == p.lower() for p in parts), parts
        assert parts[0] != parts[1]
    pairs = [tuple(sorted(p)) for p in lines if p[0] not in ("prefix", "negation")]
    assert len(pairs) == len(set(pairs))
    assert len(pairs) == 184


def test_lexicon_words_are_single_name_words() -> None:
    # an entry the naming rules would split could never match a name's word
    for first, second in _lines():
        for word in (second,) if first in ("prefix", "negation") else (first, second):
            assert words(word) == (word,), word


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Application Installed", "Application Uninstalled", ("installed", "uninstalled")),
        ("app_reinstalled", "app_uninstalled", ("reinstalled", "uninstalled")),
        ("Product Viewed", "Product Reviewed", ("viewed", "reviewed")),
        ("account_activated", "account_deactivated", ("activated", "deactivated")),
        ("Signed In", "Signed Out", ("in", "out")),
        ("level_start", "level_end", ("start", "end")),
        ("Video Playback Started", "Video Playback Stopped", ("started", "stopped")),
        ("Product Added", "Product Removed", ("added", "removed")),
        ("Add to Cart", "Remove from Cart", ("add", "remove")),
        ("Modal Opened", "Modal Closed", ("opened", "closed")),
        ("login", "logout", ("login", "logout")),
        ("accountopened", "accountclosed", ("opened", "closed")),
        ("file_uploaded", "file_downloaded", ("uploaded", "downloaded")),
        ("match_won", "match_lost", ("won", "lost")),
        ("Email Opened", "Email Not Opened", ("", "not")),
        ("payment_succeeded", "payment_failed", ("succeeded", "failed")),
    ],
)
def test_opposites_are_found(a: str, b: str, why: tuple[str, str]) -> None:
    assert opposite(a, b) == why
    assert opposite(b, a) == why[::-1]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Prodcut Viewed", "Product Viewed"),
        ("Emial Opened", "Email Opened"),
        ("Order Completed", "Order Complete"),
        ("Order Canceled", "Order Cancelled"),
        ("Products Viewed", "Product Viewed"),
        ("sign_in", "sign_up"),
        ("checkout_started", "checkout_startde"),
        ("Order Completed", "order_completed"),
    ],
)
def test_typos_and_variants_are_not_opposites(a: str, b: str) -> None:
    assert opposite(a, b) is None


def test_forms_of_a_base_word() -> None:
    assert forms("stop") >= {"stop", "stops", "stopped", "stopping"}
    assert forms("close") >= {"close", "closes", "closed", "closing"}
    assert forms("deny") >= {"deny", "denies", "denied", "denying"}
    assert forms("finish") >= {"finish", "finishes", "finished", "finishing"}


def test_lexicon_rejects_a_line_of_three_words() -> None:
    with pytest.raises(ValueError, match="expected two words"):
        Lexicon("add remove delete\n")


def test_every_pair_is_opposite_in_both_directions() -> None:
    lex = lexicon()
    for word, others in lex.pairs.items():
        for other in others:
            assert lex.words_opposite(word, other)
            assert lex.words_opposite(other, word)


def test_edit_distance_counts_a_swap_as_one_edit() -> None:
    assert edit_distance("prodcut", "product", 2) == 1
    assert edit_distance("emial", "email", 2) == 1
    assert edit_distance("complete", "completed", 2) == 1
    assert edit_distance("kitten", "sitting", 5) == 3
    assert edit_distance("ca", "abc", 5) == 3  # optimal string alignment: no edit twice
    assert edit_distance("abc", "abcdef", 1) == 2  # over the limit: limit + 1


_WORD = st.text(alphabet="abcdefgh", max_size=8)


@given(_WORD, _WORD)
def test_edit_distance_is_symmetric_and_bounded(a: str, b: str) -> None:
    d = edit_distance(a, b, 20)
    assert d == edit_distance(b, a, 20)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert (d == 0) == (a == b)
    assert edit_distance(a, b, 1) == min(d, 2)


@given(_WORD, st.integers(0, 7))
def test_a_swap_of_neighbours_is_one_edit(a: str, i: int) -> None:
    if i + 1 < len(a) and a[i] != a[i + 1]:
        swapped = a[:i] + a[i + 1] + a[i] + a[i + 2 :]
        assert edit_distance(a, swapped, 3) == 1


def test_a_distance_past_the_limit_is_the_limit_plus_one() -> None:
    # Every row stays within the limit, yet the last cell is 3: the answer is still 2.
    assert edit_distance("bc", "caa", 1) == 2
    assert edit_distance("bc", "caa", 5) == 3
