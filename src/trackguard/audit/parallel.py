"""``audit --jobs N``: the audit in worker processes, merged into the report one job gives.

Each worker audits one share of the input (a file, or a line-aligned byte range of a plain
file; see :mod:`trackguard.shares`) and sends back its censuses. The parent merges them in
input order, so every "first seen" map, example list and dict order comes out as a
sequential run's. What depends on everything before it is not merged but replayed: workers
record the duplicate checks (request hashes, event ids, dedupe keys, messageIds), anonymous
events and the identifies that link them, the capped sets of ids, emails and email/id links,
and each event's first appearance on the timeline; the parent runs those calls through the
real censuses in input order, so their caps are reached where one process reaches them. The
calls spill to a temporary file past :data:`SPILL_OPS`, so a worker's memory stays bounded.

The other caps on distinct values (:class:`~trackguard.audit.caps.Limits`: event names,
events, properties, finding kinds) keep values by their order too; when a worker reaches
one, or merging would, the shares cannot say which values one process would have kept, and
the audit runs again in one process (the report is the same either way; only the time
differs).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import _FULL, MAX_SOURCES, EventCensus, EventStats
from trackguard.audit.duplicates import DuplicateCensus
from trackguard.audit.engine import Auditor
from trackguard.audit.identity import AnonymousCensus, IdentityCensus
from trackguard.audit.readers import FileCounter, Record, Unreadable, read, splittable
from trackguard.audit.tally import Tally
from trackguard.audit.timeline import OTHER, WIDTHS, TimelineCensus, rebucketed
from trackguard.plan.model import Plan
from trackguard.shares import Share, plan_shares

#: Recorded calls a worker holds before writing them to its spill file.
SPILL_OPS: Final = 50_000
#: Timeline series a worker keeps (the parent decides which ones the report draws); past
#: this many events over time the audit runs in one process. Bounds a worker's timeline to
#: ``WORKER_SERIES x Limits.buckets`` counters.
WORKER_SERIES: Final = 1_000

Op = tuple[Any, ...]


class Inexact(Exception):
    """Merging shares would not give the sequential report (a cap decided by order)."""


class _At:
    """Where a replayed call was read (formatted as :attr:`Record.where`)."""

    __slots__ = ("file", "har", "pos")

    def __init__(self, file: str, pos: int, har: bool) -> None:
        self.file, self.pos, self.har = file, pos, har

    @property
    def where(self) -> str:
        return f"{self.file}:entry[{self.pos}]" if self.har else f"{self.file}:{self.pos}"


class OpLog:
    """Order-dependent calls in input order: in memory, then in a spill file."""

    def __init__(self, tmpdir: str) -> None:
        self.ops: list[Op] = []
        self.tmpdir = tmpdir
        self.path: str | None = None

    def add(self, op: Op) -> None:
        ops = self.ops
        ops.append(op)
        if len(ops) >= SPILL_OPS:
            self._spill()

    def _spill(self) -> None:
        if self.path is None:
            fd, self.path = tempfile.mkstemp(prefix="trackguard-ops-", dir=self.tmpdir)
            os.close(fd)
        with open(self.path, "ab") as fh:
            pickle.dump(self.ops, fh, pickle.HIGHEST_PROTOCOL)
        self.ops = []

    def finish(self) -> OpLog:
        if self.path is not None and self.ops:
            self._spill()
        return self

    def replay(self) -> Iterator[Op]:
        """Every op in order; removes the spill file."""
        if self.path is not None:
            try:
                with open(self.path, "rb") as fh:
                    while True:
                        try:
                            batch: list[Op] = pickle.load(fh)
                        except EOFError:
                            break
                        yield from batch
            finally:
                os.unlink(self.path)
        yield from self.ops


class _Duplicates(DuplicateCensus):
    """Records the duplicate checks for the parent to replay."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog) -> None:
        super().__init__(replace(limits, duplicate_window=0), caps)
        self.log = log

    def request_hash(self, h: int, when: int | None, at: Any) -> None:
        self.log.add(("q", h, when, at.pos))

    def event_id(self, value: str, at: Any) -> None:
        self.log.add(("d", value, at.pos))

    def dedupe_key(self, key: str, at: Any) -> None:
        self.log.add(("k", key, at.pos))

    def message_id(self, value: str, at: Any) -> None:
        self.log.add(("g", value, at.pos))


