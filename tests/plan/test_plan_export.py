"""Plan → JSON Schema: the schemas accept what the plan accepts untouched, and reject the rest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from trackguard.cli.plan import plan_group
from trackguard.plan import (
    attributes_json_schema,
    load_plan,
    parse_plan,
    plan_file_schema,
    to_json_schema,
    views_json_schema,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "d2c-plan.yaml"
PLAN = load_plan(EXAMPLE)
SCHEMAS = to_json_schema(PLAN)
STRICT = to_json_schema(PLAN, include_warn=True)

GOOD_ORDER: dict[str, Any] = {
    "name": "order_completed",
    "timestamp": 1767225600,
    "data": {
        "order_id": "1001",
        "total": 49.9,
        "currency": "USD",
        "discount": 5,
        "coupon": "WELCOME10",
        "item_count": 2,
        "items": [{"sku": "TEE-M", "qty": 2}],
        "shipping": {"city": "Lyon", "country": "FR", "method": "express"},
        "first_order": True,
    },
}
GOOD_ORDER_V2: dict[str, Any] = {
    "name": "order_completed",
    "data": {
        "schema_version": "2",
        "order_id": "1002",
        "total_cents": 4990,
        "currency": "EUR",
        "line_items": [{"sku": "TEE-M", "qty": 1}],
    },
}
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "product_viewed": {
        "name": "product_viewed",
        "data": {
            "product_id": "p1",
            "sku": "TEE-M",
            "price": 25,
            "currency": "GBP",
            "url": "https://shop.example/tee",
        },
    },
    "added_to_cart": {
        "name": "added_to_cart",
        "data": {"cart_id": "c1", "product_id": "p1", "quantity": 1, "price": 25.0},
    },
    "cart_updated": {"name": "cart_updated", "data": {"cart_id": "c1", "items": [], "subtotal": 0}},
    "checkout_started": {
        "name": "checkout_started",
        "data": {"cart_id": "c1", "checkout_id": "k1", "total": 50, "item_count": 2},
    },
    "order_completed": GOOD_ORDER,
}


def failures(schema: dict[str, Any], body: Any) -> set[tuple[str, str]]:
    """Where and why a body fails: (JSON path joined by '/', failing keyword)."""
    errors = Draft202012Validator(schema).iter_errors(body)
    return {
        ("/".join(str(part) for part in error.absolute_path), error.validator) for error in errors
    }


def with_data(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = {**body["data"], **changes}
    return {**body, "data": {k: v for k, v in data.items() if v is not ...}}


def test_one_schema_per_canonical_event() -> None:
    assert list(SCHEMAS) == list(PLAN.events)
    for schema in [*SCHEMAS.values(), *STRICT.values(), attributes_json_schema(PLAN)]:
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("event", list(GOOD_BODIES))
def test_good_bodies_pass(event: str) -> None:
    assert failures(SCHEMAS[event], GOOD_BODIES[event]) == set()
    assert failures(STRICT[event], GOOD_BODIES[event]) == set()


def test_order_completed_shape() -> None:
    schema = SCHEMAS["order_completed"]
    assert schema["title"] == "order_completed"
    assert schema["required"] == ["name", "data"]
    assert schema["properties"]["name"] == {"const": "order_completed"}
    assert schema["properties"]["timestamp"] == {
        "type": ["integer", "null"],
        "minimum": 0,
        "exclusiveMaximum": 100_000_000_000,
    }
    base = schema["properties"]["data"]["else"]
    assert base["required"] == ["order_id", "total", "currency"]
    assert base["properties"]["total"] == {"type": "number", "minimum": 0}  # required
    assert base["properties"]["currency"] == {"enum": ["USD", "EUR", "GBP", "CAD"]}
    assert base["properties"]["discount"] == {"type": ["number", "null"], "minimum": 0}
    assert base["properties"]["first_order"] == {}  # action warn: not enforced by default
    assert "additionalProperties" not in base  # unplanned_properties: warn


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(with_data(GOOD_ORDER, order_id=...), {("data", "required")}, id="missing"),
        pytest.param(
            with_data(GOOD_ORDER, total="49.90"), {("data/total", "type")}, id="fix-is-strict"
        ),
        pytest.param(with_data(GOOD_ORDER, total=-1), {("data/total", "minimum")}, id="minimum"),
        pytest.param(with_data(GOOD_ORDER, currency="usd"), {("data/currency", "enum")}, id="enum"),
        pytest.param(
            with_data(GOOD_ORDER, order_id=""), {("data/order_id", "minLength")}, id="min_length"
        ),
        pytest.param(
            with_data(GOOD_ORDER, coupon="C" * 65), {("data/coupon", "maxLength")}, id="max_length"
        ),
        pytest.param(
            with_data(GOOD_ORDER, item_count=1.5), {("data/item_count", "type")}, id="integer"
        ),
        pytest.param(with_data(GOOD_ORDER, items=[]), {("data/items", "minItems")}, id="min_items"),
        pytest.param(
            with_data(GOOD_ORDER, items=["TEE-M"]), {("data/items/0", "type")}, id="items"
        ),
        pytest.param(
            with_data(GOOD_ORDER, shipping={"city": 7, "country": "FRA", "method": "drone"}),
            {
                ("data/shipping/city", "type"),
                ("data/shipping/country", "maxLength"),
                ("data/shipping/method", "enum"),
            },
            id="nested-object",
        ),
        pytest.param(
            with_data(GOOD_ORDER, shipping="Lyon"), {("data/shipping", "type")}, id="object"
        ),
        pytest.param(
            {**GOOD_ORDER, "name": "Purchase"}, {("name", "const")}, id="alias-not-renamed"
        ),
        pytest.param({**GOOD_ORDER, "timestamp": "2026-01-01"}, {("timestamp", "type")}, id="ts"),
        pytest.param({"name": "order_completed"}, {("", "required")}, id="no-data"),
        pytest.param({**GOOD_ORDER, "data": None}, {("data", "type")}, id="null-data"),
        pytest.param(
            with_data(GOOD_ORDER, first_order="yes", extra=1), set(), id="warn-rules-pass"
        ),
    ],
)
def test_bad_orders_fail_where_expected(
    body: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    assert failures(SCHEMAS["order_completed"], body) == expected


def test_schema_version_selects_the_variant() -> None:
    schema = SCHEMAS["order_completed"]
    assert failures(schema, GOOD_ORDER_V2) == set()
    assert failures(schema, with_data(GOOD_ORDER_V2, schema_version=2)) == set()
    # the v2 rules apply, not the base ones: total_cents is required, total is not
    assert failures(schema, with_data(GOOD_ORDER_V2, total_cents=...)) == {("data", "required")}
    assert failures(schema, with_data(GOOD_ORDER_V2, total_cents=49.9)) == {
        ("data/total_cents", "type")
    }
    # an unknown version falls back to the base rules
    assert failures(schema, with_data(GOOD_ORDER, schema_version="9")) == set()
    assert failures(schema, with_data(GOOD_ORDER_V2, schema_version="9")) == {("data", "required")}


def test_include_warn_enforces_warn_rules_and_policies() -> None:
    strict = STRICT["order_completed"]
    assert failures(strict, with_data(GOOD_ORDER, first_order="yes")) == {
        ("data/first_order", "type")
    }
    assert failures(strict, with_data(GOOD_ORDER, gift_wrap=True)) == {
        ("data", "additionalProperties")
    }
    # schema_version selects variants, so it is never unplanned; one no variant has is flagged
    assert failures(strict, GOOD_ORDER_V2) == set()
    assert failures(strict, with_data(GOOD_ORDER, schema_version="1")) == {
        ("data/schema_version", "not")
    }
    assert failures(strict, with_data(GOOD_ORDER_V2, gift_wrap=True)) == {
        ("data", "additionalProperties")
    }


REJECTING = textwrap.dedent(
    """\
    unplanned: {properties: reject, attributes: reject}
    timestamps: {action: warn}
    events:
      signed_up:
        properties:
          plan: {type: enum, values: [free, pro], required: true}
          referrer: {type: email, pattern: "@example\\\\.com$"}
          address: {type: object, action: warn, properties: {zip: {type: string, required: true}}}
          tags: {type: array, items: timestamp, max_items: 2}
          anything: any
      newsletter_opened:
        unplanned_properties: allow
        properties:
          issue: integer
    attributes:
      email: {type: email, required: true}
      plan: {type: enum, values: [free, pro]}
    """
)


def test_reject_policy_closes_objects() -> None:
    plan = parse_plan(REJECTING)
    signed_up = to_json_schema(plan)["signed_up"]
    good = {
        "name": "signed_up",
        "data": {
            "plan": "pro",
            "referrer": "ann@example.com",
            "address": {"zip": "69001"},
            "tags": [1767225600],
            "anything": [None],
        },
    }
    assert failures(signed_up, good) == set()
    assert "timestamp" not in signed_up["properties"]  # timestamps action warn
    assert failures(signed_up, with_data(good, utm="x")) == {("data", "additionalProperties")}
    # schema_version is never unplanned; nested objects stay open, as in the checker
    assert failures(signed_up, with_data(good, schema_version="3")) == set()
    assert failures(signed_up, with_data(good, address={"zip": "1", "x": 1})) == set()
    # null counts as absent: fine when optional, missing when required
    assert failures(signed_up, with_data(good, referrer=None, tags=None)) == set()
    assert failures(signed_up, with_data(good, plan=None)) == {("data/plan", "enum")}
    # the object's own rules are warn, its members' are not
    assert failures(signed_up, with_data(good, address="Lyon")) == set()
    assert failures(signed_up, with_data(good, address={})) == {("data/address", "required")}
    assert failures(signed_up, with_data(good, referrer="ann@other.com")) == {
        ("data/referrer", "pattern")
    }
    assert failures(signed_up, with_data(good, referrer="not an email@example.com")) == {
        ("data/referrer", "pattern")
    }
    # an email trackguard would lower-case is not yet valid
    assert failures(signed_up, with_data(good, referrer="Ann@example.com")) == {
        ("data/referrer", "pattern")
    }
    # milliseconds are not unix seconds
    assert failures(signed_up, with_data(good, tags=[1767225600000])) == {
        ("data/tags/0", "exclusiveMaximum")
    }
    assert failures(signed_up, with_data(good, tags=["2026-01-01", 1, 2])) == {
        ("data/tags", "maxItems"),
        ("data/tags/0", "type"),
    }
    opened = to_json_schema(plan)["newsletter_opened"]
    assert failures(opened, {"name": "newsletter_opened", "data": {"issue": 3, "x": 1}}) == set()
    assert failures(opened, {"name": "newsletter_opened", "data": None}) == set()
    assert failures(opened, {"name": "newsletter_opened"}) == set()


def test_attributes_schema() -> None:
    schema = attributes_json_schema(PLAN)
    assert schema["title"] == "d2c-store attributes"
    good = {
        "email": "ann@example.com",
        "first_name": "Ann",
        "first_order_date": 1767225600,
        "lifetime_value": 120.5,
        "order_count": 3,
        "accepts_marketing": True,
        "preferred_currency": "EUR",
        "loyalty_tier": "platinum",  # action warn
        "favourite_colour": "green",  # unplanned attributes: allow
    }
    assert failures(schema, good) == set()
    bad = {
        **good,
        "email": "ann at example.com",
        "first_order_date": "2026-01-01",
        "order_count": -1,
        "preferred_currency": "JPY",
    }
    assert failures(schema, bad) == {
        ("email", "pattern"),
        ("first_order_date", "type"),
        ("order_count", "minimum"),
        ("preferred_currency", "enum"),
    }
    # with warn rules enforced the tier fails; unplanned attributes are still allowed
    assert failures(attributes_json_schema(PLAN, include_warn=True), good) == {
        ("loyalty_tier", "enum")
    }


def test_closed_attributes_allow_customer_io_reserved_keys() -> None:
    schema = attributes_json_schema(parse_plan(REJECTING))
    body = {
        "email": "ann@example.com",
        "created_at": 1767225600,
        "_update": True,
        "cio_subscription_preferences.topics.topic_1": True,
    }
    assert failures(schema, body) == set()
    assert failures(schema, {**body, "nickname": "A"}) == {("", "additionalProperties")}
    # `required` has no effect on attributes, and null values are not checked
    assert "required" not in schema
    assert failures(schema, {"plan": None, "email": None}) == set()


def test_fastjsonschema_agrees() -> None:
    fastjsonschema = pytest.importorskip("fastjsonschema")
    validate = fastjsonschema.compile(SCHEMAS["order_completed"])
    validate(GOOD_ORDER)
    validate(GOOD_ORDER_V2)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate(with_data(GOOD_ORDER, total="49.90"))
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate(with_data(GOOD_ORDER_V2, total_cents=...))


# -- pages and screens (Pipelines calls) -------------------------------------------------------

VIEWS = parse_plan(
    """\
