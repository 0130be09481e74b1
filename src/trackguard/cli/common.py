"""Small pieces several commands share."""

from __future__ import annotations

import os
from typing import NoReturn

import click

from trackguard.plan.loader import PlanError, load_plan
from trackguard.plan.model import Plan


def plan_or_exit(path: str | os.PathLike[str]) -> Plan:
    """The plan at ``path``; its errors (with file and line) on stderr and exit 2 otherwise."""
    try:
        return load_plan(path)
    except PlanError as exc:
        _exit(str(exc))


def _exit(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(2)
