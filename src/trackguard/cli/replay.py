"""``trackguard replay``: fix quarantined requests and send the ones that now pass.

Exit status: 0 done, 2 a missing store, or a malformed option, plan or fix file.
"""

from __future__ import annotations

import difflib
import json
import time
from typing import Any

import click

from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import db_option, plan_option
from trackguard.durations import DurationError, parse_instant
from trackguard.plan.model import Plan
from trackguard.recovery.fixes import Fix, load_fixes
from trackguard.recovery.replay import ReplayItem, replay
from trackguard.store.quarantine import QuarantineFilter


def _pretty(raw: bytes) -> list[str]:
    try:
        return json.dumps(json.loads(raw), indent=2, sort_keys=True).splitlines()
    except (ValueError, UnicodeDecodeError):
        return [raw.decode("utf-8", "replace")]


def _show(item: ReplayItem) -> None:
    route = item.path if item.new_path == item.path else f"{item.path} -> {item.new_path}"
    click.echo(f"#{item.id} {item.kind} {item.event_name or '-'} {route}: {item.outcome}")
    for rule in item.applied:
        click.echo(f"  fix: {rule}")
    diff = difflib.unified_diff(
        _pretty(item.before), _pretty(item.after), "before", "after", lineterm="", n=1
    )
    for line in diff:
        click.echo(f"  {line}")
    if item.outcome == "still_invalid":
        click.echo(f"  still invalid: {' '.join(item.codes)} {item.reason}".rstrip())


@click.command("replay", cls=TrackguardCommand)
@db_option()
@plan_option(default="trackguard.plan.yaml")
@click.option("--event", default=None, help="Only this event name.")
@click.option("--code", default=None, help="Only records carrying this finding code.")
@click.option("--source", default=None, help="Only this source.")
@click.option("--plan-version", default=None, help="Only records judged under this plan_version.")
@click.option(
    "--route",
    default=None,
    help="Only this route (e.g. 'POST /api/v1/customers/{identifier}/events').",
)
@click.option("--since", default=None, help="Received at or after (7d, 2026-11-01).")
@click.option("--until", default=None, help="Received before (exclusive).")
@click.option("--fix", "fix_path", default=None, help="A YAML file of fix rules.")
@click.option("--dry-run", is_flag=True, help="Change nothing; print a diff per record.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Replay at most this many records per second (default: as fast as they check).",
)
@click.option(
    "--keep-timestamp/--now",
    "keep_timestamp",
    default=True,
    help="Keep each event's time (default) or re-time events to now.",
)
def replay_command(
    db: str,
    plan: Plan,
    event: str | None,
    code: str | None,
    source: str | None,
    plan_version: str | None,
    route: str | None,
    since: str | None,
    until: str | None,
    fix_path: str | None,
    dry_run: bool,
    rate: float | None,
    keep_timestamp: bool,
) -> None:
    """Apply fixes to quarantined requests, check them again and queue those that pass."""
    now = time.time()
    times: dict[str, float | None] = {"since": None, "until": None}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            try:
                times[name] = parse_instant(text, now)
            except DurationError as e:
                raise click.BadParameter(str(e), param_hint=f"--{name}") from e
    lo, hi = times["since"], times["until"]
    if lo is not None and hi is not None and lo >= hi:
        raise click.BadParameter("--since must be before --until")
    fixes: tuple[Fix, ...] = () if fix_path is None else load_fixes(fix_path)
    flt = QuarantineFilter(
        event=event,
        code=code,
        source=source,
        plan_version=plan_version,
        route=route,
        since=times["since"],
        until=times["until"],
    )
    report = replay(db, plan, flt, fixes, dry_run, not keep_timestamp, now=now, rate=rate)
    if dry_run:
        for item in report.items:
            _show(item)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    verb = "would replay" if dry_run else "replayed"
    totals: dict[str, Any] = {
        "selected": len(report.items),
        "replayed": report.replayed,
        "duplicates": report.duplicates,
        "still_invalid": report.still_invalid,
    }
    click.echo(
        f"{totals['selected']} records: {verb} {totals['replayed']},"
        f" {'would drop' if dry_run else 'dropped'} {totals['duplicates']} as duplicates"
        " (sent before, or earlier in this replay),"
        f" {totals['still_invalid']} still invalid"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
