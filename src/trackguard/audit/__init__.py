"""``trackguard audit``: what existing request logs say is breaking retention.

Every readable request goes through the same core ``Checker`` the gateway uses, so the audit
and the gateway agree by construction; the audit adds what only a whole log shows (naming and
type drift, timestamp census, identifier mixing, duplicates, orphaned anonymous events, volume
gaps). It streams: memory is bounded by :class:`Limits`, not by the size of the input.

    report = audit(["logs/*.jsonl.gz"], plan=load_plan("plan.yaml"))
    report.fails("error")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trackguard.audit.assemble import build_report, infer_plan
from trackguard.audit.caps import Limits
from trackguard.audit.engine import Auditor
from trackguard.audit.model import (
    SEVERITIES,
    AuditReport,
    Confidence,
    DriftCluster,
    DriftMatch,
    Example,
    FileTotals,
    Finding,
    NameCount,
    Severity,
    Timeline,
    Totals,
    TypeDrift,
)
from trackguard.audit.parallel import audit_jobs
from trackguard.audit.readers import (
    MAX_LINE_BYTES,
    FileCounter,
    InputError,
    MapError,
    Record,
    Unreadable,
    expand,
    parse_map,
    read,
)
from trackguard.plan.model import Plan
from trackguard.shares import can_fork

Progress = Callable[[int], None]
_PROGRESS_EVERY = 8192


class AuditRun:
    """A finished audit: the report, and what is needed to draft a plan from the same pass."""

    __slots__ = ("_auditor", "report")

    def __init__(self, auditor: Auditor, report: AuditReport) -> None:
        self._auditor = auditor
        self.report = report

    def infer_plan(self) -> str:
        """A draft tracking plan (YAML) that ``plan lint`` accepts and ``check`` can use."""
        return infer_plan(self._auditor)


def run_audit(
    paths: Sequence[str | os.PathLike[str]],
    plan: Plan | None = None,
    *,
    mapping: dict[str, tuple[str, ...]] | None = None,
    now: int | None = None,
    limits: Limits | None = None,
    max_line: int = MAX_LINE_BYTES,
    progress: Progress | None = None,
    jobs: int = 1,
) -> AuditRun:
    """Audit files (paths or globs, read in order); raises InputError for missing inputs.

    ``mapping`` (from :func:`parse_map`) reads JSONL in another layout. ``now`` (unix seconds)
    is the clock for records without a log time. ``progress`` is called now and then with the
    bytes of input consumed so far (on disk, so gzip counts compressed bytes). ``jobs`` > 1
    audits shares of the input in that many processes; the report is the same.
    """
    files = expand([os.fspath(p) for p in paths])
    now = int(time.time()) if now is None else now
    if jobs > 1 and can_fork():
        done_jobs = audit_jobs(
            files,
            plan,
            jobs=jobs,
            mapping=mapping,
            now=now,
            limits=limits or Limits(),
            max_line=max_line,
        )
        if done_jobs is not None:
            merged, merged_counters, seconds = done_jobs
            if progress is not None:
                progress(sum(_size(p) for p in files))
            return AuditRun(merged, build_report(merged, merged_counters, seconds))
    auditor = Auditor(plan, now=now, limits=limits)
    add, add_unreadable = auditor.add, auditor.add_unreadable
    counters: list[FileCounter] = []
    started = time.perf_counter()
    done = 0
    for path in files:
        counter = FileCounter(str(path), "")
        counters.append(counter)
        items = read(path, counter, mapping=mapping, max_line=max_line)
        if progress is None:
            for item in items:
                if type(item) is Record:
                    add(item)
                elif type(item) is Unreadable:
                    add_unreadable(item)
        else:
            for n, item in enumerate(items, 1):
                if type(item) is Record:
                    add(item)
                elif type(item) is Unreadable:
                    add_unreadable(item)
                if n % _PROGRESS_EVERY == 0:
                    progress(done + counter.raw_position())
        done += _size(path)
        if progress is not None:
            progress(done)
    report = build_report(auditor, counters, time.perf_counter() - started)
    return AuditRun(auditor, report)


def audit(
    paths: Sequence[str | os.PathLike[str]],
    plan: Plan | None = None,
    *,
    mapping: dict[str, tuple[str, ...]] | None = None,
    now: int | None = None,
    limits: Limits | None = None,
    max_line: int = MAX_LINE_BYTES,
    jobs: int = 1,
) -> AuditReport:
    """Audit request logs and return the report (see :func:`run_audit`)."""
    return run_audit(
        paths, plan, mapping=mapping, now=now, limits=limits, max_line=max_line, jobs=jobs
    ).report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


__all__ = [
    "SEVERITIES",
    "AuditReport",
    "AuditRun",
    "Confidence",
    "DriftCluster",
    "DriftMatch",
    "Example",
    "FileTotals",
    "Finding",
    "InputError",
    "Limits",
    "MapError",
    "NameCount",
    "Severity",
    "Timeline",
    "Totals",
    "TypeDrift",
    "audit",
    "parse_map",
    "run_audit",
]