class _Anonymous(AnonymousCensus):
    """Records anonymous events and identifies for the parent to replay."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog) -> None:
        super().__init__(limits, caps)
        self.log = log

    def event(self, anonymous_id: str, when: int | None, at: Any) -> None:
        self.log.add(("e", anonymous_id, when, at.pos))

    def identify(self, anonymous_id: str, when: int | None) -> None:
        self.log.add(("i", anonymous_id, when))


class _Identity(IdentityCensus):
    """Counts identifier kinds; records the capped id, email and link sets' calls."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog) -> None:
        super().__init__(limits, caps)
        self.log = log
        self.id_room = 0  # every id goes through keyed_by_id

    def keyed_by_id(self, h: int) -> None:
        self.log.add(("p", h))

    def keyed_by_email(self, h: int, at: Any) -> None:
        self.log.add(("m", h, at.pos))

    def link(self, email: int, person_id: int) -> None:
        self.log.add(("l", email, person_id))


class _Timeline(TimelineCensus):
    """Counts up to :data:`WORKER_SERIES` series; records each one's first appearance."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog) -> None:
        super().__init__(replace(limits, series=max(limits.series, WORKER_SERIES)), caps)
        self.log = log

    def add(self, name: str, when: int, invalid: bool) -> None:
        if name not in self.total:
            self.log.add(("s", name))
        super().add(name, when, invalid)


@dataclass
class Part:
    """One share's censuses, as sent back by its worker."""

    counter: FileCounter
    har: bool
    pipelines: int
    bad_times: int
    verdicts: dict[tuple[str, int | None], int]
    tallies: list[Tally]
    events: EventCensus
    attributes: EventCensus
    identity: IdentityCensus
    timeline: TimelineCensus
    notes: dict[str, str]
    ops: OpLog


@dataclass
class _Job:
    shares: list[Share]
    plan: Plan | None
    mapping: dict[str, tuple[str, ...]] | None
    now: int
    limits: Limits
    max_line: int
    tmpdir: str


_job: _Job | None = None  # set before the workers fork; they inherit it


def _tallies(a: Auditor) -> list[Tally]:
    return [a.contract, a.warnings, a.violations, a.rejected_by_log, a.disagreements, a.unreadable]


def _zero() -> int:
    return 0


def _audit_share(auditor: Auditor, share: Share, job: _Job) -> FileCounter:
    """Every item of ``share`` through ``auditor``; the share's counter."""
    add, add_unreadable = auditor.add, auditor.add_unreadable
    counter = FileCounter(str(share.path), "")
    items = read(share.path, counter, mapping=job.mapping, max_line=job.max_line, share=share)
    for item in items:
        if type(item) is Record:
            add(item)
        elif type(item) is Unreadable:
            add_unreadable(item)
    return counter


def _work(i: int) -> Part:
    job = _job
    assert job is not None
    share = job.shares[i]
    auditor = Auditor(job.plan, now=job.now, limits=job.limits)
    log = OpLog(job.tmpdir)
    auditor.duplicates = _Duplicates(log, job.limits, auditor.caps)
    auditor.anonymous = _Anonymous(log, job.limits, auditor.caps)
    auditor.identity = _Identity(log, job.limits, auditor.caps)
    auditor.timeline = timeline = _Timeline(log, job.limits, auditor.caps)
    counter = _audit_share(auditor, share, job)
    counter.raw_position = _zero  # a bound method does not cross processes
    return Part(
        counter=counter,
        har=counter.format == "har",
        pipelines=auditor.pipelines,
        bad_times=auditor.bad_times,
        verdicts=auditor.verdicts,
        tallies=_tallies(auditor),
        events=auditor.events,
        attributes=auditor.attribute_census,
        identity=auditor.identity,
        timeline=timeline,
        notes=auditor.caps.notes,
        ops=log.finish(),
    )


def audit_jobs(
    files: list[Path],
    plan: Plan | None,
    *,
    jobs: int,
    mapping: dict[str, tuple[str, ...]] | None,
    now: int,
    limits: Limits,
    max_line: int,
) -> tuple[Auditor, list[FileCounter], float] | None:
    """The merged auditor and per-file counters; None when one process should do it (the
    input is one share, or too small to split, or a cap was reached)."""
    global _job
    started = time.perf_counter()
    shares = plan_shares(files, jobs, splittable=splittable)
    if shares is None:
        return None
    with tempfile.TemporaryDirectory(prefix="trackguard-audit-") as tmpdir:
        _job = job = _Job(shares, plan, mapping, now, limits, max_line, tmpdir)
        context = multiprocessing.get_context("fork")
        workers = min(jobs - 1, len(shares) - 1)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                parts = pool.map(_work, range(1, len(shares)))  # the workers fork now
                # The first share goes through the auditor that becomes the report, in this
                # process: its calls come first in input order, so nothing of it is recorded,
                # pickled or replayed.
                auditor = Auditor(plan, now=now, limits=limits)
                merger = _Merger(auditor, len(files))
                merger.first(shares[0], _audit_share(auditor, shares[0], job))
                exact = True
                for share, part in zip(shares[1:], parts, strict=True):
                    if exact:
                        try:
                            merger.add(share, part)
                        except Inexact:
                            exact = False
                    if not exact and part.ops.path is not None:
                        os.unlink(part.ops.path)
        finally:
            _job = None
        if not exact:
            return None
    merger.finish()
    return auditor, merger.counters(files), time.perf_counter() - started


