"""``trackguard audit``: find what is breaking retention in existing request logs."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from trackguard.audit import SEVERITIES, AuditRun, parse_map, run_audit
from trackguard.audit.readers import expand
from trackguard.audit.report_html import render_html
from trackguard.audit.report_json import render_json
from trackguard.audit.report_terminal import render_terminal
from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import jobs_option, output_option, plan_option, write_atomic
from trackguard.cli.output import write_stdout
from trackguard.plan.model import Plan

#: Inputs smaller than this finish before a progress bar would help.
PROGRESS_MIN_BYTES = 50 * 1024 * 1024


def _run(
    logs: tuple[str, ...],
    plan: Plan | None,
    mapping: dict[str, tuple[str, ...]] | None,
    jobs: int = 1,
) -> AuditRun:
    files = expand(list(logs))
    total = sum(p.stat().st_size for p in files)
    if not (sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES):
        return run_audit(files, plan, mapping=mapping, jobs=jobs)
    console = Console(stderr=True)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("auditing", total=total)
        return run_audit(
            files,
            plan,
            mapping=mapping,
            jobs=jobs,
            progress=lambda done: bar.update(task, completed=done),
        )


def _write(target: Path | str, data: bytes) -> None:
    if target == "-":
        write_stdout(data)
    else:
        write_atomic(target, data, private=True)


@click.command(name="audit", cls=TrackguardCommand)
@click.argument("logs", nargs=-1, required=True)
@plan_option(help="Tracking plan YAML: adds the plan's findings and canonical names.")
@output_option("--html", "html_path", help="Write the HTML report here.")
@output_option(
    "--json",
    "json_path",
    dash=True,
    help="Write the JSON report here ('-' for stdout hides the summary).",
)
@output_option(
    "--infer-plan",
    "infer_path",
    help="Draft a tracking plan from the traffic and write it here.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Exit 1 when a finding is at or above this severity (default: exit 0).",
)
@click.option(
    "--map",
    "map_spec",
    metavar="SPEC",
    help="Read JSONL in another layout: FIELD=dotted.path,... (fields: method, "
    "path, body, status, response, time, source, headers).",
)
@jobs_option()
def audit_command(
    logs: tuple[str, ...],
    plan: Plan | None,
    html_path: Path | None,
    json_path: Path | str | None,
    infer_path: Path | None,
    fail_on: str | None,
    map_spec: str | None,
    jobs: int,
) -> None:
    """Audit request logs (LOG: files or quoted globs; gzip, HAR and JSONL read as found).

    Every request goes through the same checks as the gateway; the report adds what only a
    whole log shows: naming and type drift, timestamp formats, identifier mixing,
    duplicates, anonymous events never identified, and gaps in volume. Exit status: 0, or 1
    with --fail-on when a finding reaches that severity; 2 on usage errors.

    Example:

    \b
        trackguard audit logs/requests-*.jsonl.gz --html audit.html --json audit.json
        trackguard audit capture.har --plan plan.yaml --fail-on error
        trackguard audit app.jsonl --map method=req.method,path=req.url,body=req.body
        trackguard audit logs/*.jsonl --infer-plan draft-plan.yaml
        trackguard audit big.jsonl --jobs 4
    """
    mapping = None if map_spec is None else parse_map(map_spec)
    result = _run(logs, plan, mapping, jobs)
    report = result.report
    if json_path is not None:
        _write(json_path, render_json(report, fail_on=fail_on))
    if html_path is not None:
        write_atomic(html_path, render_html(report), private=True)
    if infer_path is not None:
        # A drafted plan's enum values come from the traffic.
        write_atomic(infer_path, result.infer_plan(), private=True)
    if json_path != "-":
        render_terminal(report, Console())
    sys.exit(1 if fail_on is not None and report.fails(fail_on) else 0)


__all__ = ["audit_command"]
