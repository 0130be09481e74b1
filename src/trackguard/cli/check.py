"""``trackguard check``: validate request files offline; ``trackguard sample``: make some."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trackguard.check.inputs import STDIN, iter_requests
from trackguard.check.judge import Judge
from trackguard.check.run import check_items, check_jobs
from trackguard.check.samples import DEMO_DEFECT_RATE, d2c_traffic
from trackguard.check.summary import Summary
from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import jobs_option, output_option, plan_option, write_atomic
from trackguard.cli.output import write_stdout
from trackguard.errors import InputError
from trackguard.plan.model import Plan
from trackguard.shares import can_fork, input_problem

_OUTCOME_STYLE = {
    "accepted": "green",
    "fixed": "cyan",
    "warned": "yellow",
    "rejected": "red",
    "invalid": "bold red",
}


def render_summary(summary: Summary, console: Console, *, title: str) -> None:
    """Print counts by outcome and the top violation codes with examples."""
    table = Table(title=title, show_edge=False)
    table.add_column("outcome")
    table.add_column("requests", justify="right")
    table.add_column("share", justify="right")
    total = max(summary.requests, 1)
    for outcome, count in summary.outcome_rows():
        style = _OUTCOME_STYLE[outcome]
        table.add_row(f"[{style}]{outcome}[/]", str(count), f"{100 * count / total:.1f}%")
    table.add_row("unreadable lines", str(summary.unreadable), "")
    if summary.skipped:
        table.add_row("skipped HAR entries", str(summary.skipped), "")
    console.print(table)
    console.print(
        f"{summary.requests} requests: {summary.operations_accepted} operations would be sent, "
        f"{summary.operations_rejected} quarantined by the plan, {summary.changes} values fixed."
    )
    if summary.codes:
        codes = Table(title="Top findings", show_edge=False)
        codes.add_column("code")
        codes.add_column("count", justify="right")
        codes.add_column("action")
        codes.add_column("example")
        for code, stats in summary.top_codes():
            actions = ", ".join(f"{a} {n}" for a, n in stats.actions.most_common())
            where, message = stats.examples[0]
            codes.add_row(code, str(stats.count), actions, escape(f"{where}: {message}"))
        console.print(codes)
    for where, reason in summary.unreadable_examples:
        console.print(f"[red]unreadable[/] {escape(f'{where}: {reason}')}")


@click.command(name="check", cls=TrackguardCommand)
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
)
@plan_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["summary", "jsonl"]),
    default="summary",
    show_default=True,
    help="summary: a table; jsonl: one verdict per line on stdout.",
)
@click.option("--strict", is_flag=True, help="Answer plan rejections with 400, as serve --strict.")
@jobs_option()
def check_command(
    files: tuple[Path, ...], plan: Plan | None, fmt: str, strict: bool, jobs: int
) -> None:
    """Check Track and Pipelines API requests in FILES (JSONL or HAR, gzip accepted; - reads
    stdin) offline.

    Each line is {"method": ..., "path": ..., "body": ...}; a string body is raw body text (a
    request-log line is one). A /v1/ path is a Pipelines API request. Without --plan only
    Customer.io's contracts are checked. Files are checked in --jobs
    processes (standard input in one); the output is the same for any number. Exit status: 0
    when nothing is rejected, 1 when something is, 2 on usage errors (a missing file, a bad
    plan).

    Example:

    \b
        trackguard sample -n 2000 -o traffic.jsonl
        trackguard check --plan examples/d2c-plan.yaml traffic.jsonl
        trackguard check requests.jsonl.gz --format jsonl > verdicts.jsonl
        trackguard sample -n 500 | trackguard check --plan examples/d2c-plan.yaml -
    """
    for file in files:
        problem = None if str(file) == "-" else input_problem(file)
        if problem is not None:
            raise InputError(problem)
    out = sys.stdout.buffer
    lines = out if fmt == "jsonl" else None
    paths = list(files)
    if jobs > 1 and can_fork() and STDIN not in paths:
        summary = check_jobs(paths, plan, strict=strict, jobs=jobs, out=lines)
    else:
        summary = check_items(iter_requests(paths), Judge(plan, strict=strict), lines)
    if fmt == "summary":
        title = f"trackguard check ({'plan ' + plan.name if plan else 'contract only'})"
        render_summary(summary, Console(), title=title)
    out.flush()
    sys.exit(1 if summary.failed or summary.unreadable else 0)


@click.command(name="sample", cls=TrackguardCommand)
@click.option("--count", "-n", default=2000, show_default=True, help="How many requests.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same file).")
@click.option(
    "--defect-rate",
    default=DEMO_DEFECT_RATE,
    show_default=True,
    type=click.FloatRange(0, DEMO_DEFECT_RATE, min_open=True),
    help="Share of event requests with a defect (production traffic is mostly clean).",
)
@output_option(help="Write here (whole or not at all), not stdout.")
def sample_command(count: int, seed: int, defect_rate: float, output: Path | None) -> None:
    """Write realistic D2C store traffic, defects included, as check input (JSONL).

    Example:

    \b
        trackguard sample -n 10000 -o traffic.jsonl
    """
    records = d2c_traffic(count, seed, defect_rate)
    lines = b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    if output is None:
        write_stdout(lines)
    else:
        write_atomic(output, lines, private=True)