class _Merger:
    """Folds parts into one :class:`Auditor`, in input order."""

    def __init__(self, auditor: Auditor, files: int) -> None:
        self.a = auditor
        self.files: list[FileCounter | None] = [None] * files
        self.admitted: set[str] = set()  # timeline series a sequential run would draw
        self.folded: set[str] = set()  # ... and those it would draw as OTHER

    def first(self, share: Share, counter: FileCounter) -> None:
        """The first share, audited by the merged auditor itself."""
        counter.raw_position = _zero  # its file is closed
        self.files[share.index] = counter
        self.admitted.update(self.a.timeline.total)  # its series (and OTHER, if it drew one)

    def add(self, share: Share, part: Part) -> None:
        if part.notes:
            raise Inexact
        a = self.a
        a.pipelines += part.pipelines
        a.bad_times += part.bad_times
        _add_counts(a.verdicts, part.verdicts)
        for mine, theirs in zip(_tallies(a), part.tallies, strict=True):
            _merge_tally(mine, theirs)
        _merge_events(a.events, part.events)
        _merge_events(a.attribute_census, part.attributes)
        _merge_identity(a.identity, part.identity)
        _merge_timeline(a.timeline, part.timeline)
        self._replay(str(share.path), part)
        counter = self.files[share.index]
        if counter is None:
            self.files[share.index] = part.counter
        else:
            for name in ("bytes", "records", "readable", "unreadable", "skipped", "blank"):
                setattr(counter, name, getattr(counter, name) + getattr(part.counter, name))

    def _replay(self, file: str, part: Part) -> None:
        dup, anon, ident = self.a.duplicates, self.a.anonymous, self.a.identity
        timeline = self.a.timeline
        series = timeline.limits.series
        admitted, folded = self.admitted, self.folded
        at = _At(file, 0, part.har)  # one for every call: the censuses keep only at.where
        request_hash, keyed_by_id = dup.request_hash, ident.keyed_by_id
        by_id, window = ident.by_id, dup.seen_requests
        for op in part.ops.replay():
            kind = op[0]  # the most frequent kinds first
            if kind == "p":
                if len(by_id) < ident.id_room:  # keyed_by_id's common case, inlined
                    by_id.add(op[1])
                else:
                    keyed_by_id(op[1])
            elif kind == "q":
                h, when = op[1], op[2]
                seen = window.map  # request_hash's common case, inlined
                if h not in seen and len(seen) < window.limit:
                    seen[h] = when if when is not None else -1
                else:
                    at.pos = op[3]
                    request_hash(h, when, at)
            elif kind == "d":
                at.pos = op[2]
                dup.event_id(op[1], at)
            elif kind == "k":
                at.pos = op[2]
                dup.dedupe_key(op[1], at)
            elif kind == "g":
                at.pos = op[2]
                dup.message_id(op[1], at)
            elif kind == "e":
                at.pos = op[3]
                anon.event(op[1], op[2], at)
            elif kind == "i":
                anon.identify(op[1], op[2])
            elif kind == "m":
                at.pos = op[2]
                ident.keyed_by_email(op[1], at)
            elif kind == "l":
                ident.link(op[1], op[2])
            else:  # "s": an event's first bucket; the sequential census caps series here
                name = op[1]
                if name in admitted or name in folded:
                    continue
                if len(admitted) < series:
                    admitted.add(name)
                else:
                    timeline.series_full()
                    folded.add(name)
                    admitted.add(OTHER)

    def finish(self) -> None:
        """Draw the series a sequential run would have drawn as OTHER, as OTHER."""
        timeline = self.a.timeline
        for table in (timeline.total, timeline.invalid):
            for name in self.folded:
                counts = table.pop(name, None)
                if counts is not None:
                    _add_counts(table.setdefault(OTHER, {}), counts)

    def counters(self, files: list[Path]) -> list[FileCounter]:
        return [
            c if c is not None else FileCounter(str(p), "")
            for c, p in zip(self.files, files, strict=True)
        ]


