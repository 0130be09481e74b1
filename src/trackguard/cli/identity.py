"""``trackguard identity``: the id behind each email, and anonymous activity never linked."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import click

from trackguard.cli.base import TrackguardGroup
from trackguard.cli.options import db_option, format_option, plan_option
from trackguard.cli.outbox import open_db
from trackguard.cli.output import emit_rows
from trackguard.contract.identifiers import is_email
from trackguard.durations import DurationError, format_duration, iso_time, parse_duration
from trackguard.plan.model import IdentityPolicy, Plan


@click.group(name="identity", cls=TrackguardGroup)
def identity_group() -> None:
    """Identity bindings (email to id) and unlinked anonymous activity."""


@identity_group.command(name="import")
@db_option()
@click.argument("csv_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_command(db: str, csv_file: Path) -> None:
    """Bind emails to ids from a CSV with the columns id,email (a header row is optional).

    An email already bound keeps its id. Rows without a valid email are reported with their
    line number and skipped; running gateways pick them up within --identity-refresh (1 s).

    Example:

    \b
        trackguard identity import customers.csv --db trackguard.db
    """
    pairs: list[tuple[str, str]] = []
    bad = 0
    with csv_file.open(newline="", encoding="utf-8", errors="replace") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if line == 1 and [c.strip().lower() for c in row[:2]] == ["id", "email"]:
                continue
            if len(row) < 2 or not row[0].strip() or not is_email(row[1].strip()):
                click.echo(f"{csv_file}:{line}: skipped: expected id,email", err=True)
                bad += 1
                continue
            pairs.append((row[1].strip().lower(), row[0].strip()))
    store = open_db(db, readonly=False)
    try:
        added = store.import_identities(pairs)
    finally:
        store.close()
    click.echo(f"{added} new bindings, {len(pairs) - added} already known, {bad} rows skipped")


@identity_group.command(name="unlinked")
@db_option()
@click.option(
    "--older-than",
    default=None,
    help="Anonymous activity first seen longer ago than this "
    "[default: the plan's identity.unlinked_after, else 24h].",
)
@plan_option(help="Tracking plan whose identity.unlinked_after is the default age.")
@format_option()
def unlinked_command(db: str, older_than: str | None, plan: Plan | None, fmt: str) -> None:
    """Anonymous activity (carts before login) never linked to a person by an identify.

    JSON: an array of {"anonymous_id", "first_seen", "event"}; the count goes to stderr.

    Example:

    \b
        trackguard identity unlinked --plan examples/d2c-plan.yaml
        trackguard identity unlinked --older-than 24h
    """
    if older_than is not None:
        try:
            seconds = float(parse_duration(older_than))
        except DurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
    elif plan is not None:
        seconds = plan.identity.unlinked_after
    else:
        seconds = IdentityPolicy().unlinked_after
    store = open_db(db)
    try:
        rows = store.unlinked_anonymous(time.time() - seconds)
    finally:
        store.close()
    found = [
        {"anonymous_id": anonymous_id, "first_seen": iso_time(first_seen), "event": event}
        for anonymous_id, first_seen, event in rows
    ]
    columns = (("anonymous_id", "anonymous id"), ("first_seen", "first seen (UTC)"))
    emit_rows(fmt, found, (*columns, ("event", "event")))
    click.echo(
        f"{len(rows)} anonymous ids never linked "
        f"(first seen over {format_duration(int(seconds))} ago)",
        err=True,
    )