unplanned: {properties: reject}
pages:
  Pricing:
    description: The pricing page
    properties:
      url: {type: string, required: true}
      plan: {type: enum, values: [free, pro], action: warn}
screens:
  Home:
    unplanned_properties: allow
    properties:
      tab: string
"""
)


def test_pages_and_screens_export_as_pipelines_calls() -> None:
    pages = views_json_schema(VIEWS, "pages")
    assert pages == {
        "Pricing": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Pricing",
            "description": "The pricing page",
            "type": "object",
            "required": ["name", "properties"],
            "properties": {
                "name": {"const": "Pricing"},
                "properties": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "plan": {},  # a warn rule is left out without include_warn
                        "schema_version": {},
                    },
                    "required": ["url"],
                    "additionalProperties": False,
                },
            },
        }
    }
    check = Draft202012Validator(pages["Pricing"])
    assert check.is_valid({"type": "page", "name": "Pricing", "properties": {"url": "u"}})
    assert not check.is_valid({"type": "page", "name": "Pricing", "properties": {}})
    assert not check.is_valid({"name": "Pricing", "properties": {"url": "u", "x": 1}})
    strict = views_json_schema(VIEWS, "pages", include_warn=True)["Pricing"]
    assert strict["properties"]["properties"]["properties"]["plan"] == {
        "enum": ["free", "pro", None]
    }
    (home,) = views_json_schema(VIEWS, "screens").values()
    assert home["required"] == ["name"]
    assert home["properties"]["properties"] == {
        "type": ["object", "null"],
        "properties": {"tab": {"type": ["string", "null"]}},
    }


def test_a_star_entry_exports_as_every_pages_schema_and_merges_into_named_ones() -> None:
    plan = parse_plan(
        """\