def _add_counts(into: dict[Any, int], more: dict[Any, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _extend(into: list[Any], more: list[Any], limit: int) -> None:
    if len(into) < limit:
        into.extend(more[: limit - len(into)])


def _merge_counted(
    a: dict[Any, int],
    b: dict[Any, int],
    limit: int,
    firsts: tuple[dict[Any, str], dict[Any, str]] | None = None,
) -> None:
    """Counts of the first ``limit`` distinct keys (with where each was first seen)."""
    for key, n in b.items():
        if key in a:
            a[key] += n
        elif len(a) < limit:
            a[key] = n
            if firsts is not None:
                firsts[0][key] = firsts[1][key]
        else:
            raise Inexact


def _merge_tally(a: Tally, b: Tally) -> None:
    _merge_counted(a.counts, b.counts, a.limit)
    for key, examples in b.examples.items():
        if examples:
            _extend(a.examples.setdefault(key, []), examples, a.per_key)


def _merge_events(a: EventCensus, b: EventCensus) -> None:
    limits = a.limits
    _merge_counted(a.names, b.names, limits.event_names, (a.first_where, b.first_where))
    for name, key in b.keys.items():
        a.keys.setdefault(name, key)
    for kind, examples in b.stamp_examples.items():
        got = a.stamp_examples.setdefault(kind, [])
        _extend(got, examples, limits.examples)
        if len(got) >= limits.examples:
            a.full_examples.add(kind)
    for key, stats in b.events.items():
        mine = a.events.get(key)
        if mine is None:
            if len(a.events) >= limits.event_keys:
                raise Inexact
            a.events[key] = stats
        else:
            _merge_stats(mine, stats, limits)
    a.uncounted += b.uncounted
    _add_counts(a.formats, b.formats)
    _add_counts(a.ages, b.ages)
    a.recent_seconds += b.recent_seconds


def _merge_stats(a: EventStats, b: EventStats, limits: Limits) -> None:
    a.settle()
    b.settle()
    a.count += b.count
    for source in b.sources:
        if len(a.sources) >= MAX_SOURCES:
            break
        a.sources.setdefault(source, None)
    _merge_counted(a.seen, b.seen, limits.properties_per_event, (a.firsts, b.firsts))
    for key, values in b.strings.items():
        mine = a.strings.get(key)
        if mine is None:
            a.strings[key] = values
        elif mine is not _FULL:
            union = _FULL if values is _FULL else mine | values
            a.strings[key] = _FULL if len(union) > limits.enum_values else union
    _add_counts(a.emails, b.emails)
    _add_counts(a.stamps, b.stamps)


def _merge_identity(a: IdentityCensus, b: IdentityCensus) -> None:
    _add_counts(a.other_kinds, b.other_kinds)
    a.numeric_ids += b.numeric_ids
    a.text_ids += b.text_ids
    _add_counts(a.body_id_types, b.body_id_types)
    for shape, examples in b.shape_examples.items():
        _extend(a.shape_examples[shape], examples, 3)
    a.email_in_id += b.email_in_id
    _extend(a.email_in_id_examples, b.email_in_id_examples, 3)


def _merge_timeline(a: TimelineCensus, b: TimelineCensus) -> None:
    if b.lo is None or b.hi is None:
        return
    width = max(a.width_index, b.width_index)
    new = WIDTHS[width]
    _rebucket(a, new)
    totals, invalid = rebucketed(b.total, b.width, new), rebucketed(b.invalid, b.width, new)
    lo, hi = b.lo * b.width // new, b.hi * b.width // new
    a.width_index = width
    a.lo = lo if a.lo is None else min(a.lo, lo)
    a.hi = hi if a.hi is None else max(a.hi, hi)
    for table, more in ((a.total, totals), (a.invalid, invalid)):
        for name, counts in more.items():
            _add_counts(table.setdefault(name, {}), counts)
    if a.hi - a.lo + 1 > a.limits.buckets:
        a._widen()
        if "buckets" in a.caps.notes:
            raise Inexact


def _rebucket(t: TimelineCensus, new: int) -> None:
    old = t.width
    if old == new or t.lo is None or t.hi is None:
        return
    t.total = rebucketed(t.total, old, new)
    t.invalid = rebucketed(t.invalid, old, new)
    t.lo, t.hi = t.lo * old // new, t.hi * old // new
