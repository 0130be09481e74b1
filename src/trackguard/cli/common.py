"""Small pieces several commands share."""

from __future__ import annotations

import logging
import os
from typing import Final

import click

from trackguard.plan.loader import PlanError, load_plan
from trackguard.plan.model import Plan

#: Loggers of the HTTP client libraries: at INFO httpx logs every request's full URL, and a
#: Slack or webhook channel's URL is a secret (so is a PagerDuty URL with a key in it).
HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr at ``level``; the HTTP client libraries only from WARNING, whatever the
    level, so no request URL (a webhook secret) reaches a log line."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def plan_or_exit(path: str | os.PathLike[str]) -> Plan:
    """The plan at ``path``; its errors (with file and line) on stderr and exit 2 otherwise."""
    try:
        return load_plan(path)
    except PlanError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
