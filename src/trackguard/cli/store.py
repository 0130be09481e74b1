"""``trackguard store``: the store's life: create, inspect, prune, back up, vacuum, and copy
into PostgreSQL.

``info`` and ``prune`` take a SQLite file or a PostgreSQL URL; ``init``, ``backup`` and
``vacuum`` work on a file, and on a PostgreSQL URL say which tool does that job there.

Also the retention options ``serve`` and ``deliver`` share (:func:`retention_options`), so the
defaults and their environment variables are written once.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar, cast

import click
import msgspec

from trackguard.cli.base import TrackguardGroup
from trackguard.cli.options import db_option, duration_callback, existing_store, format_option
from trackguard.durations import format_duration
from trackguard.errors import InputError
from trackguard.store.backup import backup, vacuum
from trackguard.store.base import StoreError
from trackguard.store.copy import DEFAULT_BATCH as DEFAULT_COPY_BATCH
from trackguard.store.copy import copy_store
from trackguard.store.info import StoreInfo, store_info
from trackguard.store.retention import DEFAULT_PRUNE_EVERY, MONITOR_RETENTION, Retention, prune
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore, open_store
from trackguard.store.urls import SQLITE_FORMS, display_url, is_postgres_url, store_location

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variables of the retention settings (a flag given wins).
OUTBOX_RETENTION_ENV: Final = "TRACKGUARD_OUTBOX_RETENTION"
ANONYMOUS_RETENTION_ENV: Final = "TRACKGUARD_ANONYMOUS_RETENTION"
MONITOR_RETENTION_ENV: Final = "TRACKGUARD_MONITOR_RETENTION"
PRUNE_EVERY_ENV: Final = "TRACKGUARD_PRUNE_EVERY"


def _fail(message: str) -> NoReturn:
    raise InputError(message)


def _positive(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    seconds = duration_callback(ctx, param, value)
    if seconds == 0:
        raise click.BadParameter("must be longer than 0s", ctx, param)
    return seconds


#: What each file-only command does, and what does that job for a PostgreSQL store.
_FILE_ONLY: Final = {
    "init": (
        "init creates a SQLite file",
        "trackguard serve (or store copy) creates a PostgreSQL store's tables in its schema",
    ),
    "backup": (
        "backup copies a SQLite file",
        "back up a PostgreSQL store with pg_dump (pg_dump --schema NAME for its schema)",
    ),
    "vacuum": (
        "vacuum rewrites a SQLite file",
        "PostgreSQL's autovacuum reclaims space (or run VACUUM in psql)",
    ),
}


def _path(db: str, command: str) -> Path:
    """The file ``db`` names, for a command that works on a SQLite file only: a PostgreSQL
    URL is refused naming the tool for the job there, any other URL as every command
    refuses it (:func:`~trackguard.store.urls.store_location`)."""
    does, there = _FILE_ONLY[command]
    if is_postgres_url(db):
        _fail(f"{display_url(db)}: {does}; {there}")
    return Path(store_location(db, postgres=False))


def _duration_option(
    flag: str, default: float, env: str, help: str, callback: Any = duration_callback
) -> Callable[[F], F]:
    return click.option(
        flag,
        flag.removeprefix("--").replace("-", "_"),
        default=format_duration(int(default)),
        show_default=True,
        envvar=env,
        show_envvar=True,
        callback=callback,
        metavar="DURATION",
        help=help,
    )


_OUTBOX_OPTION: Final = _duration_option(
    "--outbox-retention",
    Retention.outbox,
    OUTBOX_RETENTION_ENV,
    "Keep delivered and failed outbox rows this long after they finished.",
)
_ANONYMOUS_OPTION: Final = _duration_option(
    "--anonymous-retention",
    Retention.anonymous,
    ANONYMOUS_RETENTION_ENV,
    "Keep anonymous activity this long after it was first seen.",
)
_MONITOR_OPTION: Final = _duration_option(
    "--monitor-retention",
    MONITOR_RETENTION,
    MONITOR_RETENTION_ENV,
    "Keep the monitor's per-minute counters and health snapshots this long.",
)
_PRUNE_EVERY_OPTION: Final = _duration_option(
    "--prune-every",
    DEFAULT_PRUNE_EVERY,
    PRUNE_EVERY_ENV,
    "How often the running process applies the retention (expired dedupe claims too).",
    callback=_positive,
)


def retention_options(f: F) -> F:
    """``--outbox-retention``, ``--anonymous-retention`` and ``--prune-every``, handed to the
    command as ``retention: Retention`` (monitor tables left to the monitor) and
    ``prune_every: float``."""

    @functools.wraps(f)
    def command(**kwargs: Any) -> Any:
        retention = Retention(
            outbox=kwargs.pop("outbox_retention"),
            anonymous=kwargs.pop("anonymous_retention"),
            monitor=None,
        )
        return f(retention=retention, prune_every=float(kwargs.pop("prune_every")), **kwargs)

    wrapped: Any = command
    for option in (_PRUNE_EVERY_OPTION, _ANONYMOUS_OPTION, _OUTBOX_OPTION):
        wrapped = option(wrapped)
    return cast(F, wrapped)


_db = db_option()


@click.group(name="store", cls=TrackguardGroup)
def store_group() -> None:
    """The store: create it, see what it holds, prune, back up and vacuum it."""


@store_group.command(name="init")
@click.argument("path")
def init_command(path: str) -> None:
    """Create an empty store at the current schema (readable by its owner only).

    Only this and serve create a store: every other command refuses a missing file, so a
    typo in --db is an error, not an empty store.

    Example:

    \b
        trackguard store init /var/lib/trackguard/tg.db
    """
    file = _path(path, "init")
    if file.exists():
        _fail(f"{file}: already exists; init creates a new store only")
    if not file.parent.is_dir():
        _fail(f"{file.parent}: no such directory")
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        SQLiteStore(file).close()
    except (OSError, StoreError) as exc:
        _fail(f"{file}: cannot create the store: {exc}")
    click.echo(f"created {file} (schema version {SCHEMA_VERSION})")


@store_group.command(name="info")
@_db
@format_option("table", "json")
def info_command(db: str, fmt: str) -> None:
    """Schema version, size, and rows per table with the oldest and newest (a file's pages
    and WAL too; each PostgreSQL table's bytes with its indexes).

    Reads only: it works beside a running gateway, and a file on a backup on a read-only
    mount.

    Example:

    \b
        trackguard store info --db /var/lib/trackguard/tg.db --format json
        trackguard store info --db 'postgresql://tg@db:5432/tg?schema=shop'
    """
    try:
        info = store_info(store_location(db))
    except StoreError as exc:
        _fail(str(exc))
    if fmt == "json":
        click.echo(msgspec.json.format(msgspec.json.encode(info), indent=2).decode())
        return
    click.echo(render_info(info))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_info(info: StoreInfo) -> str:
    """The ``store info`` table."""
    states = ", ".join(f"{k} {v}" for k, v in info.outbox_states.items()) or "-"
    if info.table_bytes is None:
        lines = [
            f"path            {info.path}",
            f"schema version  {info.schema_version}",
            f"size            {info.size_bytes} bytes",
            f"wal             {info.wal_bytes} bytes",
            f"pages           {info.page_count} of {info.page_size} bytes,"
            f" {info.freelist_count} free",
        ]
    else:
        lines = [
            f"store           {info.path}",
            f"schema version  {info.schema_version}",
            f"size            {info.size_bytes} bytes (tables with their indexes)",
            "autovacuum      on"
            if info.autovacuum
            else "autovacuum      off: dead rows are never reclaimed and the planner's table"
            " sizes go stale (turn it on: docs/operations.md)",
        ]
    lines += [f"outbox states   {states}", "", f"{'table':<18} {'rows':>10}"]
    sizes = info.table_bytes
    lines[-1] += f" {'bytes':>12}" if sizes is not None else ""
    lines[-1] += f"  {'oldest':<20}  newest"
    for t in info.tables:
        size = f" {sizes.get(t.name, 0):>12}" if sizes is not None else ""
        lines.append(f"{t.name:<18} {t.rows:>10}{size}  {_when(t.oldest):<20}  {_when(t.newest)}")
    return "\n".join(lines)


@store_group.command(name="prune")
@_db
@_OUTBOX_OPTION
@_ANONYMOUS_OPTION
@_MONITOR_OPTION
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def prune_command(
    db: str, outbox_retention: int, anonymous_retention: int, monitor_retention: int, dry_run: bool
) -> None:
    """Apply the retention now: finished outbox rows, expired dedupe claims, old anonymous
    activity and monitor counters. Pending rows, quarantine records (see quarantine purge)
    and identity bindings are never deleted.

    A running gateway or trackguard deliver already does this every --prune-every; this is
    for a store no process is pruning, or to see what would go. On PostgreSQL it may run
    beside the deliverers' own prunes: each row goes once.

    Example:

    \b
        trackguard store prune --db tg.db --outbox-retention 3d --dry-run
    """
    retention = Retention(
        outbox=outbox_retention, anonymous=anonymous_retention, monitor=monitor_retention
    )
    target = store_location(db)
    try:
        store = open_store(target, create=False, readonly=dry_run)
        try:
            report = prune(store, retention, time.time(), dry_run=dry_run)
        finally:
            store.close()
    except StoreError as exc:
        _fail(str(exc))
    verb = "would delete" if dry_run else "deleted"
    for table, n in report.items():
        click.echo(f"{table:<16} {verb} {n} {'row' if n == 1 else 'rows'}")


@store_group.command(name="backup")
@_db
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(db: str, dest: Path) -> None:
    """Copy the store to DEST while gateways keep writing: one consistent snapshot,
    checked, written 0600 and renamed into place (DEST is replaced atomically).

    Restore: stop every writer, copy the backup over the store file (and remove the old
    file's -wal and -shm), start them again.

    Example:

    \b
        trackguard store backup --db /var/lib/trackguard/tg.db /backup/tg-$(date +%F).db
    """
    try:
        result = backup(_path(db, "backup"), dest)
    except StoreError as exc:
        _fail(str(exc))
    click.echo(
        f"backed up {db} to {result.dest}: {result.size_bytes} bytes,"
        f" schema version {result.schema_version}, integrity ok"
    )


@store_group.command(name="vacuum")
@_db
def vacuum_command(db: str) -> None:
    """Give free pages back to the file system (VACUUM); prints the bytes before and after.

    Holds the write lock while it rewrites the file: run it with writers stopped or at a
    quiet time. Retention alone keeps the file bounded; vacuum shrinks it after a burst.

    Example:

    \b
        trackguard store vacuum --db /var/lib/trackguard/tg.db
    """
    try:
        result = vacuum(_path(db, "vacuum"))
    except StoreError as exc:
        _fail(str(exc))
    saved = result.before_bytes - result.after_bytes
    click.echo(
        f"vacuumed {db}: {result.before_bytes} -> {result.after_bytes} bytes"
        f" ({saved} bytes reclaimed)"
    )


__all__ = ["retention_options", "store_group"]


@store_group.command(name="copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=DEFAULT_COPY_BATCH,
    show_default=True,
    help="Rows read and written at a time.",
)
def copy_command(source: str, destination: str, batch: int) -> None:
    """Copy the SQLite store SRC into the empty store DST (postgresql://user@host/db,
    optionally ?schema=NAME, or another SQLite file), then check every table and count.

    Everything delivery and dedupe need comes along: the outbox with its states, the
    quarantine, identities and profiles with their change numbers, dedupe claims, anonymous
    activity, counts and meta; and the monitor's tables (counts, health snapshots, alert and
    channel state). Stop the gateways and workers on SRC first: what they commit
    after the copy started stays behind. DST is written in one transaction, so a failed copy
    leaves it empty.

    Example:

    \b
        trackguard store copy /var/lib/trackguard/tg.db postgresql://tg@db:5432/tg
    """
    if is_postgres_url(source):
        _fail(f"{display_url(source)!r}: SRC must be a SQLite store ({SQLITE_FORMS})")
    store_location(source, postgres=False)  # another URL: refused as every command does
    existing_store(source)
    report = copy_store(source, destination, batch=batch)
    shown = ", ".join(f"{table} {n}" for table, n in report.rows.items())
    click.echo(f"copied {source} to {display_url(destination)}: {shown}; counts match")