unplanned: {properties: reject}
pages:
  "*":
    description: every page view
    properties:
      url: {type: string, required: true}
      title: string
  Pricing:
    properties:
      url: {type: string}
"""
    )
    pages = views_json_schema(plan, "pages")
    assert list(pages) == ["Pricing", "*"]
    assert pages["*"] == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "*",
        "description": "every page view",
        "type": "object",
        "required": ["properties"],
        "properties": {
            "properties": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "title": {"type": ["string", "null"]},
                },
                "required": ["url"],
            }
        },
    }
    assert pages["Pricing"]["properties"]["properties"] == {
        "type": ["object", "null"],  # Pricing's own url is optional: it wins over "*"
        "properties": {
            "url": {"type": ["string", "null"]},
            "title": {"type": ["string", "null"]},
            "schema_version": {},
        },
        "additionalProperties": False,
    }
    every = Draft202012Validator(pages["*"])
    assert every.is_valid({"type": "page", "properties": {"url": "u", "other": 1}})
    assert every.is_valid({"type": "page", "name": "Anything", "properties": {"url": "u"}})
    assert not every.is_valid({"type": "page", "properties": {"title": "t"}})
    assert not every.is_valid({"type": "page"})
    pricing = Draft202012Validator(pages["Pricing"])
    assert pricing.is_valid({"name": "Pricing", "properties": {"title": "t"}})
    assert not pricing.is_valid({"name": "Pricing", "properties": {"title": 1}})
    assert views_json_schema(plan, "screens") == {}


# -- the export and schema commands ------------------------------------------------------------


def test_cli_export_prints_json() -> None:
    result = CliRunner().invoke(plan_group, ["export", str(EXAMPLE)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "events": SCHEMAS,
        "attributes": attributes_json_schema(PLAN),
        "pages": {},
        "screens": {},
    }


def test_cli_export_to_file_with_warn_rules(tmp_path: Path) -> None:
    out = tmp_path / "schemas.json"
    args = ["export", str(EXAMPLE), "--format", "jsonschema", "--include-warn", "-o", str(out)]
    result = CliRunner().invoke(plan_group, args)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["events"] == STRICT


def test_cli_export_refuses_a_bad_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plan.yaml").write_text("version: 2\nevents:\n  OrderCompleted: {}\n")
    result = CliRunner().invoke(plan_group, ["export", "plan.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: plan.yaml:1:10: version: unsupported plan format version 2; this trackguard "
        "reads 1\n"
    )


def test_cli_export_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(plan_group, ["export", str(EXAMPLE), "--format", "avro"]).exit_code == 2
    assert runner.invoke(plan_group, ["export"]).exit_code == 2


def test_cli_schema_prints_the_file_schema() -> None:
    result = CliRunner().invoke(plan_group, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == plan_file_schema()
