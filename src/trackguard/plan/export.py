"""Export a plan as JSON Schema (draft 2020-12), for other tools and for benchmarks.

A schema cannot coerce, so it states what a body must already look like to pass the plan
untouched: a ``fix`` rule is exported as strict as a ``reject`` rule (``"49.90"`` fails a
``number``, ``Ann@Example.com`` fails an ``email``). A schema has no warning level either, so
rules whose action is ``warn``, and the ``warn`` unplanned policy, are left out unless
``include_warn`` is true; then the schema answers "would this body pass with no violation at
all".

The schemas follow what the checker does: a null value counts as absent (so it passes unless
the property is required), ``schema_version`` is never an unplanned property, the unplanned
policy closes the event's ``data`` but not nested objects, and ``required`` on a profile
attribute has no effect (identify calls send any subset of attributes). A ``pages:`` (or
``screens:``) ``"*"`` entry is exported under ``"*"`` as the schema every page call must pass,
whatever its name, and its properties are merged into each named page's schema (the named
page's own spec wins on a property both declare).

``plan_file_schema`` is the other direction: the JSON Schema of the plan YAML itself, shipped
as ``plan.schema.json`` for editor completion.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final, Literal

from msgspec.structs import replace

from trackguard.plan.model import EVERY_VIEW, EventSpec, Plan, PropertySpec, with_every

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: The ``local@domain.tld`` shape trackguard checks identifiers with, already trimmed and
#: lower-cased (ASCII upper case only: JSON Schema patterns have no portable case classes).
EMAIL_PATTERN: Final = r"^[^@\sA-Z]+@[^@\sA-Z]+\.[^@\sA-Z.]+$"
#: Unix seconds: integers from 0 up to where trackguard reads them as milliseconds.
SECONDS_LIMIT: Final = 100_000_000_000
#: Keys Customer.io gives a meaning in identify bodies; a closed attribute schema allows them.
IDENTIFY_RESERVED: Final = (
    "id",
    "email",
    "anonymous_id",
    "cio_id",
    "created_at",
    "_timestamp",
    "_update",
    "unsubscribed",
    "cio_relationships",
    "cio_subscription_preferences",
)
_SCALAR_TYPES: Final = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def to_json_schema(plan: Plan, *, include_warn: bool = False) -> dict[str, dict[str, Any]]:
    """One JSON Schema per canonical event name, for a v1 track body ``{name, data}``."""
    exporter = _Exporter(plan, include_warn)
    return {name: exporter.event(event) for name, event in plan.events.items()}


def views_json_schema(
    plan: Plan, section: Literal["pages", "screens"], *, include_warn: bool = False
) -> dict[str, dict[str, Any]]:
    """One JSON Schema per planned page (or screen), for a Pipelines call ``{name, properties}``,
    and under ``"*"`` the one every call of the section must pass (when the plan has it)."""
    exporter = _Exporter(plan, include_warn)
    every = plan.every_view(section)
    out = {name: exporter.view(view, every) for name, view in plan.named_views(section).items()}
    if every is not None:
        out[EVERY_VIEW] = exporter.every_view(every)
    return out


def attributes_json_schema(plan: Plan, *, include_warn: bool = False) -> dict[str, Any]:
    """The JSON Schema of a v1 identify body (a flat object of attributes)."""
    return _Exporter(plan, include_warn).attributes()


def plan_file_schema() -> dict[str, Any]:
    """The JSON Schema of the plan YAML format (``plan.schema.json``, shipped with the package)."""
    text = resources.files("trackguard.plan").joinpath("plan.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


class _Exporter:
    def __init__(self, plan: Plan, include_warn: bool) -> None:
        self.plan = plan
        self.include_warn = include_warn

    def enforced(self, action: str) -> bool:
        return action != "warn" or self.include_warn

    def closed(self, policy: str) -> bool:
        return policy == "reject" or (policy == "warn" and self.include_warn)

    def event(self, event: EventSpec) -> dict[str, Any]:
        policy = event.unplanned_properties or self.plan.unplanned.properties
        base = self.members(event.properties, closed=self.closed(policy))
        if event.versions and self.include_warn:
            # a schema_version no variant has is checked against the base, with a warning
            base["properties"]["schema_version"] = {
                "not": {},
                "description": "no variant of this event has this schema_version",
            }
        rules = base
        for version in reversed(event.versions):
            closed = self.closed(version.unplanned_properties or policy)
            selector: list[str | int] = [version.version]
            if version.version.isdigit():
                selector.append(int(version.version))
            rules = {
                "if": {
                    "type": "object",
                    "required": ["schema_version"],
                    "properties": {"schema_version": {"enum": selector}},
                },
                "then": self.members(version.properties, closed=closed),
                "else": rules,
            }
        data_required = "required" in base
        data: dict[str, Any] = {"type": "object" if data_required else ["object", "null"]}
        data.update(rules)
        properties: dict[str, Any] = {"name": {"const": event.name}, "data": data}
        if self.enforced(self.plan.timestamps.action):
            properties["timestamp"] = _type_schema("timestamp") | {"type": ["integer", "null"]}
        schema: dict[str, Any] = {"$schema": DIALECT, "title": event.name}
        if event.description:
            schema["description"] = event.description
        schema["type"] = "object"
        schema["required"] = ["name", "data"] if data_required else ["name"]
        schema["properties"] = properties
        return schema

    def view(self, view: EventSpec, every: EventSpec | None = None) -> dict[str, Any]:
        """A Pipelines page or screen call: its ``name`` and its ``properties`` (its own, and
        those of the ``"*"`` entry ``every`` it does not declare)."""
        policy = view.unplanned_properties or self.plan.unplanned.properties
        specs = view.properties if every is None else with_every(view.properties, every.properties)
        return self.call(view, specs, closed=self.closed(policy), named=True)

    def every_view(self, every: EventSpec) -> dict[str, Any]:
        """The ``"*"`` entry: any ``name`` (or none), its ``properties``; other properties are
        left open, as the checker leaves them on a page no entry names."""
        return self.call(every, every.properties, closed=False, named=False)

    def call(
        self, spec: EventSpec, specs: tuple[PropertySpec, ...], *, closed: bool, named: bool
    ) -> dict[str, Any]:
        """A page or screen call's schema: ``name`` the spec's (when ``named``), ``properties``
        ``specs``, required when one of them is."""
        members = self.members(specs, closed=closed)
        required = "required" in members
        data: dict[str, Any] = {"type": "object" if required else ["object", "null"], **members}
        schema: dict[str, Any] = {"$schema": DIALECT, "title": spec.name}
        if spec.description:
            schema["description"] = spec.description
        schema["type"] = "object"
        needed = (["name"] if named else []) + (["properties"] if required else [])
        if needed:
            schema["required"] = needed
        name = {"name": {"const": spec.name}} if named else {}
        schema["properties"] = {**name, "properties": data}
        return schema

    def attributes(self) -> dict[str, Any]:
        # identify calls send any subset of attributes, so `required` has no effect on them
        specs = tuple(replace(spec, required=False) for spec in self.plan.attributes.values())
        members = self.members(specs, closed=self.closed(self.plan.unplanned.attributes))
        if members.get("additionalProperties") is False:
            for key in IDENTIFY_RESERVED:
                members["properties"].setdefault(key, {})
            # dot-notation preference updates: "cio_subscription_preferences.topics.topic_1"
            members["patternProperties"] = {r"^cio_subscription_preferences\.": {}}
        schema: dict[str, Any] = {
            "$schema": DIALECT,
            "title": f"{self.plan.name} attributes",
            "type": "object",
        }
        schema.update(members)
        return schema

    def members(self, specs: tuple[PropertySpec, ...], *, closed: bool) -> dict[str, Any]:
        """``properties``, ``required`` and ``additionalProperties`` of an event's data.

        ``closed`` applies to this level only: the checker leaves nested objects open.
        """
        properties = {spec.name: self.property(spec) for spec in specs}
        out: dict[str, Any] = {"properties": properties}
        required = [spec.name for spec in specs if spec.required and self.enforced(spec.action)]
        if required:
            out["required"] = required
        if closed:
            if "schema_version" not in properties:  # it selects the variant: never unplanned
                properties["schema_version"] = {}
            out["additionalProperties"] = False
        return out

    def property(self, spec: PropertySpec) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        if spec.description:
            schema["description"] = spec.description
        enforced = self.enforced(spec.action)
        if enforced:
            schema.update(self.rules(spec))
            if not spec.required:  # null counts as absent
                if "type" in schema:
                    schema["type"] = [schema["type"], "null"]
                if "enum" in schema and None not in schema["enum"]:
                    schema["enum"].append(None)
        if spec.type == "object" and spec.properties is not None:
            # members keep their own actions even when the object's own rules are not enforced
            schema.update(self.members(spec.properties, closed=False))
        return schema

    def rules(self, spec: PropertySpec) -> dict[str, Any]:
        """The type and constraints of one property (its members excepted)."""
        schema = _type_schema(spec.type)
        if spec.type == "enum":
            schema["enum"] = list(spec.values or ())
        if spec.minimum is not None:
            floor = schema.get("minimum")  # a timestamp is never negative
            minimum = _number(spec.minimum)
            schema["minimum"] = minimum if floor is None else max(floor, minimum)
        if spec.maximum is not None:
            schema["maximum"] = _number(spec.maximum)
        for keyword, count in (
            ("minLength", spec.min_length),
            ("maxLength", spec.max_length),
            ("minItems", spec.min_items),
            ("maxItems", spec.max_items),
        ):
            if count is not None:
                schema[keyword] = count
        if spec.pattern is not None:
            if "pattern" in schema:  # an email with its own pattern must match both
                schema["allOf"] = [{"pattern": spec.pattern}]
            else:
                schema["pattern"] = spec.pattern
        if spec.type == "array" and spec.items is not None and spec.items != "any":
            schema["items"] = _type_schema(spec.items)
        return schema


def _type_schema(type_: str) -> dict[str, Any]:
    if type_ == "email":
        return {"type": "string", "pattern": EMAIL_PATTERN}
    if type_ == "timestamp":
        return {"type": "integer", "minimum": 0, "exclusiveMaximum": SECONDS_LIMIT}
    if type_ in _SCALAR_TYPES:
        return {"type": _SCALAR_TYPES[type_]}
    return {}  # enum (values added by the caller) and any
