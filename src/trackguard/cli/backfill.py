"""``trackguard backfill``: historical rows (CSV, JSONL, SQLite query) into the outbox."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import db_option, plan_option
from trackguard.cli.outbox import open_db
from trackguard.plan.model import Plan
from trackguard.recovery.backfill import BackfillReport, OnError, backfill
from trackguard.recovery.backfill import Progress as BackfillProgress
from trackguard.recovery.mapping import load_mapping
from trackguard.recovery.sources import open_source
from trackguard.recovery.target import TargetError, parse_target


def print_summary(report: BackfillReport, console: Console) -> None:
    r = report
    if r.resumed_from:
        console.print(f"resumed after row {r.resumed_from}")
    console.print(
        f"{r.rows_read} rows read: {r.accepted} accepted, {r.fixed} fixed, {r.warned} warned,"
        f" {r.rejected} rejected (quarantined"
        + (f", {r.already_quarantined} of them by an earlier run" if r.already_quarantined else "")
        + (
            f", {r.dedupe_conflicts} of them for a dedupe key another person holds"
            if r.dedupe_conflicts
            else ""
        )
        + f"), {r.duplicates} duplicates, {r.skipped} skipped"
        f" in {r.seconds:.1f} s ({r.rows_per_second:,.0f} rows/s)"
    )
    for p in r.problems[:20]:
        console.print(f"[red]{escape(str(p))}[/]")
    if len(r.problems) > 20:
        console.print(f"... and {len(r.problems) - 20} more")


@click.command(name="backfill", cls=TrackguardCommand)
@click.argument("source", metavar="SOURCE")
@click.option(
    "--as",
    "as_",
    required=True,
    metavar="TARGET",
    help="What each row becomes: event:NAME or identify (Track API), pipelines:track:NAME,"
    " pipelines:page:NAME, pipelines:screen:NAME, pipelines:identify, pipelines:group or"
    " pipelines:alias (Pipelines API).",
)
@click.option("--map", "mapping_path", required=True, metavar="MAPPING.yaml")
@db_option()
@plan_option()
@click.option("--query", default=None, help="SQL query for a sqlite:/// or postgresql:// source.")
@click.option("--on-error", type=click.Choice(["skip", "stop"]), default="skip", show_default=True)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--restart", is_flag=True, help="Ignore the checkpoint and start from row 1.")
def backfill_command(
    source: str,
    as_: str,
    mapping_path: str,
    db: str,
    plan: Plan | None,
    query: str | None,
    on_error: str,
    batch_size: int,
    restart: bool,
) -> None:
    """Backfill SOURCE (CSV, JSONL, Parquet, sqlite:///db or postgresql://...) into the outbox
    of the store --db names (SQLite or postgresql://...).

    Rows go through the same checks as live traffic; delivery sends them rate-limited. A rerun
    continues after the last committed batch. Exit 0 when done, 1 when a bad row stopped the
    run (--on-error stop), 2 for a bad mapping, plan or source.

    \b
        trackguard backfill orders.csv.gz --as event:order_completed \\
            --map orders.map.yaml --plan plan.yaml --db trackguard.db
        trackguard backfill orders.csv --as pipelines:track:order_completed \\
            --map orders.map.yaml --plan plan.yaml --db trackguard.db
    """
    err = Console(stderr=True)
    out = Console(soft_wrap=True)  # a summary line stays whole in a pipe
    try:
        target = parse_target(as_)
    except TargetError as e:
        raise click.BadParameter(str(e), param_hint="--as") from e
    pipelines = target.api == "pipelines"
    mapping = load_mapping(
        mapping_path,
        identify=target.identify,
        pipelines=pipelines,
        call=target.kind if pipelines else None,
    )
    src = open_source(source, query)
    store = open_db(db, readonly=False)
    on: OnError = "stop" if on_error == "stop" else "skip"

    def run(progress: BackfillProgress | None = None) -> BackfillReport:
        return backfill(
            src,
            store=store,
            mapping=mapping,
            target=target,
            plan=plan,
            on_error=on,
            batch_size=batch_size,
            restart=restart,
            progress=progress,
        )

    try:
        if err.is_terminal:
            total = src.total()
            columns = [
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]} rows"),
                TimeRemainingColumn(),
            ]
            with Progress(*columns, console=err, transient=True) as bar:
                task = bar.add_task(f"backfill {src.name}", total=total, rows=0)

                def tick(done: int, position: int | None, size: int | None) -> None:
                    bar.update(task, completed=position, rows=f"{done:,}")

                report = run(tick)
        else:
            report = run()
    finally:
        store.close()
    print_summary(report, out)
    if report.stopped:
        sys.exit(1)
