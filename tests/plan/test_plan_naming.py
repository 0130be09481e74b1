"""Event-name words, keys and conventions (``trackguard.plan.naming``)."""

from __future__ import annotations

import pytest

from trackguard.plan.naming import follows, name_key, to_convention, words

CONVENTIONS = ("snake_case", "camelCase", "PascalCase", "kebab-case", "none")

# name -> (words, snake_case, camelCase, PascalCase, kebab-case, none, conventions it follows)
CASES: dict[str, tuple[tuple[str, ...], str, str, str, str, str, set[str]]] = {
    "Order Completed": (
        ("order", "completed"),
        "order_completed",
        "orderCompleted",
        "OrderCompleted",
        "order-completed",
        "Order Completed",
        {"none"},
    ),
    "orderCompleted": (
        ("order", "completed"),
        "order_completed",
        "orderCompleted",
        "OrderCompleted",
        "order-completed",
        "orderCompleted",
        {"camelCase", "none"},
    ),
    "order-completed": (
        ("order", "completed"),
        "order_completed",
        "orderCompleted",
        "OrderCompleted",
        "order-completed",
        "order-completed",
        {"kebab-case", "none"},
    ),
    "ORDER_COMPLETED": (
        ("order", "completed"),
        "order_completed",
        "orderCompleted",
        "OrderCompleted",
        "order-completed",
        "ORDER_COMPLETED",
        {"none"},
    ),
    "HTTPRequestSent": (
        ("http", "request", "sent"),
        "http_request_sent",
        "httpRequestSent",
        "HttpRequestSent",
        "http-request-sent",
        "HTTPRequestSent",
        {"none"},
    ),
    # digits are words of their own, so a trailing version splits off its letter
    "order_completed_v2": (
        ("order", "completed", "v2"),
        "order_completed_v2",
        "orderCompletedV2",
        "OrderCompletedV2",
        "order-completed-v2",
        "order_completed_v2",
        {"none", "snake_case"},
    ),
    "": ((), "", "", "", "", "", set(CONVENTIONS)),
    "   ": ((), "", "", "", "", "", {"none"}),
    "  Order  Completed ": (
        ("order", "completed"),
        "order_completed",
        "orderCompleted",
        "OrderCompleted",
        "order-completed",
        "Order  Completed",
        {"none"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_words_and_key(name: str) -> None:
    expected_words = CASES[name][0]
    assert words(name) == expected_words
    assert name_key(name) == "_".join(expected_words)


@pytest.mark.parametrize("name", list(CASES))
def test_to_convention(name: str) -> None:
    written = {convention: to_convention(name, convention) for convention in CONVENTIONS}
    assert tuple(written.values()) == CASES[name][1:6]


@pytest.mark.parametrize("name", list(CASES))
def test_follows(name: str) -> None:
    assert {c for c in CONVENTIONS if follows(name, c)} == CASES[name][6]


def test_drifted_spellings_share_a_key() -> None:
    spellings = ["Order Completed", "orderCompleted", "order-completed", "ORDER_COMPLETED"]
    assert {name_key(s) for s in spellings} == {"order_completed"}
    assert name_key("Order Placed") != name_key("Order Completed")


def test_unknown_convention_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown naming convention: SCREAMING"):
        to_convention("order completed", "SCREAMING")


def test_empty_name_raises_nothing_for_unknown_convention() -> None:
    # a name without words is returned trimmed before the convention is looked at
    assert to_convention("  ", "SCREAMING") == ""


def test_versioned_snake_case_name_is_left_alone() -> None:
    assert follows("order_completed_v2", "snake_case")


def test_non_ascii_letters_are_kept() -> None:
    assert to_convention("café_visited", "snake_case") == "café_visited"
