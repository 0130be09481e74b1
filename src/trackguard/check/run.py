"""Checking request files: in this process, or in shares across forked workers (``--jobs``).

Every verdict depends only on its own request (the check keeps no state between lines), so
workers check shares of the input independently (see :mod:`trackguard.shares`); each writes
its JSONL verdicts to a temporary file, and the parent copies those out in input order and
adds up the summaries: the output is the same as one process's, line for line.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from trackguard.audit.readers import splittable
from trackguard.check.inputs import (
    Item,
    Skipped,
    Unreadable,
    iter_requests,
    iter_share,
)
from trackguard.check.judge import Judge
from trackguard.check.summary import Summary
from trackguard.core.verdict import verdict_to_dict
from trackguard.plan.model import Plan
from trackguard.shares import Share, plan_shares, run_shares

_encode = msgspec.json.encode


def check_items(items: Iterable[Item], checker: Judge, out: IO[bytes] | None) -> Summary:
    """The summary of ``items``; with ``out``, one JSON verdict (or unreadable) line each."""
    summary = Summary()
    for item in items:
        if isinstance(item, Skipped):
            summary.skipped += 1
            continue
        if isinstance(item, Unreadable):
            summary.add_unreadable(item.where, item.reason)
            if out is not None:
                out.write(_encode({**item.position(), "unreadable": item.reason}) + b"\n")
            continue
        verdict = checker.check(item.request)
        summary.add(verdict, item.where)
        if out is not None:
            out.write(_encode({**item.position(), **verdict_to_dict(verdict)}) + b"\n")
    return summary


@dataclass
class _Job:
    shares: list[Share]
    plan: Plan | None
    strict: bool
    tmpdir: str | None  # where verdict lines go; None: only the summary is wanted


_job: _Job | None = None  # set before the workers fork; they inherit it


def _work(i: int) -> tuple[Summary, str | None]:
    job = _job
    assert job is not None
    checker = Judge(job.plan, strict=job.strict)
    items = iter_share(job.shares[i])
    if job.tmpdir is None:
        return check_items(items, checker, None), None
    with tempfile.NamedTemporaryFile(dir=job.tmpdir, delete=False, prefix=f"{i}-") as fh:
        return check_items(items, checker, fh), fh.name


def check_jobs(
    files: list[Path], plan: Plan | None, *, strict: bool, jobs: int, out: IO[bytes] | None
) -> Summary:
    """:func:`check_items` over ``files`` in ``jobs`` worker processes, output in order."""
    global _job
    shares = plan_shares(files, jobs, splittable=splittable)
    if shares is None:  # one share, or too little input to be worth a process
        return check_items(iter_requests(files), Judge(plan, strict=strict), out)
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="trackguard-check-") as tmpdir:
        _job = _Job(shares, plan, strict, tmpdir if out is not None else None)
        try:
            for part, lines in run_shares(_work, range(len(shares)), jobs):
                summary.merge(part)
                if out is not None and lines is not None:
                    with open(lines, "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
                    Path(lines).unlink()
        finally:
            _job = None
    return summary
