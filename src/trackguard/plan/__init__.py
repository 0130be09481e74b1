"""The tracking plan: its model, loading and linting from YAML, and export to JSON Schema.

Errors: ``PlanError`` (raised by ``load_plan``/``parse_plan``) carries ``PlanIssue`` records;
``lint_plan`` returns the same records and never raises.
"""

from trackguard.plan.export import (
    attributes_json_schema,
    plan_file_schema,
    to_json_schema,
    views_json_schema,
)
from trackguard.plan.loader import PlanError, PlanIssue, lint_plan, load_plan, parse_plan
from trackguard.plan.model import (
    EventSpec,
    EventVersion,
    IdentityPolicy,
    NamingPolicy,
    Plan,
    PropertySpec,
    SemanticPolicy,
    TimestampPolicy,
    UnplannedPolicy,
)

__all__ = [
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
