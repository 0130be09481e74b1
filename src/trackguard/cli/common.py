"""Small pieces several commands share."""

from __future__ import annotations

import os

import click

from trackguard.durations import DurationError, parse_duration
from trackguard.plan.loader import PlanError, load_plan
from trackguard.plan.model import Plan


def duration_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback for a duration option (``30d``, ``12h``): its seconds, or exit 2
    with what to write instead."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def plan_or_exit(path: str | os.PathLike[str]) -> Plan:
    """The plan at ``path``; its errors (with file and line) on stderr and exit 2 otherwise."""
    try:
        return load_plan(path)
    except PlanError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
