"""``backfill --as``: every value parses to one target or fails with the one usage line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.recovery.target import USAGE, Target, TargetError, parse_target

NAMES = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s != "")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("identify", Target("track", "identify")),
        ("event:order_completed", Target("track", "event", "order_completed")),
        ("event: Order Placed ", Target("track", "event", "Order Placed")),
        ("pipelines:identify", Target("pipelines", "identify")),
        ("pipelines:track:Order Completed", Target("pipelines", "track", "Order Completed")),
        ("pipelines:page:Home", Target("pipelines", "page", "Home")),
        ("pipelines:screen:a:b", Target("pipelines", "screen", "a:b")),
        ("pipelines:group", Target("pipelines", "group")),
        ("pipelines:alias", Target("pipelines", "alias")),
    ],
)
def test_each_form_parses(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "text",
    ["", "event:", "event: ", "pipelines:track", "pipelines:track:", "pipelines:identify:x",
     "pipelines:group:Acme", "pipelines:alias:", "pipelines:Group", "track:x", "Identify",
     "pipelines"],
)  # fmt: skip
def test_anything_else_is_refused_with_the_usage(text: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text)
    assert str(caught.value) == USAGE


@given(st.sampled_from(["event", "pipelines:track", "pipelines:page", "pipelines:screen"]), NAMES)
def test_a_named_target_round_trips_through_its_text(head: str, name: str) -> None:
    target = parse_target(f"{head}:{name}")
    assert target.name == name
    assert parse_target(target.text()) == target


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_with_the_usage(text: str) -> None:
    try:
        target = parse_target(text)
    except TargetError as e:
        assert str(e) == USAGE
    else:
        assert parse_target(target.text()) == target
