"""``trackguard quarantine``: list, show, summarise, export and purge rejected requests.

A thin layer over :mod:`trackguard.store.quarantine`; ``--db`` is a SQLite store or a
``postgresql://`` URL. Everything a client sent is shown as
text with control characters escaped, so a hostile body cannot drive the terminal; ``export``
and ``show --format json`` give the exact bytes. Exit status: 0 done, 2 a missing store or
record, or a malformed option (duration, date, filter).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import click
import msgspec
from rich.text import Text

from trackguard.cli.base import TrackguardGroup
from trackguard.cli.options import db_option, duration_callback, format_option, output_option
from trackguard.cli.output import (
    emit_json,
    emit_jsonl,
    emit_rows,
    new_table,
    print_table,
    printable,
)
from trackguard.durations import DurationError, format_duration, iso_time, parse_instant
from trackguard.errors import InputError, OutputError
from trackguard.private import open_private
from trackguard.store.base import QuarantineRecord
from trackguard.store.quarantine import (
    CSV_COLUMNS,
    ExportFormat,
    QuarantineFilter,
    count_quarantine,
    csv_row,
    export,
    get,
    list_quarantine,
    purge,
    record_to_dict,
    stats,
)
from trackguard.store.sql import session
from trackguard.store.urls import display_url

F = TypeVar("F", bound=Callable[..., Any])

#: The retention ``purge`` uses when ``--older-than`` is not given.
RETENTION_ENV: Final = "TRACKGUARD_QUARANTINE_RETENTION"


def _now() -> float:
    """The current time; tests replace it to get exact output."""
    return time.time()


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--since``/``--until``: a duration ago or an ISO date, or exit 2."""
    if value is None:
        return None
    try:
        return parse_instant(value, _now())
    except DurationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


_FILTER_OPTIONS: Final = (
    click.option("--event", metavar="NAME", help="Only records of this event name."),
    click.option("--code", metavar="CODE", help="Only records with this finding code."),
    click.option("--source", metavar="NAME", help="Only records from this source (client key)."),
    click.option(
        "--kind",
        type=click.Choice(["contract", "plan", "upstream"]),
        help="contract: Customer.io would refuse it; plan: the plan rejected it;"
        " upstream: Customer.io refused it at delivery.",
    ),
    click.option(
        "--state",
        type=click.Choice(["quarantined", "replayed", "still_invalid"]),
        help="Only records in this state.",
    ),
    click.option(
        "--plan-version",
        "plan_version",
        metavar="VERSION",
        help="Only records checked under this plan_version (for upstream records: the plan"
        " that accepted the operation).",
    ),
    click.option(
        "--route",
        metavar="ROUTE",
        help="Only records of this route key, as show prints it:"
        " 'POST /api/v1/customers/{identifier}/events'.",
    ),
    click.option(
        "--since",
        callback=_instant,
        metavar="TIME",
        help="Received at or after TIME: a duration ago (7d, 24h) or an ISO date (UTC unless"
        " an offset is given).",
    ),
    click.option(
        "--until", callback=_instant, metavar="TIME", help="Received before TIME (same forms)."
    ),
)


_FILTER_FIELDS: Final = (
    "event", "code", "source", "kind", "state", "plan_version", "route", "since", "until"
)  # fmt: skip


def _filter_options(f: F) -> F:
    """The shared filter options, handed to the command as one ``flt: QuarantineFilter``."""

    @functools.wraps(f)
    def command(**kwargs: Any) -> Any:
        flt = _filter(**{name: kwargs.pop(name) for name in _FILTER_FIELDS})
        return f(flt=flt, **kwargs)

    wrapped: Any = command
    for option in reversed(_FILTER_OPTIONS):
        wrapped = option(wrapped)
    return cast(F, wrapped)


