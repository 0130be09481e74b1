"""The alert file: durations, percentages, env references, and clear errors for bad files."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from monitor_env import ALERTS

from trackguard.monitor.loader import (
    RuleError,
    expand_env,
    load_alerts,
    parse_alerts,
    parse_duration,
    parse_fraction,
    parse_window,
)

ENV = {"SLACK_WEBHOOK_URL": "https://hooks.example/T1", "PAGERDUTY_ROUTING_KEY": "rk"}


def _rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "r",
        "kind": "rate",
        "events": ["cart_updated"],
        "window": "15m",
        "threshold": "1%",
    }
    return {"rules": [{**base, **fields}]}


@given(st.integers(1, 10_000), st.sampled_from(["s", "m", "h", "d"]))
def test_durations_parse_to_seconds(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@given(st.one_of(st.integers(-100, 10_000), st.floats(), st.text(max_size=8)))
def test_windows_are_a_minute_or_more(value: object) -> None:
    try:
        seconds = parse_window(value)
    except ValueError:
        return
    assert seconds >= 60


@pytest.mark.parametrize(("value", "seconds"), [("1m", 60), (60, 60), ("90s", 90), ("2h", 7200)])
def test_windows_of_a_minute_and_more_are_kept(value: object, seconds: float) -> None:
    assert parse_window(value) == seconds


@given(st.integers(0, 10_000))
def test_percentages_parse_to_fractions(basis_points: int) -> None:
    assert parse_fraction(f"{basis_points / 100}%") == pytest.approx(basis_points / 10_000)


@given(st.text(max_size=20))
def test_garbage_durations_are_value_errors(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds > 0


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=12,
    )
)
def test_any_document_loads_or_raises_rule_error(doc: object) -> None:
    with contextlib.suppress(RuleError):
        parse_alerts(doc, {})


@given(
    st.sampled_from(["window", "threshold", "min_volume", "severity", "kind", "for"]),
    st.sampled_from(["", "abc", -1, "150%", "15 minutes", [], {"a": 1}]),
)
def test_bad_field_values_name_the_rule_and_field(key: str, value: object) -> None:
    try:
        parse_alerts(_rule(**{key: value}), {})
    except RuleError as exc:
        assert str(exc).startswith("rules[0] (r)")
        assert key in str(exc) or "kind" in str(exc)


def test_example_file_loads_with_its_secrets_from_the_environment() -> None:
    config = load_alerts(ALERTS, env=ENV)
    assert [r.name for r in config.rules][:2] == [
        "checkout-invalid-rate",
        "checkout-identifier-switch",
    ]
    slack = config.channels["slack"]
    assert slack.url == "https://hooks.example/T1"
    assert "hooks.example" not in repr(slack)  # secrets never reach a log line
    assert config.channels["pagerduty"].url == "https://events.pagerduty.com/v2/enqueue"
    rule = config.rules[0]
    assert rule.scope.events == {
        "added_to_cart",
        "cart_updated",
        "checkout_started",
        "order_completed",
    }
    assert (rule.window, rule.threshold, rule.resolve, rule.min_volume) == (900, 0.01, 0.005, 200)


def test_missing_secret_is_a_startup_error() -> None:
    with pytest.raises(RuleError) as info:
        load_alerts(ALERTS, env={"PAGERDUTY_ROUTING_KEY": "rk"})
    assert str(info.value) == (
        f"{ALERTS}:23:10: channels.slack.url: the environment variable SLACK_WEBHOOK_URL is not set"
    )


def test_env_references_and_defaults() -> None:
    assert expand_env("${A}/x/${B:-dflt}", {"A": "a"}) == "a/x/dflt"
    with pytest.raises(KeyError):
        expand_env("${MISSING}", {})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_rule(window="15 minutes"), "rules[0] (r).window: '15 minutes' is not a duration"),
        (
            _rule(window="30s"),
            "rules[0] (r).window: '30s' is shorter than a minute: counters are per minute, use 1m"
            " or more",
        ),
        (
            _rule(window=59),
            "rules[0] (r).window: 59 is shorter than a minute",
        ),
        (_rule(threshold="150%"), "rules[0] (r).threshold: '150%' must be between 0% and 100%"),
        (_rule(kind="rates"), "rules[0] (r).kind: 'rates' is not one of rate, count"),
        (_rule(threshhold="1%"), "rules[0] (r): a rate rule: unknown key 'threshhold'"),
        (_rule(channels=["slack"]), "rules[0] (r).channels: 'slack' is not defined"),
        ({"rules": [{"kind": "rate"}]}, "rules[0].name: a rule needs a name"),
        (
            {"channels": {"pd": {"type": "pagerduty"}}},
            "channels.pd.routing_key: a PagerDuty channel needs a routing key",
        ),
        ({"rules": [_rule()["rules"][0]] * 2}, "rules: the name 'r' is used by more than one"),
        (_rule(kind="volume", drop="50%", window="1h"), "rules[0] (r): a volume rule: unknown"),
    ],
)
def test_invalid_files_get_clear_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_alerts(doc, {})
    assert str(info.value).startswith(message)


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - name: [unclosed\n")
    with pytest.raises(RuleError) as info:
        load_alerts(path, env={})
    assert str(info.value).startswith(f"{path}:3:1: invalid YAML")


def test_a_misspelled_key_names_its_line_column_and_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - name: r\n    kind: count\n    windw: 5m\n")
    with pytest.raises(RuleError) as info:
        load_alerts(path, env={})
    assert str(info.value).startswith(
        f"{path}:4:5: rules[0] (r): a count rule: unknown key 'windw' (did you mean 'window'?);"
    )


def test_active_hours_accept_unquoted_times() -> None:
    doc = yaml.safe_load(
        "rules:\n- {name: o, kind: volume, events: [order_completed], window: 30m, below: 1,\n"
        "   active_hours: {days: mon-fri, from: 9:00, to: 18:00, timezone: Europe/Berlin}}\n"
    )
    (rule,) = parse_alerts(doc, {}).rules
    assert rule.active_hours is not None
    assert (rule.active_hours.start, rule.active_hours.end) == (540, 1080)
    assert rule.active_hours.days == {0, 1, 2, 3, 4}
