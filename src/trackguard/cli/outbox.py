"""``trackguard outbox``: what delivery has done and has yet to do."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.table import Table

from trackguard.delivery.circuit import STATE_KEY, decode_state
from trackguard.store.base import OutboxRow, StoreError
from trackguard.store.sqlite import SQLiteStore

_db = click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("trackguard.db"),
    show_default=True,
    help="The store file.",
)


def _open(db: Path) -> SQLiteStore:
    if not db.exists():
        click.echo(f"trackguard outbox: {db}: no such store", err=True)
        sys.exit(2)
    try:
        return SQLiteStore(db)
    except StoreError as exc:
        click.echo(f"trackguard outbox: {exc}", err=True)
        sys.exit(2)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group(name="outbox")
def outbox_group() -> None:
    """Delivery state of accepted operations: counts, rows, attempts and errors."""


@outbox_group.command(name="stats")
@_db
def stats_command(db: Path) -> None:
    """Counts by state and the age of the oldest undelivered operation.

    Example:

    \b
        trackguard outbox stats --db trackguard.db
    """
    store = _open(db)
    try:
        s = store.outbox_stats()
        circuit = decode_state(store.meta_value(STATE_KEY))
    finally:
        store.close()
    age = "-" if s.oldest_pending_at is None else f"{time.time() - s.oldest_pending_at:.0f} s"
    click.echo(
        f"pending {s.pending}  delivered {s.delivered}  failed {s.failed}  oldest pending {age}"
    )
    if circuit is not None and circuit.state == "open":
        click.echo(
            f"delivery circuit OPEN since {_when(circuit.opened_at)}: Customer.io refuses"
            f" nearly everything ({circuit.reason}); {circuit.probes} probes refused, next at"
            f" {_when(circuit.probe_at)}; pending rows are kept"
        )


@outbox_group.command(name="list")
@_db
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]))
@click.option("--limit", default=20, show_default=True)
def list_command(db: Path, state: str | None, limit: int) -> None:
    """The newest outbox rows with their delivery state.

    Example:

    \b
        trackguard outbox list --state pending --limit 50
    """
    store = _open(db)
    try:
        rows = store.outbox_list(state, limit)  # type: ignore[arg-type]
    finally:
        store.close()
    table = Table(show_edge=False)
    for column in (
        "seq",
        "received",
        "person",
        "event",
        "state",
        "attempts",
        "delivered",
        "last error",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.seq),
            _when(r.received_at),
            r.person,
            r.event_name or "-",
            r.state,
            str(r.attempts),
            _when(r.delivered_at),
            (r.last_error or "")[:60],
        )
    Console().print(table)


@outbox_group.command(name="show")
@_db
@click.argument("seq", type=int)
def show_command(db: Path, seq: int) -> None:
    """One row: its delivery state and the exact payload delivery sends.

    Example:

    \b
        trackguard outbox show 42
    """
    store = _open(db)
    try:
        row = store.outbox_row(seq)
    finally:
        store.close()
    if row is None:
        click.echo(f"trackguard outbox: no row {seq}", err=True)
        sys.exit(1)
    click.echo(_describe(row))


def _describe(row: OutboxRow) -> str:
    fields = msgspec.structs.asdict(row)
    payload = fields.pop("payload")
    lines = [f"{k}: {v}" for k, v in fields.items()]
    pretty = msgspec.json.format(payload, indent=2).decode("utf-8", "replace")
    return "\n".join([*lines, "payload:", pretty])
