"""The plan's Pipelines sections: ``pages:`` and ``screens:`` (page and screen calls checked by
name with the events' property rules) and ``semantic_events.allow`` (Customer.io's semantic
event names quarantined unless the plan allows them)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate
from trackguard.contract.pipelines.semantic import SEMANTIC_EVENTS, semantic_event
from trackguard.core.pipelines import check_calls
from trackguard.core.plancheck import CompiledPlan
from trackguard.core.verdict import Verdict
from trackguard.plan.loader import parse_plan
from trackguard.plan.model import SEMANTIC_EVENT_NAMES
from trackguard.plan.naming import name_key

PLAN = """
version: 1
naming: {convention: snake_case, action: fix}
unplanned: {events: warn, properties: warn, pages: warn, screens: reject}
semantic_events:
  allow: ["device created or updated"]
events:
  order_completed:
    properties:
      order_id: {type: string, required: true}
pages:
  Pricing:
    aliases: ["Plans"]
    unplanned_properties: reject
    properties:
      url: {type: string, required: true}
      plan: {type: enum, values: [free, pro], action: fix}
screens:
  Home:
    properties:
      tab: {type: enum, values: [feed, search]}
      badge_count: {type: integer, action: fix}
"""
COMPILED = CompiledPlan(parse_plan(PLAN))


def run(*calls: dict[str, Any], plan: CompiledPlan = COMPILED) -> Verdict:
    body = json.dumps({"batch": list(calls)}).encode()
    return check_calls(evaluate(Request(method="POST", path="/v1/batch", body=body)), plan)


def plan_findings(verdict: Verdict) -> list[tuple[str, str, str, str, str]]:
    return [
        (v.code, v.rule, v.path, v.action, v.message)
        for v in verdict.violations
        if v.rule != "contract"
    ]


def page(name: Any, props: dict[str, Any] | None, mid: str = "m-1") -> dict[str, Any]:
    call = {"type": "page", "userId": "u-1", "name": name, "messageId": mid}
    return call if props is None else {**call, "properties": props}


def test_a_planned_page_without_its_required_url_is_quarantined() -> None:
    verdict = run(page("Pricing", {"plan": "pro"}))
    assert verdict.operations == ()
    assert len(verdict.rejected) == 1
    assert plan_findings(verdict) == [
        (
            "property_missing",
            "pages.Pricing.properties.url",
            "properties.url",
            "reject",
            "required property 'url' is missing",
        )
    ]
    assert verdict.outcome == "rejected"


def test_a_page_is_fixed_renamed_from_its_alias_and_keeps_everything_else() -> None:
    call = page("Plans", {"url": "https://shop.example/pricing", "plan": "PRO"})
    verdict = run({**call, "category": "Shop", "context": {"ip": "203.0.113.9"}})
    (op,) = verdict.operations
    assert op.body == {
        "type": "page",
        "userId": "u-1",
        "name": "Pricing",
        "category": "Shop",
        "context": {"ip": "203.0.113.9"},
        "properties": {"url": "https://shop.example/pricing", "plan": "pro"},
        "messageId": "m-1",
    }
    assert plan_findings(verdict) == [
        (
            "event_alias",
            "pages.Pricing.aliases",
            "name",
            "fix",
            "page 'Plans' is an alias of 'Pricing'; renamed to 'Pricing'",
        ),
        (
            "property_enum",
            "pages.Pricing.properties.plan",
            "properties.plan",
            "fix",
            "'plan' 'PRO' is not one of the allowed values; normalized to 'pro'",
        ),
    ]
    assert op.dedupe_key == "pipelines:messageId:m-1"


def test_a_page_name_written_differently_is_drift_and_unplanned_properties_follow_the_page() -> (
    None
):
    verdict = run(page("pricing", {"url": "https://x.example", "coupon": "X"}))
    assert plan_findings(verdict) == [
        (
            "event_name_drift",
            "naming",
            "name",
            "fix",
            "page 'pricing' is 'Pricing' written differently; renamed to 'Pricing'",
        ),
        (
            "property_unplanned",
            "pages.Pricing.unplanned_properties",
            "properties.coupon",
            "reject",
            "property 'coupon' is not in the tracking plan",
        ),
    ]
    assert len(verdict.rejected) == 1


def test_unplanned_and_nameless_pages_take_the_unplanned_pages_policy() -> None:
    verdict = run(page("Checkout", {"url": "https://x.example"}), page(None, None, "m-2"))
    plan = [v for v in verdict.violations if v.rule != "contract"]
    assert [(v.batch_index, v.code, v.rule, v.path, v.action, v.message) for v in plan] == [
        (0, "page_unplanned", "unplanned.pages", "name", "warn",
         "page 'Checkout' is not in the tracking plan"),
        (1, "page_unplanned", "unplanned.pages", "name", "warn",
         "page without a name: the plan's pages are matched by name"),
    ]  # fmt: skip
    assert len(verdict.operations) == 2  # warn: delivered, not renamed to any convention
    assert verdict.operations[0].body is not None
    assert verdict.operations[0].body["name"] == "Checkout"


def test_screens_are_checked_against_screens_not_pages() -> None:
    home = {"type": "screen", "userId": "u-1", "name": "Home", "messageId": "m-s",
            "properties": {"tab": "feed", "badge_count": "3"}}  # fmt: skip
    fixed = run(home)
    (op,) = fixed.operations
    assert op.body is not None and op.body["properties"] == {"tab": "feed", "badge_count": 3}
    assert [f[0] for f in plan_findings(fixed)] == ["property_type"]
    unplanned = run({**home, "name": "Pricing"})  # a page name, not a screen name
    assert plan_findings(unplanned) == [
        ("screen_unplanned", "unplanned.screens", "name", "reject",
         "screen 'Pricing' is not in the tracking plan"),
    ]  # fmt: skip
    assert unplanned.operations == ()


def test_without_pages_and_screens_sections_page_and_screen_calls_pass_as_before() -> None:
    plan = CompiledPlan(parse_plan("version: 1\nevents: {}\n"))
    verdict = run(page("Anything", None), {"type": "screen", "userId": "u", "name": "X"}, plan=plan)
    assert plan_findings(verdict) == []
    assert len(verdict.operations) == 2


def track(event: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u-1", "event": event, "messageId": "m-t", **extra}


def test_a_semantic_event_the_plan_does_not_allow_is_quarantined_and_never_renamed() -> None:
    verdict = run(track("User Deleted"))
    assert verdict.operations == ()
    (kept,) = verdict.rejected
    assert kept.body is not None and kept.body["event"] == "User Deleted"  # as sent
    assert plan_findings(verdict) == [
        (
            "semantic_event_not_allowed",
            "semantic_events.allow",
            "event",
            "reject",
            "event 'User Deleted' is Customer.io's semantic event 'User Deleted', which deletes "
            "the person; the plan does not list it in semantic_events.allow",
        )
    ]
    codes = [v.code for v in verdict.violations if v.rule == "contract"]
    assert codes == ["destructive_event"]  # the contract's own warning stays


def test_semantic_names_are_matched_without_case_and_each_says_what_it_does() -> None:
    verdict = run(track(" object deleted ", groupId="acme"))
    assert [f[4] for f in plan_findings(verdict)] == [
        "event ' object deleted ' is Customer.io's semantic event 'Object Deleted', which "
        "deletes an object; the plan does not list it in semantic_events.allow"
    ]


def test_an_allowed_semantic_event_is_delivered_unchanged_without_naming_or_unplanned_checks() -> (
    None
):
    call = track("Device Created or Updated", context={"device": {"token": "t-1"}})
    verdict = run(call)
    (op,) = verdict.operations
    assert op.body == call
    assert plan_findings(verdict) == []  # no event_unplanned, no snake_case rename


def test_a_rename_into_a_semantic_event_needs_an_allow_too() -> None:
    plan = CompiledPlan(
        parse_plan(
            "version: 1\nnaming: {convention: none, action: fix}\n"
            "events:\n  User Deleted:\n    aliases: [Account Closed]\n"
        )
    )
    verdict = run(track("Account Closed"), plan=plan)
    assert [(f[0], f[3]) for f in plan_findings(verdict)] == [
        ("event_alias", "fix"),
        ("semantic_event_not_allowed", "reject"),
    ]
    assert plan_findings(verdict)[1][4] == (
        "event 'User Deleted' is Customer.io's semantic event 'User Deleted', which deletes the "
        "person; the plan does not list it in semantic_events.allow"
    )
    assert verdict.operations == ()


def test_track_api_events_named_like_semantic_events_are_ordinary_events() -> None:
    from trackguard.core.pipeline import Checker

    body = json.dumps({"name": "User Deleted", "data": {}}).encode()
    request = Request(method="POST", path="/api/v1/customers/u-1/events", body=body)
    verdict = Checker(COMPILED.plan).check(request)
    assert [v.code for v in verdict.violations] == ["event_unplanned", "event_name_convention"]


def test_the_plan_and_the_contract_know_the_same_semantic_events() -> None:
    assert tuple(s.name for s in SEMANTIC_EVENTS) == SEMANTIC_EVENT_NAMES


@given(st.text(max_size=40))
def test_semantic_event_is_exactly_a_known_name_without_case_or_spaces(text: str) -> None:
    found = semantic_event(text)
    known = {s.name.lower(): s for s in SEMANTIC_EVENTS}
    assert found is known.get(text.strip().lower())


@given(st.sampled_from(SEMANTIC_EVENT_NAMES), st.sampled_from(["", " ", "\t"]), st.booleans())
def test_every_semantic_name_in_any_case_is_quarantined_unless_allowed(
    name: str, pad: str, upper: bool
) -> None:
    sent = pad + (name.upper() if upper else name.lower()) + pad
    verdict = run(track(sent, groupId="g", context={"device": {"token": "t"}}))
    allowed = name == "Device Created or Updated"
    assert (len(verdict.operations), len(verdict.rejected)) == ((1, 0) if allowed else (0, 1))


# -- the "*" entry: properties every page (screen) call must have -----------------------------

EVERY = """
version: 1
unplanned: {pages: allow, screens: warn}
pages:
  "*":
    properties:
      url: {type: string, required: true}
      title: {type: string, action: fix}
      referrer: {type: string, action: warn}
  Pricing:
    unplanned_properties: reject
    properties:
      url: {type: string, required: false}
      plan: {type: enum, values: [free, pro]}
