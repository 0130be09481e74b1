"""Small pieces several commands share."""

from __future__ import annotations

import os

import click

from trackguard.plan.loader import PlanError, load_plan
from trackguard.plan.model import Plan


def plan_or_exit(path: str | os.PathLike[str]) -> Plan:
    """The plan at ``path``; its errors (with file and line) on stderr and exit 2 otherwise."""
    try:
        return load_plan(path)
    except PlanError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
