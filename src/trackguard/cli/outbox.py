"""``trackguard outbox``: what delivery has done and has yet to do."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import click
import msgspec

from trackguard.cli.base import TrackguardGroup
from trackguard.cli.options import db_option, format_option
from trackguard.cli.output import emit_csv, emit_json, emit_jsonl, emit_rows
from trackguard.delivery.circuit import STATE_KEY, decode_state
from trackguard.durations import iso_time
from trackguard.errors import InputError
from trackguard.store.base import OutboxRow
from trackguard.store.sqlite import SQLiteStore, open_store

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore


def open_db(db: str, *, readonly: bool = True) -> SQLiteStore | PostgresStore:
    """The store ``--db`` names (a SQLite file or a PostgreSQL URL); read-only unless the
    command writes."""
    return cast("SQLiteStore | PostgresStore", open_store(db, create=False, readonly=readonly))


def _when(ts: float | None) -> str | None:
    return None if ts is None else iso_time(ts)


@click.group(name="outbox", cls=TrackguardGroup)
def outbox_group() -> None:
    """Delivery state of accepted operations: counts, rows, attempts and errors."""


@outbox_group.command(name="stats")
@db_option()
@format_option()
def stats_command(db: str, fmt: str) -> None:
    """Counts by state and the age of the oldest undelivered operation.

    JSON: {"pending", "delivered", "failed", "oldest_pending_at", "oldest_pending_age_seconds",
    "dedupe_conflicts", "circuit" ("open" or "closed"), "circuit_opened_at",
    "circuit_next_probe_at", "circuit_probes_refused", "circuit_reason"}. The table adds a line
    while the delivery circuit is open.

    Example:

    \b
        trackguard outbox stats --db trackguard.db
        trackguard outbox stats --format json | jq .pending
    """
    store = open_db(db)
    try:
        s = store.outbox_stats()
        circuit = decode_state(store.meta_value(STATE_KEY))
    finally:
        store.close()
    opened = circuit if circuit is not None and circuit.state == "open" else None
    age = None if s.oldest_pending_at is None else round(time.time() - s.oldest_pending_at)
    doc: dict[str, Any] = {
        "pending": s.pending,
        "delivered": s.delivered,
        "failed": s.failed,
        "oldest_pending_at": _when(s.oldest_pending_at),
        "oldest_pending_age_seconds": age,
        "dedupe_conflicts": s.dedupe_conflicts,
        "circuit": "closed" if opened is None else "open",
        "circuit_opened_at": None if opened is None else _when(opened.opened_at),
        "circuit_next_probe_at": None if opened is None else _when(opened.probe_at),
        "circuit_probes_refused": 0 if opened is None else opened.probes,
        "circuit_reason": None if opened is None else opened.reason,
    }
    if fmt == "table":
        shown = "-" if age is None else f"{age} s"
        click.echo(
            f"pending {s.pending}  delivered {s.delivered}  failed {s.failed}"
            f"  oldest pending {shown}"
        )
        if opened is not None:
            click.echo(
                f"delivery circuit OPEN since {_when(opened.opened_at)}: Customer.io refuses"
                f" nearly everything ({opened.reason}); {opened.probes} probes refused, next"
                f" at {_when(opened.probe_at) or '-'}; pending rows are kept"
            )
    elif fmt == "json":
        emit_json(doc)
    elif fmt == "jsonl":
        emit_jsonl([doc])
    else:
        emit_csv([doc], list(doc))


_LIST_COLUMNS = (
    ("seq", "seq"),
    ("received_at", "received (UTC)"),
    ("person", "person"),
    ("event_name", "event"),
    ("state", "state"),
    ("attempts", "attempts"),
    ("delivered_at", "delivered (UTC)"),
    ("last_error", "last error"),
)


def _row(r: OutboxRow) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "received_at": _when(r.received_at),
        "person": r.person,
        "event_name": r.event_name,
        "source": r.source,
        "route": r.route,
        "plan_version": r.plan_version,
        "dedupe_key": r.dedupe_key,
        "state": r.state,
        "attempts": r.attempts,
        # A new row's next_attempt_at is 0 (due at once): it has been due since it arrived.
        "next_attempt_at": (
            _when(max(r.next_attempt_at, r.received_at)) if r.state == "pending" else None
        ),
        "delivered_at": _when(r.delivered_at),
        "last_error": r.last_error,
    }


@outbox_group.command(name="list")
@db_option()
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]))
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@format_option()
def list_command(db: str, state: str | None, limit: int, fmt: str) -> None:
    """The newest outbox rows with their delivery state.

    JSON: an array of {"seq", "received_at", "person", "event_name", "source", "route",
    "plan_version", "dedupe_key", "state", "attempts", "next_attempt_at", "delivered_at",
    "last_error"}.

    Example:

    \b
        trackguard outbox list --state pending --limit 50
    """
    store = open_db(db)
    try:
        rows = store.outbox_list(state, limit)  # type: ignore[arg-type]
    finally:
        store.close()
    emit_rows(fmt, [_row(r) for r in rows], _LIST_COLUMNS)


@outbox_group.command(name="show")
@db_option()
@click.argument("seq", type=int)
@format_option()
def show_command(db: str, seq: int, fmt: str) -> None:
    """One row: its delivery state and the exact payload delivery sends.

    JSON: the fields of list, and "payload" (the JSON delivery sends).

    Example:

    \b
        trackguard outbox show 42
    """
    store = open_db(db)
    try:
        row = store.outbox_row(seq)
    finally:
        store.close()
    if row is None:
        raise InputError(f"no outbox row {seq} in {db}")
    if fmt == "table":
        click.echo(_describe(row))
        return
    doc = {**_row(row), "payload": msgspec.json.decode(row.payload)}
    if fmt == "json":
        emit_json(doc)
    elif fmt == "jsonl":
        emit_jsonl([doc])
    else:
        emit_csv([{**doc, "payload": row.payload.decode("utf-8", "replace")}], list(doc))


def _describe(row: OutboxRow) -> str:
    fields = msgspec.structs.asdict(row)
    payload = fields.pop("payload")
    lines = [f"{k}: {v}" for k, v in fields.items()]
    pretty = msgspec.json.format(payload, indent=2).decode("utf-8", "replace")
    return "\n".join([*lines, "payload:", pretty])