screens:
  "*":
    properties:
      app_version: {type: string, required: true, action: warn}
"""
EVERY_PLAN = CompiledPlan(parse_plan(EVERY))
URL_MISSING = (
    "property_missing",
    "pages.*.properties.url",
    "properties.url",
    "reject",
    "required property 'url' is missing",
)


def test_a_page_without_a_name_or_url_is_rejected_by_the_star_entry() -> None:
    verdict = run(page(None, {"title": "Home"}), plan=EVERY_PLAN)
    assert (verdict.outcome, len(verdict.rejected), verdict.operations) == ("rejected", 1, ())
    assert plan_findings(verdict) == [URL_MISSING]
    nameless = {"type": "page", "userId": "u-1", "messageId": "m-2"}  # no name, no properties
    assert plan_findings(run(nameless, plan=EVERY_PLAN)) == [URL_MISSING]


def test_a_page_with_its_url_passes_and_unplanned_names_get_the_star_rules() -> None:
    verdict = run(page(None, {"url": "https://shop.example/"}), plan=EVERY_PLAN)
    assert (verdict.outcome, plan_findings(verdict), len(verdict.operations)) == ("accepted", [], 1)
    fixed = run(
        page("Checkout", {"url": "https://x.io/c", "title": 42, "other": 1}), plan=EVERY_PLAN
    )
    assert fixed.outcome == "fixed"
    assert plan_findings(fixed) == [
        ("property_type", "pages.*.properties.title", "properties.title", "fix",
         "'title' should be string, got integer 42; converted to '42'"),
    ]  # fmt: skip
    (op,) = fixed.operations
    assert op.body is not None and op.body["properties"]["title"] == "42"
    bad = run(page("Checkout", {"url": 7}), plan=EVERY_PLAN)
    assert [(f[0], f[1], f[3]) for f in plan_findings(bad)] == [
        ("property_type", "pages.*.properties.url", "reject")
    ]


def test_a_named_page_keeps_its_own_spec_and_inherits_the_rest() -> None:
    # Pricing's own url is optional: no url is fine, and the "*" properties are not unplanned.
    verdict = run(page("Pricing", {"plan": "pro", "title": "Plans"}), plan=EVERY_PLAN)
    assert (verdict.outcome, plan_findings(verdict), len(verdict.operations)) == ("warned", [], 1)
    assert [v.code for v in verdict.violations] == ["page_without_url"]  # the contract's flag
    warned = run(page("pricing", {"referrer": 3, "coupon": "X"}), plan=EVERY_PLAN)
    assert [(f[0], f[1], f[3]) for f in plan_findings(warned)] == [
        ("event_name_drift", "naming", "fix"),
        ("property_type", "pages.*.properties.referrer", "warn"),
        ("property_unplanned", "pages.Pricing.unplanned_properties", "reject"),
    ]


def test_screens_take_their_own_star_entry_and_the_unplanned_policy_still_applies() -> None:
    screen = {"type": "screen", "userId": "u-1", "messageId": "m-1", "properties": {}}
    verdict = run(screen, plan=EVERY_PLAN)
    assert verdict.outcome == "warned"
    assert [(f[0], f[1], f[3]) for f in plan_findings(verdict)] == [
        ("property_missing", "screens.*.properties.app_version", "warn"),
        ("screen_unplanned", "unplanned.screens", "warn"),
    ]
    assert plan_findings(run(page(None, {"url": "u"}), plan=COMPILED)) == [
        (
            "page_unplanned",
            "unplanned.pages",
            "name",
            "warn",
            "page without a name: the plan's pages are matched by name",
        ),
    ]  # fmt: skip  (a plan without "*" checks no property of such a call)


@given(
    st.one_of(st.none(), st.text(max_size=12)),
    st.dictionaries(
        st.sampled_from(["url", "title", "plan", "x"]),
        st.one_of(st.text(max_size=5), st.integers(), st.none()),
        max_size=4,
    ),
)
def test_every_page_is_held_to_the_star_url_unless_its_own_entry_says_otherwise(
    name: str | None, props: dict[str, Any]
) -> None:
    verdict = run(page(name, props), plan=EVERY_PLAN)
    if verdict.contract_errors:
        return
    pricing = isinstance(name, str) and name_key(name.strip()) == name_key("Pricing")
    url_rules = [f for f in plan_findings(verdict) if f[2] == "properties.url"]
    url = props.get("url")
    if pricing:
        assert all(f[1] == "pages.Pricing.properties.url" for f in url_rules)
    elif url is None:
        assert url_rules == [URL_MISSING]
        assert verdict.outcome == "rejected"
    elif isinstance(url, str):
        assert url_rules == []
    else:
        assert [(f[0], f[1]) for f in url_rules] == [("property_type", "pages.*.properties.url")]
