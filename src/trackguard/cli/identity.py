"""``trackguard identity``: the id behind each email, and anonymous activity never linked."""

from __future__ import annotations

import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from trackguard.cli.common import plan_or_exit
from trackguard.contract.identifiers import is_email
from trackguard.durations import DurationError, format_duration, parse_duration
from trackguard.plan.model import IdentityPolicy
from trackguard.store.base import StoreError
from trackguard.store.sqlite import SQLiteStore

_db = click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("trackguard.db"),
    show_default=True,
    help="The store file.",
)


@click.group(name="identity")
def identity_group() -> None:
    """Identity bindings (email to id) and unlinked anonymous activity."""


@identity_group.command(name="import")
@_db
@click.argument("csv_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_command(db: Path, csv_file: Path) -> None:
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
    try:
        store = SQLiteStore(db)
    except StoreError as exc:
        click.echo(f"trackguard identity: {exc}", err=True)
        sys.exit(2)
    try:
        added = store.import_identities(pairs)
    finally:
        store.close()
    click.echo(f"{added} new bindings, {len(pairs) - added} already known, {bad} rows skipped")


@identity_group.command(name="unlinked")
@_db
@click.option(
    "--older-than",
    default=None,
    help="Anonymous activity first seen longer ago than this "
    "[default: the plan's identity.unlinked_after, else 24h].",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Tracking plan whose identity.unlinked_after is the default age.",
)
def unlinked_command(db: Path, older_than: str | None, plan_path: Path | None) -> None:
    """Anonymous activity (carts before login) never linked to a person by an identify.

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
    elif plan_path is not None:
        seconds = plan_or_exit(plan_path).identity.unlinked_after
    else:
        seconds = IdentityPolicy().unlinked_after
    if not db.exists():
        click.echo(f"trackguard identity: {db}: no such store", err=True)
        sys.exit(2)
    store = SQLiteStore(db)
    try:
        rows = store.unlinked_anonymous(time.time() - seconds)
    finally:
        store.close()
    for anonymous_id, first_seen, event in rows:
        when = datetime.fromtimestamp(first_seen, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{anonymous_id}\t{when}\t{event or '-'}")
    click.echo(
        f"{len(rows)} anonymous ids never linked "
        f"(first seen over {format_duration(int(seconds))} ago)",
        err=True,
    )