def _filter(
    *,
    event: str | None,
    code: str | None,
    source: str | None,
    kind: Any,
    state: Any,
    plan_version: str | None,
    route: str | None,
    since: float | None,
    until: float | None,
) -> QuarantineFilter:
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({iso_time(since)}) must be before --until ({iso_time(until)})"
        )
    return QuarantineFilter(
        event=event,
        code=code,
        source=source,
        kind=kind,
        state=state,
        plan_version=plan_version,
        route=route,
        since=since,
        until=until,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@click.group(name="quarantine", cls=TrackguardGroup)
def quarantine_group() -> None:
    """Inspect, export and purge the quarantine: every rejected request, kept whole.

    Filters shared by list, stats and export: --event, --code, --source, --kind, --state,
    --plan-version, --route, --since and --until (all must match).
    """


# -- list ------------------------------------------------------------------------------------


@quarantine_group.command("list")
@db_option()
@_filter_options
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most rows shown."
)
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Rows skipped."
)
@format_option()
def list_command(
    db: str,
    flt: QuarantineFilter,
    limit: int,
    offset: int,
    fmt: str,
) -> None:
    """List quarantined records, most recent first, one row each.

    The table shows one record per line when piped (so | grep -c counts records); the
    "showing" line goes to stderr. json is an array of the objects export writes (one per
    line with jsonl); csv has export's columns.

    \b
    Example:
        $ trackguard quarantine list --code property_type --since 7d
        id  received (UTC)       kind  state        source      event            codes ...
         6  2026-11-03 10:00:00  plan  quarantined  mobile      order_completed  property_t...
         1  2026-11-01 10:00:00  plan  quarantined  storefront  order_completed  property_t...
        showing 1-2 of 2 matching records
        $ trackguard quarantine list --source backend --limit 20 --offset 20
        $ trackguard quarantine list --format json --limit 500 | jq '.[].codes'
    """
    with session(db) as s:
        records = list_quarantine(s, flt, limit=limit, offset=offset)
        total = count_quarantine(s, flt)
    if fmt != "table":
        _emit_records(fmt, records)
        return
    if not records:
        if total:
            click.echo(f"no records after --offset {offset} ({_plural(total, 'matching record')})")
        else:
            click.echo("no quarantined records match")
        return
    table = new_table()
    # What identifies a record is never cut; what clients sent folds onto more lines (on a
    # terminal; piped, every value is whole).
    table.add_column("id", justify="right", no_wrap=True, min_width=len(str(records[0].id)))
    table.add_column("received (UTC)", no_wrap=True, min_width=19)
    table.add_column("kind", no_wrap=True, min_width=8)
    table.add_column("state", no_wrap=True, min_width=max(len(r.state) for r in records))
    for column in ("source", "event", "codes", "request"):
        table.add_column(column, overflow="fold")
    for r in records:
        request = f"{r.method} {r.path}"
        if r.batch_index is not None:
            request += f" [item {r.batch_index}]"
        cells = (
            str(r.id),
            iso_time(r.received_at)[:19].replace("T", " "),
            r.kind,
            r.state,
            r.source or "-",
            r.event_name or "-",
            " ".join(r.codes) or "-",
            request,
        )
        table.add_row(*(Text(printable(c, one_line=True)) for c in cells))
    print_table(table)
    first, last = offset + 1, offset + len(records)
    line = f"showing {first}-{last} of {_plural(total, 'matching record')}"
    if last < total:
        line += f"; next page: --offset {last}"
    click.echo(line, err=True)


