"""Loading and linting plan YAML: the example plan, every error with its line, hostile files."""

from __future__ import annotations

import json
import pickle
import textwrap
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trackguard.plan
from trackguard.cli.plan import plan_group
from trackguard.plan import (
    EventSpec,
    Plan,
    PlanError,
    PlanIssue,
    PropertySpec,
    lint_plan,
    load_plan,
    parse_plan,
    plan_file_schema,
)
from trackguard.plan.loader import ALLOWED_KEYS
from trackguard.plan.model import (
    ACTIONS,
    POLICIES,
    PROPERTY_TYPES,
    SEMANTIC_EVENT_NAMES,
    with_every,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "d2c-plan.yaml"

Lint = Callable[[str], list[str]]


@pytest.fixture
def lint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lint:
    """Lint YAML written to ``plan.yaml`` and give the issues as printed lines."""
    monkeypatch.chdir(tmp_path)

    def run(text: str) -> list[str]:
        Path("plan.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return [str(issue) for issue in lint_plan("plan.yaml")]

    return run


def line_of(text: str, after: int = 0) -> int:
    """The first 1-based line of the example plan after ``after`` that contains ``text``."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if n > after and text in line)


# -- the example plan --------------------------------------------------------------------------


def test_example_plan_has_no_issues() -> None:
    assert lint_plan(EXAMPLE) == []


def test_example_plan_structure() -> None:
    plan = load_plan(EXAMPLE)
    assert plan.name == "d2c-store"
    assert plan.version == "2026-11-01"
    assert plan.source == str(EXAMPLE)
    assert (plan.identity.canonical, plan.identity.email_keyed) == ("id", "warn")
    assert (plan.identity.email_in_id, plan.identity.anonymous) == ("reject", "allow")
    assert (plan.naming.convention, plan.naming.action) == ("snake_case", "fix")
    assert plan.timestamps.action == "fix"
    assert (plan.unplanned.events, plan.unplanned.properties) == ("warn", "warn")
    assert plan.unplanned.attributes == "allow"
    assert list(plan.events) == [
        "product_viewed",
        "added_to_cart",
        "cart_updated",
        "checkout_started",
        "order_completed",
    ]

    order = plan.events["order_completed"]
    assert order.line == line_of("  order_completed:")
    assert order.aliases == ("Purchase", "Order Placed")
    assert order.dedupe_key == "data.order_id"
    assert order.unplanned_properties == "warn"
    assert [p.name for p in order.properties] == [
        "order_id",
        "total",
        "currency",
        "discount",
        "coupon",
        "item_count",
        "items",
        "shipping",
        "first_order",
    ]
    total = order.properties[1]
    assert total == PropertySpec(
        name="total",
        type="number",
        required=True,
        action="fix",
        minimum=0.0,
        line=line_of("      total: {type: number, required: true, minimum: 0, action: fix}"),
    )
    shipping = order.properties[7]
    assert shipping.type == "object"
    assert shipping.properties is not None
    city, country, method = shipping.properties
    assert (city.name, city.type, city.action) == ("city", "string", "reject")
    assert (country.min_length, country.max_length) == (2, 2)
    assert method.values == ("standard", "express", "pickup")
    assert order.properties[6].items == "object"

    (v2,) = order.versions
    assert v2.version == "2"
    assert v2.line == line_of('      "2":')
    assert v2.unplanned_properties is None
    assert [(p.name, p.type, p.required) for p in v2.properties] == [
        ("order_id", "string", True),
        ("total_cents", "integer", True),
        ("currency", "enum", True),
        ("line_items", "array", True),
        ("coupon", "string", False),
    ]

    # the anchored currency rule is shared, and the shorthand `sku: string` is a plain string
    viewed = {p.name: p for p in plan.events["product_viewed"].properties}
    added = {p.name: p for p in plan.events["added_to_cart"].properties}
    assert viewed["currency"].values == ("USD", "EUR", "GBP", "CAD")
    assert added["currency"].values == viewed["currency"].values
    assert added["currency"].action == "fix"
    sku_line = line_of("      sku: string", after=line_of("  product_viewed:"))
    assert viewed["sku"] == PropertySpec(name="sku", type="string", line=sku_line)

    assert list(plan.attributes) == [
        "email",
        "first_name",
        "last_name",
        "phone",
        "created_at",
        "first_order_date",
        "last_order_date",
        "lifetime_value",
        "order_count",
        "accepts_marketing",
        "country",
        "preferred_currency",
        "loyalty_tier",
    ]
    assert (plan.attributes["email"].type, plan.attributes["email"].action) == ("email", "fix")
    assert plan.attributes["first_order_date"].type == "timestamp"
    assert plan.attributes["phone"].pattern == r"^\+[1-9][0-9]{6,14}$"
    assert plan.attributes["preferred_currency"].type == "enum"


def test_example_plan_matches_the_file_schema() -> None:
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), plan_file_schema())


# -- defaults and shapes -----------------------------------------------------------------------


def test_empty_mapping_is_the_default_plan() -> None:
    assert parse_plan("{}", "p.yaml") == Plan(source="p.yaml")


def test_defaults_come_from_the_model() -> None:
    plan = parse_plan(
        textwrap.dedent(
            """\
            events:
              signed_up:
              order_completed:
                properties:
                  note:
                  sku: string
                  total: {type: number}
            """
        )
    )
    assert plan.name == "plan"
    assert plan.version == ""
    assert plan.events["signed_up"] == EventSpec(name="signed_up", line=2)
    props = plan.events["order_completed"].properties
    assert props == (
        PropertySpec(name="note", type="any", line=5),
        PropertySpec(name="sku", type="string", line=6),
        PropertySpec(name="total", type="number", line=7),
    )
    assert props[2].action == "reject"
    assert props[2].required is False


def test_policy_sections_keep_their_line() -> None:
    plan = parse_plan("name: x\nnaming:\n  convention: kebab-case\nunplanned: {events: reject}\n")
    assert (plan.naming.convention, plan.naming.action, plan.naming.line) == (
        "kebab-case",
        "fix",
        2,
    )
    assert (plan.unplanned.events, plan.unplanned.properties, plan.unplanned.line) == (
        "reject",
        "warn",
        4,
    )
    assert plan.identity.line == 0


def test_plan_version_keeps_what_was_written() -> None:
    assert parse_plan("plan_version: 2026-11-01").version == "2026-11-01"
    assert parse_plan("plan_version: 3.10").version == "3.10"
    assert parse_plan("plan_version: '7'").version == "7"


def test_yaml_boolean_words_are_names_when_used_as_keys() -> None:
    plan = parse_plan("events:\n  x:\n    properties:\n      on: boolean\n      yes: string\n")
    assert [p.name for p in plan.events["x"].properties] == ["on", "yes"]


def test_merge_keys_share_properties() -> None:
    plan = parse_plan(
        textwrap.dedent(
            """\
            events:
              a:
                properties: &common
                  cart_id: {type: string, required: true}
                  currency: string
              b:
                properties:
                  <<: *common
                  currency: {type: enum, values: [USD]}
            """
        )
    )
    b = {p.name: p for p in plan.events["b"].properties}
    assert b["cart_id"].required is True
    assert b["currency"].type == "enum"  # the mapping's own key wins over the merged one


def test_numbers_and_dates_in_values() -> None:
    plan = parse_plan(
        "events:\n  x:\n    properties:\n      v: {type: enum, values: [1, 2.5, 2024-01-01]}\n"
    )
    assert plan.events["x"].properties[0].values == (1, 2.5, "2024-01-01")


# -- errors and warnings, each with its exact line ---------------------------------------------

ALLOWED_PROPERTY_KEYS = (
    "type, required, action, description, values, minimum, maximum, min_length, max_length, "
    "pattern, items, min_items, max_items, properties"
)
TYPES = "string, number, integer, boolean, timestamp, email, enum, object, array, any"

CASES = [
    pytest.param(
        "version: 1\nevnts: {}\n",
        [
            "plan.yaml:2:1: error: top level: unknown key 'evnts' (did you mean 'events'?); "
            "allowed keys: version, name, plan_version, naming, identity, timestamps, unplanned, "
            "dedupe, timeliness, events, attributes, pages, screens, semantic_events"
        ],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """\
        events:
          order_completed:
            properties:
              order_id: {type: string, requried: true}
        """,
        [
            "plan.yaml:4:32: error: events.order_completed.properties.order_id: unknown key "
            f"'requried' (did you mean 'required'?); allowed keys: {ALLOWED_PROPERTY_KEYS}"
        ],
        id="unknown-property-key",
    ),
    pytest.param(
        "events:\n  a:\n    descripton: x\n    colour: red\n",
        [
            "plan.yaml:3:5: error: events.a: unknown key 'descripton' (did you mean "
            "'description'?); allowed keys: description, aliases, dedupe_key, "
            "unplanned_properties, properties, versions, derive",
            "plan.yaml:4:5: error: events.a: unknown key 'colour'; allowed keys: description, "
            "aliases, dedupe_key, unplanned_properties, properties, versions, derive",
        ],
        id="unknown-event-keys",
    ),
    pytest.param(
        "identity: {canonical: id, email_keyd: warn}\n",
        [
            "plan.yaml:1:27: error: identity: unknown key 'email_keyd' (did you mean "
            "'email_keyed'?); allowed keys: canonical, email_keyed, unknown_email, email_in_id, "
            "anonymous, conflict, id_type, unlinked_after"
        ],
        id="unknown-identity-key",
    ),
    pytest.param(
        "events:\n  a:\n    versions:\n      '2': {propertes: {}}\n",
        [
            "plan.yaml:4:13: error: events.a.versions.2: unknown key 'propertes' (did you mean "
            "'properties'?); allowed keys: properties, unplanned_properties"
        ],
        id="unknown-version-key",
    ),
    pytest.param(
        "- just\n- a list\n",
        ["plan.yaml:1:1: error: the plan must be a mapping of keys such as 'events', got a list"],
        id="top-level-not-a-mapping",
    ),
    pytest.param(
        "",
        ["plan.yaml:1:1: error: the plan is empty; expected a mapping with 'events' and more"],
        id="empty-file",
    ),
    pytest.param(
        "events:\n  a:\n    properties:\n      x: {type: string\n",
        [
            "plan.yaml:5:1: error: invalid YAML: expected ',' or '}', but got '<stream end>' "
            "(while parsing a flow mapping on line 4)"
        ],
        id="yaml-syntax-error",
    ),
    pytest.param(
        "name: x\n  naming: y\n",
        ["plan.yaml:2:9: error: invalid YAML: mapping values are not allowed here"],
        id="yaml-bad-indentation",
    ),
    pytest.param(
        "name: [a]\nplan_version: {a: 1}\nevents: [order_completed]\n",
        [
            "plan.yaml:1:7: error: name: expected a string, got a list",
            "plan.yaml:2:15: error: plan_version: expected a string, got a mapping",
            "plan.yaml:3:9: error: events: expected a mapping, got a list",
        ],
        id="wrong-top-level-types",
    ),
    pytest.param(
        """\
        events:
          a:
            aliases: Purchase
            description: 5
            properties:
              x: {type: string, required: "yes", min_length: -1, max_length: 2.5}
              y: {type: number, minimum: "0", maximum: .inf}
              z: [string]
        """,
        [
            "plan.yaml:3:14: error: events.a.aliases: expected a list of strings, got a string "
            "('Purchase')",
            "plan.yaml:4:18: error: events.a.description: expected a string, got a number (5)",
            "plan.yaml:6:35: error: events.a.properties.x.required: expected true or false, got "
            "a string ('yes')",
            "plan.yaml:6:54: error: events.a.properties.x.min_length: expected a whole number of "
            "0 or more, got a number (-1)",
            "plan.yaml:6:70: error: events.a.properties.x.max_length: expected a whole number of "
            "0 or more, got a number (2.5)",
            "plan.yaml:7:34: error: events.a.properties.y.minimum: expected a number, got a "
            "string ('0')",
            "plan.yaml:7:48: error: events.a.properties.y.maximum: expected a finite number, got "
            ".inf",
            "plan.yaml:8:10: error: events.a.properties.z: expected a type name or a mapping of "
            "rules, got a list",
        ],
        id="wrong-value-types",
    ),
    pytest.param(
        """\
        naming: {convention: snake, action: fixit}
        identity: {canonical: phone, email_keyed: allow, email_in_id: allow, anonymous: 1}
        timestamps: {action: rejected}
        unplanned: {events: ignore}
        """,
        [
            "plan.yaml:1:22: error: naming.convention: invalid convention 'snake' (did you mean "
            "'snake_case'?); allowed: snake_case, camelCase, PascalCase, kebab-case, none",
            "plan.yaml:1:37: error: naming.action: invalid action 'fixit' (did you mean 'fix'?); "
            "allowed: reject, fix, warn",
            "plan.yaml:2:23: error: identity.canonical: invalid identifier 'phone'; allowed: id, "
            "email",
            "plan.yaml:2:63: error: identity.email_in_id: invalid action 'allow'; allowed: "
            "reject, fix, warn",
            "plan.yaml:2:81: error: identity.anonymous: expected a policy (allow, warn, reject), "
            "got a number (1)",
            "plan.yaml:3:22: error: timestamps.action: invalid action 'rejected' (did you mean "
            "'reject'?); allowed: reject, fix, warn",
            "plan.yaml:4:21: error: unplanned.events: invalid policy 'ignore'; allowed: allow, "
            "warn, reject",
        ],
        id="invalid-choices",
    ),
    pytest.param(
        """\
        events:
          a:
            unplanned_properties: rejekt
            properties:
              sku: strng
              qty: {type: int, action: Fix}
        """,
        [
            "plan.yaml:3:27: error: events.a.unplanned_properties: invalid policy 'rejekt' (did "
            "you mean 'reject'?); allowed: allow, warn, reject",
            f"plan.yaml:5:12: error: events.a.properties.sku: invalid type 'strng' (did you mean "
            f"'string'?); allowed: {TYPES}",
            f"plan.yaml:6:19: error: events.a.properties.qty.type: invalid type 'int' (did you "
            f"mean 'integer'?); allowed: {TYPES}",
            "plan.yaml:6:32: error: events.a.properties.qty.action: invalid action 'Fix' (did you "
            "mean 'fix'?); allowed: reject, fix, warn",
        ],
        id="invalid-types-and-actions",
    ),
    pytest.param(
        """\
        events:
          a:
            properties:
              plan: {type: enum}
              tier: enum
              size: {type: enum, values: []}
        """,
        [
            "plan.yaml:4:20: error: events.a.properties.plan: type enum needs 'values' (the "
            "allowed values)",
            "plan.yaml:5:13: error: events.a.properties.tier: type enum needs 'values'; write "
            "{type: enum, values: [...]}",
            "plan.yaml:6:34: error: events.a.properties.size.values: an enum needs at least one "
            "value",
        ],
        id="enum-without-values",
    ),
    pytest.param(
        """\
        attributes:
          plan: {type: string, values: [free, pro]}
          note: {values: [a]}
        """,
        [
            "plan.yaml:2:24: error: attributes.plan.values: 'values' applies only to type enum, "
            "not string",
            "plan.yaml:3:10: error: attributes.note.values: 'values' applies only to type enum, "
            "not any",
        ],
        id="values-on-non-enum",
    ),
    pytest.param(
        """\
        events:
          a:
            properties:
              total: {type: number, minimum: 10, maximum: 5}
              code: {type: string, min_length: 8, max_length: 4}
              items: {type: array, min_items: 3, max_items: 1}
        """,
        [
            "plan.yaml:4:38: error: events.a.properties.total: minimum (10) is greater than "
            "maximum (5)",
            "plan.yaml:5:40: error: events.a.properties.code: min_length (8) is greater than "
            "max_length (4)",
            "plan.yaml:6:39: error: events.a.properties.items: min_items (3) is greater than "
            "max_items (1)",
        ],
        id="min-greater-than-max",
    ),
    pytest.param(
        "attributes:\n  sku: {type: string, pattern: '[A-Z'}\n",
        [
            "plan.yaml:2:32: error: attributes.sku.pattern: invalid regular expression: "
            "unterminated character set at position 0"
        ],
        id="invalid-pattern",
    ),
    pytest.param(
        """\
        events:
          order_completed:
            aliases: [Purchase]
          checkout_started:
            aliases: [purchase, Checkout Started]
          OrderCompleted: {}
        """,
        [
            "plan.yaml:5:15: error: events.checkout_started.aliases: alias 'purchase' clashes "
            "with alias 'Purchase' of event 'order_completed' (line 3); names are compared "
            "ignoring case and separators",
            "plan.yaml:6:3: error: events.OrderCompleted: event name 'OrderCompleted' clashes "
            "with event name 'order_completed' of event 'order_completed' (line 2); names are "
            "compared ignoring case and separators",
            "plan.yaml:6:3: warning: events.OrderCompleted: event name 'OrderCompleted' does not "
            "follow snake_case (expected 'order_completed')",
        ],
        id="duplicate-event-names-after-aliases",
    ),
    pytest.param(
        """\
        events:
          purchase: {}
          order_completed:
            aliases:
              - Purchase
              - Order Completed
              - order_completed
              - Order Placed
              - Order Placed
        """,
        [
            "plan.yaml:5:9: error: events.order_completed.aliases: alias 'Purchase' clashes with "
            "event name 'purchase' of event 'purchase' (line 2); names are compared ignoring "
            "case and separators",
            "plan.yaml:7:9: warning: events.order_completed.aliases: alias 'order_completed' "
            "repeats the event name",
            "plan.yaml:9:9: warning: events.order_completed.aliases: alias 'Order Placed' "
            "repeats an earlier alias",
        ],
        id="alias-of-another-event-and-repeats",
    ),
    pytest.param(
        """\
        events:
          application_uninstalled:
            aliases: ["Application Installed", "App Removed", "application_uninstaled"]
          signed_in:
            aliases: [signedOut, Signed In Not]
          level_start:
            aliases: [level_end, round_finished]
        """,
        [
            "plan.yaml:3:15: warning: events.application_uninstalled.aliases: alias "
            "'Application Installed' is close to 'application_uninstalled' but reads as its "
            "opposite (installed / uninstalled): is it another event?",
            "plan.yaml:5:15: warning: events.signed_in.aliases: alias 'signedOut' is close to "
            "'signed_in' but reads as its opposite (out / in): is it another event?",
            "plan.yaml:5:26: warning: events.signed_in.aliases: alias 'Signed In Not' is close "
            "to 'signed_in' but reads as its opposite (not): is it another event?",
            "plan.yaml:7:15: warning: events.level_start.aliases: alias 'level_end' is close to "
            "'level_start' but reads as its opposite (end / start): is it another event?",
        ],
        id="alias-that-reads-as-the-opposite-of-its-event",
    ),
    pytest.param(
        "events:\n  '  ': {}\n  ' padded ': {}\n  a:\n    aliases: ['---']\n",
        [
            "plan.yaml:2:3: error: events.  : event name '  ' has no ASCII letters or digits",
            "plan.yaml:3:3: error: events. padded : event name ' padded ' has leading or "
            "trailing spaces",
            "plan.yaml:5:15: error: events.a.aliases: alias '---' has no ASCII letters or digits",
        ],
        id="unusable-names",
    ),
    pytest.param(
        """\
        events:
          a:
            dedupe_key: order_id
          b:
            dedupe_key: data.
          c:
            dedupe_key: id
          d:
            dedupe_key: data.order.id
            properties:
              order: {type: object, properties: {id: string}}
        """,
        [
            "plan.yaml:3:17: error: events.a.dedupe_key: invalid dedupe_key 'order_id'; use 'id' "
            "or a path into the event data such as 'data.order_id'",
            "plan.yaml:5:17: error: events.b.dedupe_key: invalid dedupe_key 'data.'; use 'id' or "
            "a path into the event data such as 'data.order_id'",
        ],
        id="invalid-dedupe-key",
    ),
    pytest.param(
        """\
        events:
          order_completed:
            dedupe_key: data.order_ref
            properties:
              order_id: string
            versions:
              '2':
                properties:
                  order_ref: string
          refund_issued:
            dedupe_key: data.refund.id
            properties:
              refund: string
        """,
        [
            "plan.yaml:3:17: warning: events.order_completed.dedupe_key: 'data.order_ref' refers "
            "to property 'order_ref' that event 'order_completed' does not declare",
            "plan.yaml:11:17: warning: events.refund_issued.dedupe_key: 'data.refund.id' refers "
            "to property 'refund.id' that event 'refund_issued' does not declare",
        ],
        id="dedupe-key-undeclared",
    ),
    pytest.param(
        """\
        events:
          a:
            properties:
              tags: {type: string, items: string, min_items: 1}
              address: {type: string, properties: {city: string}}
              list: {type: array, items: enum}
              n: {type: boolean, minimum: 0, pattern: x}
        """,
        [
            "plan.yaml:4:28: error: events.a.properties.tags.items: 'items' applies only to type "
            "array, not string",
            "plan.yaml:4:43: error: events.a.properties.tags.min_items: 'min_items' applies only "
            "to type array, not string",
            "plan.yaml:5:31: error: events.a.properties.address.properties: 'properties' applies "
            "only to type object, not string",
            "plan.yaml:6:34: error: events.a.properties.list.items: items cannot be enum, since "
            "items have no 'values' list; allowed: string, number, integer, boolean, timestamp, "
            "email, object, array, any",
            "plan.yaml:7:26: error: events.a.properties.n.minimum: 'minimum' applies only to "
            "type number, integer or timestamp, not boolean",
            "plan.yaml:7:38: error: events.a.properties.n.pattern: 'pattern' applies only to "
            "type string or email, not boolean",
        ],
        id="constraints-on-the-wrong-type",
    ),
    pytest.param(
        "version: 2\n",
        [
            "plan.yaml:1:10: error: version: unsupported plan format version 2; this trackguard "
            "reads 1"
        ],
        id="unsupported-format-version",
    ),
    pytest.param(
        "version: '1'\n",
        [
            "plan.yaml:1:10: error: version: expected the plan format version (1), got a string "
            "('1')"
        ],
        id="format-version-as-string",
    ),
    pytest.param(
        """\
        naming: {convention: camelCase}
        events:
          orderCompleted: {}
          order_refunded: {}
        """,
        [
            "plan.yaml:4:3: warning: events.order_refunded: event name 'order_refunded' does not "
            "follow camelCase (expected 'orderRefunded')"
        ],
        id="naming-convention-warning",
    ),
    pytest.param(
        """\
        events:
          a:
            properties:
              id: {type: string, required: true, action: warn}
        attributes:
          email: {type: email, required: true, action: warn}
        """,
        [
            "plan.yaml:4:50: warning: events.a.properties.id: required property with action "
            "warn: a missing value is only recorded, never rejected",
            "plan.yaml:6:24: warning: attributes.email.required: 'required' has no effect on "
            "attributes, since an identify call may send any subset of them",
        ],
        id="required-with-warn",
    ),
    pytest.param(
        """\
        events:
          a:
            properties:
              v: {type: enum, values: [yes, "no", 1, 1, null]}
        """,
        [
            "plan.yaml:4:32: warning: events.a.properties.v.values: 'yes' is read as the boolean "
            "true; quote it if you mean the string",
            "plan.yaml:4:46: warning: events.a.properties.v.values: duplicate value 1",
            "plan.yaml:4:49: error: events.a.properties.v.values: values must be strings, numbers "
            "or booleans, got null",
        ],
        id="enum-value-pitfalls",
    ),
    pytest.param(
        "name: !secret abc\nplan_version: !secret 2026\n",
        [
            "plan.yaml:1:7: error: cannot read the value 'abc': could not determine a constructor "
            "for the tag '!secret'",
        ],
        id="unreadable-tags",
    ),
    pytest.param(
        """\
        semantic_events:
          allow: [User Deleted, "user deleted", User Delete, 3]
        """,
        [
            "plan.yaml:2:25: warning: semantic_events.allow: 'user deleted' is listed twice",
            "plan.yaml:2:41: error: semantic_events.allow: 'User Delete' is not a Customer.io "
            "semantic event (did you mean 'User Deleted'?); allowed: Device Created or Updated, "
            "Device Deleted, User Deleted, User Suppressed, User Unsuppressed, Relationship "
            "Deleted, Object Deleted, Report Delivery Event",
            "plan.yaml:2:54: error: semantic_events.allow: expected a string, got a number (3)",
        ],
        id="semantic-events-allow",
    ),
    pytest.param(
        """\
        naming: {convention: snake_case}
        pages:
          Pricing Page:
            aliases: [pricing-page]
            dedupe_key: data.x
          pricing_page: {}
        screens:
          " Home": {}
        """,
        [
            "plan.yaml:5:5: error: pages.Pricing Page: unknown key 'dedupe_key'; allowed keys: "
            "description, aliases, unplanned_properties, properties",
            "plan.yaml:6:3: error: pages.pricing_page: page name 'pricing_page' clashes with page "
            "name 'Pricing Page' of page 'Pricing Page' (line 3); names are compared ignoring "
            "case and separators",
            "plan.yaml:8:3: error: screens. Home: screen name ' Home' has leading or trailing "
            "spaces",
        ],
        id="pages-and-screens",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_lint_issue(lint: Lint, text: str, expected: list[str]) -> None:
    assert lint(text) == expected


DUPLICATES = """\
name: one
name: two
events:
  order_completed:
    description: first
    description: second
    properties:
      order_id: string
      total: number
      order_id: {type: string, required: true}
  order_completed:
    properties:
      shipping:
        type: object
        properties: {city: string, city: number}
"""


def test_duplicate_keys_at_every_level(lint: Lint) -> None:
    assert lint(DUPLICATES) == [
        "plan.yaml:2:1: error: name: duplicate key 'name' (also on line 1); YAML would silently "
        "keep only the last",
        "plan.yaml:6:5: error: events.order_completed.description: duplicate key 'description' "
        "(also on line 5); YAML would silently keep only the last",
        "plan.yaml:10:7: error: events.order_completed.properties.order_id: duplicate key "
        "'order_id' (also on line 8); YAML would silently keep only the last",
        "plan.yaml:11:3: error: events.order_completed: duplicate key 'order_completed' (also on "
        "line 4); YAML would silently keep only the last",
        "plan.yaml:15:36: error: events.order_completed.properties.shipping.properties.city: "
        "duplicate key 'city' (also on line 15); YAML would silently keep only the last",
    ]


def test_hostile_yaml_is_reported_not_raised(lint: Lint) -> None:
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    too_large = (
        "plan.yaml:1:1: error: the plan is too large: more than 100000 values once aliases "
        "expand (or an anchor refers to itself)"
    )
    assert lint("\n".join(bomb) + "\n") == [too_large]
    assert lint("events:\n  a:\n    properties: &p\n      x: {type: object, properties: *p}\n") == [
        too_large
    ]
    assert lint("a: " + "[" * 3000 + "]" * 3000 + "\n") == [
        "plan.yaml:1:1: error: invalid YAML: the document is nested too deeply"
    ]
    assert lint("a: \x01\n") == [
        "plan.yaml:1:4: error: invalid YAML: unacceptable character #x0001 (special characters "
        "are not allowed)"
    ]
    assert lint("---\na: 1\n---\nb: 2\n") == [
        "plan.yaml:3:1: error: invalid YAML: expected a single document in the stream on line 2, "
        "but found another document"
    ]


def test_deep_nesting_is_capped(lint: Lint) -> None:
    nested = (
        "attributes: {a: " + "{type: object, properties: {a: " * 20 + "string" + "}}" * 20 + "}\n"
    )
    issues = lint(nested)
    assert len(issues) == 1
    assert issues[0].endswith(": objects nest more than 16 levels deep")


def test_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("binary.yaml").write_bytes(b"name: x\nevents: \x89PNG\x00\n")
    assert [str(i) for i in lint_plan("binary.yaml")] == [
        "binary.yaml:2:9: error: the plan is not UTF-8 text (byte 0x89 at offset 16)"
    ]
    assert [str(i) for i in lint_plan("missing.yaml")] == [
        "missing.yaml: error: cannot read the plan (No such file or directory)"
    ]
    assert [str(i) for i in lint_plan(".")] == [".: error: cannot read the plan (Is a directory)"]
    Path("bom.yaml").write_bytes(b"\xef\xbb\xbfname: with-bom\n")
    assert load_plan("bom.yaml").name == "with-bom"


# -- raising API ------------------------------------------------------------------------------


def test_parse_plan_raises_with_errors_and_keeps_warnings() -> None:
    text = "events:\n  OrderCompleted: {}\n  a: {properties: {x: strng}}\n"
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    error = caught.value
    assert [issue.severity for issue in error.issues] == ["warning", "error"]
    assert error.errors == (error.issues[1],)
    assert str(error) == (  # only errors, so no severity: an Error: line says it once
        f"p.yaml:3:23: events.a.properties.x: invalid type 'strng' (did you mean "
        f"'string'?); allowed: {TYPES}"
    )


def test_plan_error_survives_pickling() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan("version: 3\n", "p.yaml")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.issues == caught.value.issues
    assert str(copy) == str(caught.value)


def test_parse_plan_passes_with_warnings_only() -> None:
    assert list(parse_plan("events:\n  OrderCompleted: {}\n").events) == ["OrderCompleted"]


def test_load_plan_raises_for_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path / "missing.yaml")
    assert str(caught.value) == (
        f"{tmp_path / 'missing.yaml'}: cannot read the plan (No such file or directory)"
    )


def test_plan_issue_str_and_immutability() -> None:
    issue = PlanIssue("p.yaml", 3, 7, "warning", "look here")
    assert str(issue) == "p.yaml:3:7: warning: look here"
    with pytest.raises(AttributeError):
        issue.line = 4  # type: ignore[misc]


def test_pages_screens_and_semantic_events_are_read() -> None:
    plan = parse_plan(
        """\
unplanned: {pages: warn, screens: reject}
semantic_events:
  allow: [" user deleted", Device Created or Updated]
pages:
  Pricing:
    description: The pricing page
    aliases: [Plans]
    unplanned_properties: reject
    properties:
      url: {type: string, required: true}
screens:
  Home:
    properties: {tab: string}
"""
    )
    assert (plan.unplanned.pages, plan.unplanned.screens) == ("warn", "reject")
    assert plan.semantic_events.allow == ("User Deleted", "Device Created or Updated")
    assert plan.semantic_events.line == 2
    pricing = plan.pages["Pricing"]
    assert (pricing.description, pricing.aliases, pricing.unplanned_properties) == (
        "The pricing page",
        ("Plans",),
        "reject",
    )
    assert [(p.name, p.type, p.required) for p in pricing.properties] == [("url", "string", True)]
    assert [p.name for p in plan.screens["Home"].properties] == ["tab"]
    assert plan.events == {}


def test_a_plan_without_the_pipelines_sections_allows_every_page_and_no_semantic_event() -> None:
    plan = parse_plan("events: {}\n")
    assert (plan.pages, plan.screens, plan.semantic_events.allow) == ({}, {}, ())
    assert (plan.unplanned.pages, plan.unplanned.screens) == ("allow", "allow")


def test_public_api_is_pinned() -> None:
    assert trackguard.plan.__all__ == [
        "EventSpec",
        "EventVersion",
        "IdentityPolicy",
        "NamingPolicy",
        "Plan",
        "PlanError",
        "PlanIssue",
        "PropertySpec",
        "SemanticPolicy",
        "TimestampPolicy",
        "UnplannedPolicy",
        "attributes_json_schema",
        "lint_plan",
        "load_plan",
        "parse_plan",
        "plan_file_schema",
        "to_json_schema",
        "views_json_schema",
    ]


# -- lint never raises -------------------------------------------------------------------------

_KEYS = sorted({key for keys in ALLOWED_KEYS.values() for key in keys} | {"order_id", "x"})
_WORDS = [*ACTIONS, *POLICIES, *PROPERTY_TYPES, "data.order_id", "id", "snake_case", "[a-", "1"]
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.sampled_from(_WORDS),
    st.text(max_size=8),
)
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=30,
)

_settings = settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _assert_answers(path: Path) -> None:
    issues = lint_plan(path)
    assert all(isinstance(issue, PlanIssue) for issue in issues)
    assert all(issue.line >= 1 and issue.column >= 1 for issue in issues)
    assert not any("internal error" in issue.message for issue in issues), issues


@_settings
@given(text=st.text(max_size=300))
def test_lint_never_raises_on_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_answers(path)


@_settings
@given(data=st.binary(max_size=300))
def test_lint_never_raises_on_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _assert_answers(path)


@_settings
@given(tree=st.dictionaries(st.sampled_from(ALLOWED_KEYS["plan"]), _trees, max_size=6))
def test_lint_never_raises_on_plan_shaped_yaml(tmp_path: Path, tree: dict[str, object]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    _assert_answers(path)


@_settings
@given(
    events=st.dictionaries(
        st.sampled_from(["order_completed", "Purchase", "x", "OrderCompleted"]),
        st.dictionaries(
            st.sampled_from(ALLOWED_KEYS["event"]),
            st.dictionaries(st.sampled_from(_KEYS), _trees, max_size=4) | _trees,
            max_size=4,
        ),
        max_size=3,
    )
)
def test_lint_never_raises_on_event_shaped_yaml(tmp_path: Path, events: dict[str, object]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump({"events": events}), encoding="utf-8")
    _assert_answers(path)


# -- the plan file's JSON Schema ---------------------------------------------------------------


def test_file_schema_is_shipped_in_the_package() -> None:
    shipped = resources.files("trackguard.plan").joinpath("plan.schema.json").read_text("utf-8")
    assert json.loads(shipped) == plan_file_schema()
    jsonschema.Draft7Validator.check_schema(plan_file_schema())


def test_file_schema_allows_the_keys_the_loader_allows() -> None:
    schema = plan_file_schema()
    definitions = schema["definitions"]
    assert tuple(schema["properties"]) == ALLOWED_KEYS["plan"]
    sections = ("naming", "identity", "timestamps", "unplanned", "dedupe", "timeliness")
    for section in (*sections, "semantic_events"):
        assert tuple(schema["properties"][section]["properties"]) == ALLOWED_KEYS[section]
    assert schema["properties"]["semantic_events"]["properties"]["allow"]["items"]["enum"] == list(
        SEMANTIC_EVENT_NAMES
    )
    assert tuple(definitions["event"]["properties"]) == ALLOWED_KEYS["event"]
    assert tuple(definitions["page"]["properties"]) == ALLOWED_KEYS["page"]
    assert tuple(definitions["every_page"]["properties"]) == ALLOWED_KEYS["every_page"]
    for section in ("pages", "screens"):
        star = schema["properties"][section]["properties"]["*"]
        assert star == {"$ref": "#/definitions/every_page"}
    assert tuple(definitions["version"]["properties"]) == ALLOWED_KEYS["version"]
    assert tuple(definitions["rules"]["properties"]) == ALLOWED_KEYS["property"]
    assert definitions["type"]["enum"] == list(PROPERTY_TYPES)


@pytest.mark.parametrize(
    "bad",
    [
        {"evnts": {}},
        {"events": {"a": {"properties": {"x": {"type": "enum"}}}}},
        {"events": {"a": {"properties": {"x": {"type": "string", "values": ["a"]}}}}},
        {"events": {"a": {"properties": {"x": "enum"}}}},
        {"events": {"a": {"dedupe_key": "order_id"}}},
        {"naming": {"action": "fixit"}},
        {"pages": {"*": {"aliases": ["all"]}}},
        {"screens": {"*": {"unplanned_properties": "reject"}}},
    ],
)
def test_file_schema_rejects_what_lint_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, plan_file_schema())
    errors = [i for i in _lint_dict(bad) if i.severity == "error"]
    assert errors


def _lint_dict(tree: dict[str, object]) -> list[PlanIssue]:
    try:
        parse_plan(yaml.safe_dump(tree))
    except PlanError as exc:
        return list(exc.issues)
    return []


# -- the lint command --------------------------------------------------------------------------


def test_cli_lint_clean_plan() -> None:
    result = CliRunner().invoke(plan_group, ["lint", str(EXAMPLE)])
    assert result.exit_code == 0
    assert result.stdout == f"{EXAMPLE}: 0 errors, 0 warnings\n"


def test_cli_lint_reports_issues_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plan.yaml").write_text("events:\n  OrderCompleted: {}\n  a: {colour: red}\n")
    result = CliRunner().invoke(plan_group, ["lint", "plan.yaml"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "plan.yaml:2:3: warning: events.OrderCompleted: event name 'OrderCompleted' does not "
        "follow snake_case (expected 'order_completed')",
        "plan.yaml:3:7: error: events.a: unknown key 'colour'; allowed keys: description, "
        "aliases, dedupe_key, unplanned_properties, properties, versions, derive",
        "plan.yaml: 1 error, 1 warning",
    ]


def test_cli_lint_warnings_alone_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plan.yaml").write_text("events:\n  OrderCompleted: {}\n  orderRefunded: {}\n")
    result = CliRunner().invoke(plan_group, ["lint", "plan.yaml"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "plan.yaml: 0 errors, 2 warnings"


def test_cli_lint_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(plan_group, ["lint", str(tmp_path / "missing.yaml")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert runner.invoke(plan_group, ["lint"]).exit_code == 2
    assert runner.invoke(plan_group, ["lint", str(tmp_path)]).exit_code == 2


def test_cli_commands_have_examples() -> None:
    for name, command in plan_group.commands.items():
        assert command.help is not None, name
        assert "Example:" in command.help, name


def test_dedupe_windows_and_derive_total() -> None:
    plan = parse_plan(
        "dedupe: {window: 2d, retry_window: 90}\n"
        "events:\n  order_completed:\n    dedupe_key: data.order_id\n"
        "    derive: {total: data.total}\n",
        "plan.yaml",
    )
    assert (plan.dedupe.window, plan.dedupe.retry_window) == (172_800.0, 90.0)
    assert plan.events["order_completed"].derive_total == "data.total"


def test_bad_dedupe_window_and_derive_path_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "dedupe: {window: soon}\nevents:\n  order_completed:\n    derive: {total: total}\n"
    )
    assert [str(i) for i in lint_plan(path)] == [
        f"{path}:1:18: error: dedupe.window: 'soon' is not a duration: write a number with a "
        "unit: 30s, 15m, 24h, 7d, 2w, or combined: 1h30m",
        f"{path}:4:21: error: events.order_completed.derive.total: 'total' is not a path into "
        "the event data, e.g. data.total",
    ]


def test_identity_and_timeliness_sections() -> None:
    plan = parse_plan(
        "identity: {email_keyed: fix, unknown_email: reject, conflict: warn, "
        "unlinked_after: 12h}\n"
        "timeliness:\n  max_age: 48h\n  late: reject\n  future_skew: 5m\n"
        "  stale_after_purchase: {events: [cart_updated], action: reject}\n",
        "plan.yaml",
    )
    i, t = plan.identity, plan.timeliness
    assert (i.email_keyed, i.unknown_email, i.conflict, i.unlinked_after) == (
        "fix",
        "reject",
        "warn",
        43_200.0,
    )
    assert (t.max_age, t.late, t.future_skew, t.future) == (172_800.0, "reject", 300.0, "warn")
    assert (t.purchase_event, t.stale_events, t.stale) == (
        "order_completed",
        ("cart_updated",),
        "reject",
    )


# -- the "*" entry of pages: and screens: ------------------------------------------------------


def test_a_star_entry_holds_the_properties_of_every_page(lint: Lint) -> None:
    text = """\
        version: 1
        pages:
          "*":
            description: every page view
            properties:
              url: {type: string, required: true}
          Pricing:
            properties:
              plan: string
        screens:
          "*": {properties: {app_version: string}}
        """
    assert lint(text) == []
    plan = parse_plan(textwrap.dedent(text))
    every = plan.every_view("pages")
    assert every is not None
    assert (every.name, every.description, [p.name for p in every.properties]) == (
        "*",
        "every page view",
        ["url"],
    )
    assert list(plan.named_views("pages")) == ["Pricing"]
    assert list(plan.pages) == ["*", "Pricing"]
    screens = plan.every_view("screens")
    assert screens is not None and [p.name for p in screens.properties] == ["app_version"]
    assert parse_plan("version: 1\n").every_view("pages") is None


def test_a_page_has_the_star_entrys_properties_it_does_not_declare() -> None:
    plan = parse_plan(
        "version: 1\npages:\n"
        '  "*": {properties: {url: string, title: {type: string, required: true}}}\n'
        "  Pricing: {properties: {title: integer, plan: string}}\n"
    )
    every, pricing = plan.every_view("pages"), plan.named_views("pages")["Pricing"]
    assert every is not None
    merged = with_every(pricing.properties, every.properties)
    assert [(p.name, p.type, p.required) for p in merged] == [
        ("title", "integer", False),  # its own spec wins
        ("plan", "string", False),
        ("url", "string", False),
    ]
    assert with_every(every.properties, ()) == every.properties


def test_star_entry_mistakes_are_lint_errors_with_suggestions(lint: Lint) -> None:
    assert lint(
        """\
        version: 1
        events:
          "*": {}
        pages:
          "*":
            aliases: [all]
            unplanned_properties: reject
            propertes: {url: string}
        screens:
          "*": {dedupe_key: data.x}
        """
    ) == [
        "plan.yaml:3:3: error: events.*: event name '*' has no ASCII letters or digits; a '*'"
        " entry is for pages: and screens:",
        "plan.yaml:6:5: error: pages.*: the '*' entry applies to every page call, so it has no"
        " aliases; allowed keys: description, properties",
        "plan.yaml:7:5: error: pages.*: the '*' entry applies to every page call;"
        " unplanned_properties belongs to a named page or to unplanned.properties; allowed keys:"
        " description, properties",
        "plan.yaml:8:5: error: pages.*: unknown key 'propertes' (did you mean 'properties'?);"
        " allowed keys: description, properties",
        "plan.yaml:10:9: error: screens.*: unknown key 'dedupe_key'; allowed keys: description,"
        " properties",
    ]


@_settings
@given(
    entry=st.dictionaries(
        st.sampled_from([*ALLOWED_KEYS["page"], "dedupe_key", "x"]),
        st.dictionaries(st.sampled_from(_KEYS), _trees, max_size=4) | _trees,
        max_size=4,
    ),
    section=st.sampled_from(["pages", "screens"]),
)
def test_any_star_entry_loads_or_lints_with_lines(
    tmp_path: Path, entry: dict[str, object], section: str
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump({section: {"*": entry, "Home": entry}}), encoding="utf-8")
    _assert_answers(path)
    issues = [i for i in lint_plan(path) if i.severity == "error"]
    if not issues:
        plan = load_plan(path)
        assert plan.every_view(section) is not None  # type: ignore[arg-type]
        assert set(entry) <= set(ALLOWED_KEYS["every_page"]) | {"properties"}
    elif set(entry) - set(ALLOWED_KEYS["every_page"]):
        assert any(i.message.startswith(f"{section}.*: ") for i in issues)
