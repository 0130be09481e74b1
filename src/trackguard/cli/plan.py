"""``trackguard plan``: lint a tracking plan, export it as JSON Schema, print the file schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trackguard.cli.base import TrackguardGroup
from trackguard.cli.options import output_option, write_atomic
from trackguard.plan import (
    attributes_json_schema,
    lint_plan,
    load_plan,
    plan_file_schema,
    to_json_schema,
    views_json_schema,
)

_PLAN = click.Path(exists=True, dir_okay=False)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _emit(document: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)


@click.group(name="plan", cls=TrackguardGroup)
def plan_group() -> None:
    """Check and export tracking plans."""


@plan_group.command("lint")
@click.argument("plan", type=_PLAN)
def lint(plan: str) -> None:
    """Check PLAN and print every error and warning with its line.

    Exits 1 when the plan has errors, 0 when it has none (warnings alone do not fail).

    \b
    Example:
        $ trackguard plan lint plan.yaml
        plan.yaml:1:10: error: version: unsupported plan format version 2; this trackguard reads 1
        plan.yaml: 1 error, 0 warnings
    """
    issues = lint_plan(plan)
    for issue in issues:
        click.echo(str(issue))
    errors = sum(1 for issue in issues if issue.severity == "error")
    warnings = len(issues) - errors
    click.echo(f"{plan}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    if errors:
        raise SystemExit(1)


@plan_group.command("export")
@click.argument("plan", type=_PLAN)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["jsonschema"]),
    default="jsonschema",
    show_default=True,
    help="Output format.",
)
@output_option(help="Write to this file (whole or not at all), not stdout.")
@click.option(
    "--include-warn",
    is_flag=True,
    help="Also enforce rules whose action is warn, and unplanned policies of warn.",
)
def export(plan: str, format_: str, output: Path | None, include_warn: bool) -> None:
    """Export PLAN as JSON Schemas: one per event (v1 track body), one for attributes, and one
    per page and screen (Pipelines call).

    The schemas check without coercing: a value trackguard would fix fails them.

    \b
    Example:
        $ trackguard plan export plan.yaml -o plan-schemas.json
        $ trackguard plan export plan.yaml | jq '.events.order_completed.required'
        [
          "name",
          "data"
        ]
    """
    loaded = load_plan(plan)
    document = {
        "events": to_json_schema(loaded, include_warn=include_warn),
        "attributes": attributes_json_schema(loaded, include_warn=include_warn),
        "pages": views_json_schema(loaded, "pages", include_warn=include_warn),
        "screens": views_json_schema(loaded, "screens", include_warn=include_warn),
    }
    _emit(document, output)


@plan_group.command("schema")
@output_option(help="Write to this file (whole or not at all), not stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the plan file format, for completion in editors.

    \b
    Example:
        $ trackguard plan schema -o plan.schema.json
        $ head -1 plan.yaml
        # yaml-language-server: $schema=plan.schema.json
    """
    _emit(plan_file_schema(), output)