def _emit_records(fmt: str, records: Sequence[QuarantineRecord]) -> None:
    """Records as export writes them: json (an array), jsonl or csv."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(r) for r in records)
        click.echo(buffer.getvalue(), nl=False)
    elif fmt == "json":
        emit_json([record_to_dict(r) for r in records])
    else:
        emit_jsonl([record_to_dict(r) for r in records])


# -- show ------------------------------------------------------------------------------------


@quarantine_group.command("show")
@click.argument("record_id", metavar="ID", type=int)
@db_option()
@format_option()
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")
def show_command(record_id: int, db: str, fmt: str, as_json: bool) -> None:
    """Print every field of record ID: the request, its findings and the whole raw body.

    Control characters in the body are shown escaped (\\x1b); --format json gives the exact
    text (the object export writes), and body_base64 the exact bytes when the body is not
    UTF-8.

    \b
    Example:
        $ trackguard quarantine show 1
        id:             1
        received:       2026-11-01T10:00:00.000Z (1793527200.0)
        kind:           plan
        ...
        body (91 bytes, UTF-8):
        {"name": "order_completed", "data": {"order_id": "O-1", "currency": "USD", "total": "abc"}}
        $ trackguard quarantine show 3 --format json | jq -r .body_base64 | base64 -d > body.bin
    """
    record = get(db, record_id)
    if record is None:
        raise InputError(f"no quarantine record {record_id} in {display_url(db)}")
    if as_json or fmt == "json":
        click.echo(msgspec.json.encode(record_to_dict(record)).decode())
        return
    if fmt != "table":
        _emit_records(fmt, [record])
        return
    click.echo(printable(_render_record(record)), nl=False)


def _render_record(r: QuarantineRecord) -> str:
    def dash(value: object) -> str:
        return "-" if value is None or value == "" else str(value)

    lines = [
        f"id:             {r.id}",
        f"received:       {iso_time(r.received_at)} ({r.received_at!r})",
        f"kind:           {r.kind}",
        f"state:          {r.state}",
        f"request:        {r.method} {r.path}",
        f"batch index:    {dash(r.batch_index)}",
        f"source:         {dash(r.source)}",
        f"plan version:   {dash(r.plan_version)}",
        f"route:          {dash(r.route)}",
        f"status:         {r.status}",
        f"event:          {dash(r.event_name)}",
        f"codes:          {dash(' '.join(r.codes))}",
        f"upstream error: {dash(r.upstream_error)}",
        f"headers ({len(r.headers)}):",
        *(f"  {name}: {value}" for name, value in r.headers),
    ]
    findings = record_to_dict(r)["findings"]
    count = len(findings) if isinstance(findings, list) else 1
    lines.append(f"findings ({count}):")
    pretty = json.dumps(findings, indent=2, ensure_ascii=False)
    lines.extend(f"  {line}" for line in pretty.splitlines())
    try:
        body = r.body.decode("utf-8")
        lines.append(f"body ({_plural(len(r.body), 'byte')}, UTF-8):")
        lines.append(body)
    except UnicodeDecodeError:
        lines.append(
            f"body ({_plural(len(r.body), 'byte')}, not UTF-8: shown with U+FFFD, exact bytes"
            " in body_base64):"
        )
        lines.append(r.body.decode("utf-8", "replace"))
        lines.append("body_base64:")
        lines.append(record_to_dict(r)["body_base64"])
    return "\n".join(lines) + "\n"


# -- stats -----------------------------------------------------------------------------------

_BREAKDOWNS: Final = (
    ("kind", "by_kind"),
    ("state", "by_state"),
    ("code", "by_code"),
    ("event", "by_event"),
    ("source", "by_source"),
    ("day (UTC)", "by_day"),
)


@quarantine_group.command("stats")
@db_option()
@_filter_options
@format_option()
def stats_command(
    db: str,
    flt: QuarantineFilter,
    fmt: str,
) -> None:
    """Count quarantined records by kind, state, code, event, source and UTC day.

    A record with several codes counts once under each of them. json: {"total", "by_kind",
    "by_state", "by_code", "by_event", "by_source", "by_day"}, each breakdown a list of
    [value, records]; jsonl and csv: one {"breakdown", "value", "records"} row per pair.

    \b
    Example:
        $ trackguard quarantine stats --since 2026-11-02
        5 quarantined records

        kind      records  share
        plan            3  60.0%
        contract        2  40.0%
        ...
        $ trackguard quarantine stats --format json | jq '.by_code[0]'
    """
    result = stats(db, flt)
    if fmt == "json":
        click.echo(msgspec.json.encode(result).decode())
        return
    if fmt in ("jsonl", "csv"):
        rows = [
            {"breakdown": field[3:], "value": value, "records": n}
            for _, field in _BREAKDOWNS
            for value, n in getattr(result, field)
        ]
        emit_rows(fmt, rows, ())
        return
    click.echo(f"{_plural(result.total, 'quarantined record')}")
    if not result.total:
        return
    for title, field in _BREAKDOWNS:
        table = new_table()
        table.add_column(title, overflow="fold")
        table.add_column("records", justify="right")
        table.add_column("share", justify="right")
        pairs: Sequence[tuple[str | None, int]] = getattr(result, field)
        for value, n in pairs:
            label = value if value is not None else f"(no {title})"
            share = f"{100 * n / result.total:.1f}%"
            table.add_row(Text(printable(label, one_line=True)), str(n), share)
        click.echo("")
        print_table(table)


# -- export ----------------------------------------------------------------------------------


@quarantine_group.command("export")
@db_option()
@_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per record (a request log trackguard check reads);"
    " csv: one row per record.",
)
@output_option(help="Write to this file (replaced only when the export completes), not stdout.")
def export_command(
    db: str,
    flt: QuarantineFilter,
    fmt: ExportFormat,
    output: Path | None,
) -> None:
    """Write quarantined records, whole and oldest first, as JSON Lines or CSV.

    Bodies are text; a body that is not UTF-8 also comes as body_base64 (exact bytes).
    Memory use does not grow with the quarantine. CSV cells hold what clients sent: a
    spreadsheet may read a cell starting with = as a formula.

    \b
    Example:
        $ trackguard quarantine export --event order_completed --since 7d -o orders.jsonl
        exported 4 records to orders.jsonl
        $ trackguard quarantine export --format csv --code property_type > bad-types.csv
        $ trackguard check --plan plan.yaml orders.jsonl    # re-check after fixing the plan
    """
    if output is None:
        written = _export_stdout(db, fmt, flt)
        where = "stdout"
    else:
        written = _export_file(db, fmt, flt, output)
        where = str(output)
    click.echo(f"exported {_plural(written, 'record')} to {where}", err=True)


def _export_stdout(db: str, fmt: ExportFormat, flt: QuarantineFilter) -> int:
    sys.stdout.flush()
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:  # a reader that goes away (| head) ends the command quietly: cli/base.py
        written = export(db, stream, fmt, flt)
        stream.flush()
    finally:
        stream.detach()
    return written


def _export_file(db: str, fmt: ExportFormat, flt: QuarantineFilter, output: Path) -> int:
    partial = output.with_name(output.name + ".partial")
    try:
        with open_private(partial, "w", newline="") as fh:
            written = export(db, fh, fmt, flt)
        partial.replace(output)
    except OSError as exc:
        raise OutputError(f"{output}: cannot write: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return written


# -- purge -----------------------------------------------------------------------------------


@quarantine_group.command("purge")
@db_option()
@click.option(
    "--older-than",
    "older_than",
    callback=duration_callback,
    required=True,
    envvar=RETENTION_ENV,
    show_envvar=True,
    metavar="DURATION",
    help="Delete records received longer ago than this: 30d, 12h, 2w, 1d12h.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def purge_command(db: str, older_than: int, dry_run: bool) -> None:
    """Delete quarantined records older than a retention period.

    Run it from cron or a systemd timer to keep a retention; the gateway's store stays
    available meanwhile (records go in small transactions).

    \b
    Example:
        $ trackguard quarantine purge --older-than 30d
        purged 120 records received before 2026-10-29T03:17:00.000Z (older than 30d); 8 remain
        $ crontab -l
        17 3 * * * trackguard quarantine purge --db /var/lib/trackguard/tg.db --older-than 30d
    """
    now = _now()
    cutoff = now - older_than
    age = format_duration(older_than)
    if dry_run:
        n = count_quarantine(db, QuarantineFilter(until=cutoff))
        click.echo(
            f"would purge {_plural(n, 'record')} received before {iso_time(cutoff)}"
            f" (older than {age})"
        )
        return
    with session(db, readonly=False) as s:
        n = purge(s, older_than, now=now)
        remaining = count_quarantine(s)
    click.echo(
        f"purged {_plural(n, 'record')} received before {iso_time(cutoff)}"
        f" (older than {age}); {remaining} remain"
    )


__all__ = ["RETENTION_ENV", "quarantine_group"]
