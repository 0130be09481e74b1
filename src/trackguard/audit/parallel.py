"""``audit --jobs N``: the audit in worker processes, merged into the report one job gives.

Each worker audits one share of the input (a file, or a line-aligned byte range of a plain
file; see :mod:`trackguard.shares`) and sends back its censuses. The parent merges them in
input order, so every "first seen" map, example list and dict order comes out as a
sequential run's.

What depends on everything before it needs more than adding up:

- The capped maps whose contents decide later findings: the duplicate windows (request
  hashes, event ids, dedupe keys, messageIds) and the sets of ids, emails and email/id links.
  While none reaches its cap, one process keeps every value, so a worker keeps its share's
  from empty and the parent merges them: unions in input order, with a key the window
  already holds counted as the repeat the share could not see, at its first call in the
  share (workers note where each key was first seen, and the order of their examples, so
  examples, retry bursts and messageId copy numbers come out as one pass finds them). A
  share whose maps would reach a cap merged (:class:`Unmerged`) is audited again in the
  parent, with those maps recorded.
- A worker projects each of those maps' growth over the whole input as it reads (every
  :data:`PROJECT_EVERY` records, and at the end); one bound for :data:`PROJECT_SHARE` of its
  cap is *recorded* instead (the share starts again): the worker writes its calls down in
  input order and the parent replays them through the real censuses, so the cap is reached
  where one process reaches it. Anonymous events with the identifies that link them, and
  each event's first appearance on the timeline, are always recorded. Recorded calls spill
  to a temporary file past :data:`SPILL_OPS`, so a worker's memory stays bounded.

The other caps on distinct values (:class:`~trackguard.audit.caps.Limits`: event names,
events, properties, finding kinds) keep values by their order too; when a worker reaches
one, or merging would, the shares cannot say which values one process would have kept, and
the audit runs again in one process (the report is the same either way; only the time
differs).

The parent freezes its objects out of the cyclic collector (``gc.freeze``) before the
workers fork: a collection in either process would otherwise write to every tracked
object's header and copy the pages they share.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import pickle
import tempfile
import time
from array import array
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.census import _FULL, MAX_SOURCES, EventCensus, EventStats
from trackguard.audit.duplicates import (
    DuplicateCensus,
    SeenWindow,
    id_detail,
    is_burst,
    key_detail,
    message_detail,
    request_detail,
)
from trackguard.audit.engine import Auditor
from trackguard.audit.identity import AnonymousCensus, IdentityCensus
from trackguard.audit.model import Example
from trackguard.audit.readers import FileCounter, Record, Unreadable, read, splittable
from trackguard.audit.tally import Tally
from trackguard.audit.timeline import OTHER, WIDTHS, TimelineCensus, rebucketed
from trackguard.plan.model import Plan
from trackguard.shares import Share, plan_shares

#: The duplicate kinds (the census's ``examples``), in :func:`_windows`' order.
_KINDS: Final = ("requests", "ids", "keys", "messages")
#: Recorded calls a worker holds before writing them to its spill file.
SPILL_OPS: Final = 50_000
#: Records a worker audits between looks at how fast its capped maps grow.
PROJECT_EVERY: Final = 4096
#: A map projected to reach this share of its cap over the whole input is recorded and
#: replayed rather than merged (a merge that would reach a cap runs the audit again).
PROJECT_SHARE: Final = 0.9
#: Timeline series a worker keeps (the parent decides which ones the report draws); past
#: this many events over time the audit runs in one process. Bounds a worker's timeline to
#: ``WORKER_SERIES x Limits.buckets`` counters.
WORKER_SERIES: Final = 1_000

Op = tuple[Any, ...]


class Inexact(Exception):
    """Merging shares would not give the sequential report (a cap decided by order)."""


class Unmerged(Exception):
    """A share's capped maps would reach their caps, as projected while a worker reads it or
    when the parent would merge them (nothing merged yet): audit it again with them recorded."""

    def __init__(self, kinds: frozenset[str]) -> None:
        super().__init__(kinds)
        self.kinds = kinds


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

    def discard(self) -> None:
        """Remove the spill file, if any: these calls will not be replayed."""
        if self.path is not None:
            os.unlink(self.path)
            self.path = None

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
                self.discard()
        yield from self.ops


class _Duplicates(DuplicateCensus):
    """The duplicate checks of one share: those of each kind in :attr:`record` are recorded for
    the parent to replay; the others are counted here as one process would, from an empty
    window, with what the parent needs to reconcile them with the shares before (see
    :func:`_merge_duplicates`): where and with what each key was first seen here
    (``firsts``), and the order of each example kept (``example_seqs``).

    A new request hash takes the auditor's inlined path; :func:`_attempt` notes its position
    after the record (one request hash at most per record, so positions order them)."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog, record: frozenset[str]) -> None:
        super().__init__(limits, caps)
        self.log = log
        self.window = limits.duplicate_window
        self.record = record  # (a recorded window stays empty)
        if "q" in record:
            self.seen_requests.limit = 0  # every request reaches request_hash
        self.seq = 0  # event id, key and messageId calls so far (orders their examples)
        #: A first sighting of an event id, key or messageId found its window full and was
        #: dropped (one process evicts instead): the share does not merge. The projection at
        #: the end of :func:`_attempt` records such a map first (at a :data:`PROJECT_SHARE` up
        #: to 1), but the merge does not rest on that estimate: when the earlier shares' window
        #: holds no key this one lacks, the merge's cap checks pass, and only this says keys
        #: were dropped. (A full request window evicts and notes its cap, as one process does:
        #: such a part does not merge either.)
        self.overflow = False
        #: request hash -> position of its first record here
        self.first_pos: dict[int, int] = {}
        #: the window's keys, times and first positions, as :meth:`pack` sends them
        self.packed: tuple[array[int], array[int], array[int], array[int]] | None = None
        #: request hash -> log time of its first record here, for those seen again here
        #: (the others' only time is the window's)
        self.first_when: dict[int, int] = {}
        #: kind -> key hash -> (seq, position, value) of its first call here
        self.firsts: dict[str, dict[int, tuple[int, int, str]]] = {
            kind: {} for kind in _KINDS if kind != "requests"
        }
        #: kind -> (seq or position, key hash, copy, messageId) of each example kept
        self.example_seqs: dict[str, list[tuple[int, int, int, str]]] = {
            kind: [] for kind in _KINDS
        }

    def pack(self) -> None:
        """The request window and the first positions as arrays: pickled as blocks of bytes,
        where dicts pickle key by key (most of a part's bytes)."""
        seen, first = self.seen_requests.map, self.first_pos
        self.packed = (
            array("q", list(seen)),  # from a list: an array takes any other iterable slowly
            array("q", list(seen.values())),
            array("q", list(first)),
            array("q", list(first.values())),
        )
        self.seen_requests.map, self.first_pos = {}, {}

    def unpack(self) -> None:
        """The request window again (the first positions on demand: :meth:`first_positions`)."""
        if self.packed is not None:
            keys, times, _, _ = self.packed
            self.seen_requests.map = dict(zip(keys, times, strict=True))

    def first_positions(self) -> dict[int, int]:
        """Request hash -> position of its first record here."""
        if self.packed is not None and not self.first_pos:
            _, _, keys, positions = self.packed
            self.first_pos = dict(zip(keys, positions, strict=True))
        return self.first_pos

    def request_hash(self, h: int, when: int | None, at: Any) -> None:
        if "q" in self.record:
            self.log.add(("q", h, when, at.pos))
            return
        before = self.seen_requests.map.get(h)
        if before is not None and h not in self.first_when:
            self.first_when[h] = before
        kept = len(self.examples["requests"])
        super().request_hash(h, when, at)
        if len(self.examples["requests"]) > kept:
            self.example_seqs["requests"].append((at.pos, h, 0, ""))

    def _again(
        self, kind: str, h: int, at: Any, detail: str, copy: int = 0, value: str = ""
    ) -> None:
        """A repeat of ``h`` within this share (``copy``: a messageId's copy here)."""
        if len(self.examples[kind]) < 3:
            self.example_seqs[kind].append((self.seq, h, copy, value))
            self._example(kind, at, detail)

    def _repeat(
        self, kind: str, seen: dict[int, int], value: str, at: Any, step: int = 0
    ) -> tuple[int, int] | None:
        """The hash of ``value`` and what ``seen`` held for it when this share saw it before
        (moved to the end of ``seen``, ``step`` more), else None: a first sighting, kept as
        ``step`` while the window has room. (A messageId's copies are counted with ``step``
        1; event ids and keys keep 0, as one process does.)"""
        self.seq = seq = self.seq + 1
        h = hash(value)
        before = seen.pop(h, None)
        if before is None:
            if len(seen) < self.window:
                seen[h] = step
                self.firsts[kind][h] = (seq, at.pos, value)
            else:
                self.overflow = True
            return None
        seen[h] = before + step  # re-inserted: the map stays ordered by last sighting
        return h, before

    def event_id(self, value: str, at: Any) -> None:
        if "d" in self.record:
            self.log.add(("d", value, at.pos))
        elif (again := self._repeat("ids", self.seen_ids.map, value, at)) is not None:
            self.ids += 1
            self._again("ids", again[0], at, id_detail(value))

    def dedupe_key(self, key: str, at: Any) -> None:
        if "k" in self.record:
            self.log.add(("k", key, at.pos))
        elif (again := self._repeat("keys", self.seen_keys.map, key, at)) is not None:
            self.keys += 1
            self._again("keys", again[0], at, key_detail(key))

    def message_id(self, value: str, at: Any) -> None:
        if "g" in self.record:
            self.log.add(("g", value, at.pos))
            return
        self.message_calls += 1
        again = self._repeat("messages", self.seen_messages.map, value, at, 1)
        if again is None:
            return
        h, copies = again
        self.messages += 1
        if copies == 1:
            self.message_ids += 1
        self._again("messages", h, at, message_detail(value, copies + 1), copies + 1, value)


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
    """Counts identifier kinds; records the calls of the capped id, email and link sets in
    :attr:`record` (the others it keeps as one process would, for the parent to merge)."""

    def __init__(self, log: OpLog, limits: Limits, caps: CapLog, record: frozenset[str]) -> None:
        super().__init__(limits, caps)
        self.log = log
        self.record = record  # (a recorded set stays empty)
        if "p" in record:
            self.id_room = 0  # every id goes through keyed_by_id

    def keyed_by_id(self, h: int) -> None:
        if "p" in self.record:
            self.log.add(("p", h))
        else:
            super().keyed_by_id(h)

    def keyed_by_email(self, h: int, at: Any) -> None:
        if "m" in self.record:
            self.log.add(("m", h, at.pos))
        else:
            super().keyed_by_email(h, at)

    def link(self, email: int, person_id: int) -> None:
        if "l" in self.record:
            self.log.add(("l", email, person_id))
        else:
            super().link(email, person_id)


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
    identity: _Identity
    duplicates: _Duplicates
    timeline: TimelineCensus
    notes: dict[str, str]
    ops: OpLog
    record: frozenset[str]  # the capped maps whose calls are in ``ops`` (the rest merge)


@dataclass
class _Job:
    shares: list[Share]
    plan: Plan | None
    mapping: dict[str, tuple[str, ...]] | None
    now: int
    limits: Limits
    max_line: int
    tmpdir: str
    total: int  # bytes of all the input files


_job: _Job | None = None  # set before the workers fork; they inherit it


def _tallies(a: Auditor) -> list[Tally]:
    return [a.contract, a.warnings, a.violations, a.rejected_by_log, a.disagreements, a.unreadable]


def _zero() -> int:
    return 0


def _audit_share(
    auditor: Auditor,
    share: Share,
    job: _Job,
    counter: FileCounter,
    add: Callable[[Record], None] | None = None,
) -> None:
    """Every item of ``share`` through ``auditor``, counted in ``counter`` (its records through
    ``add`` when given: ``auditor.add`` and more)."""
    add_record, add_unreadable = add or auditor.add, auditor.add_unreadable
    items = read(share.path, counter, mapping=job.mapping, max_line=job.max_line, share=share)
    for item in items:
        if type(item) is Record:
            add_record(item)
        elif type(item) is Unreadable:
            add_unreadable(item)


def _windows(d: DuplicateCensus) -> tuple[tuple[str, str, SeenWindow], ...]:
    """Each duplicate window of ``d``: its letter (in a share's ``record``, and its recorded
    calls), its kind (:data:`_KINDS`, the keys of ``examples``), and itself."""
    windows = (d.seen_requests, d.seen_ids, d.seen_keys, d.seen_messages)
    return tuple(zip("qdkg", _KINDS, windows, strict=True))


def _sizes(a: Auditor) -> dict[str, tuple[int, int]]:
    """Each merged capped map's size and cap."""
    window, ids = a.limits.duplicate_window, a.limits.identifiers
    sizes = {letter: (len(w.map), window) for letter, _, w in _windows(a.duplicates)}
    ident = a.identity
    sizes.update(p=(len(ident.by_id), ids), m=(len(ident.by_email), ids), l=(len(ident.links), ids))
    return sizes


def _growing(a: Auditor, record: frozenset[str], done: int, total: int) -> frozenset[str]:
    """The maps not yet recorded that, growing as they did over the first ``done`` of
    ``total`` bytes, would reach :data:`PROJECT_SHARE` of their caps by the end."""
    done = max(done, 1)
    return frozenset(
        kind
        for kind, (size, cap) in _sizes(a).items()
        if kind not in record and size * total >= PROJECT_SHARE * cap * done
    )


def _work(i: int, record: frozenset[str] = frozenset()) -> Part:
    """Share ``i`` audited; its capped maps merged, or recorded (those in ``record``, and
    those found while reading to grow toward their caps: the share starts again)."""
    while True:
        try:
            return _attempt(i, record)
        except Unmerged as more:
            record |= more.kinds


def _attempt(i: int, record: frozenset[str]) -> Part:
    job = _job
    assert job is not None
    share = job.shares[i]
    auditor = Auditor(job.plan, now=job.now, limits=job.limits)
    log = OpLog(job.tmpdir)
    auditor.duplicates = duplicates = _Duplicates(log, job.limits, auditor.caps, record)
    auditor.anonymous = _Anonymous(log, job.limits, auditor.caps)
    auditor.identity = identity = _Identity(log, job.limits, auditor.caps, record)
    auditor.timeline = timeline = _Timeline(log, job.limits, auditor.caps)
    audit = auditor.add
    requests = duplicates.seen_requests.map  # replaced only when it evicts: then no merge
    first_pos = duplicates.first_pos
    n = known = 0
    counter = FileCounter(str(share.path), "")

    def add(item: Record) -> None:
        """``auditor.add``, noting where each request hash was first seen, and every
        :data:`PROJECT_EVERY` records whether a map grows toward its cap."""
        nonlocal n, known
        audit(item)
        if len(requests) != known:  # a new request hash: the map's last key
            known = len(requests)
            first_pos[next(reversed(requests))] = item.pos
        n += 1
        if not n % PROJECT_EVERY:
            done = counter.raw_position() - share.start  # 0: a HAR file, unknown
            grows = _growing(auditor, record, done, job.total) if done > 0 else None
            if grows:
                raise Unmerged(grows)

    try:
        _audit_share(auditor, share, job, counter, add)
        size = (share.end if share.end is not None else share.path.stat().st_size) - share.start
        grows = _growing(auditor, record, size, job.total)
        if grows:
            raise Unmerged(grows)
    except Unmerged:
        log.discard()
        raise
    counter.raw_position = _zero  # a bound method does not cross processes
    duplicates.pack()
    return Part(
        counter=counter,
        har=counter.format == "har",
        pipelines=auditor.pipelines,
        bad_times=auditor.bad_times,
        verdicts=auditor.verdicts,
        tallies=_tallies(auditor),
        events=auditor.events,
        attributes=auditor.attribute_census,
        identity=identity,
        duplicates=duplicates,
        timeline=timeline,
        notes=auditor.caps.notes,
        ops=log.finish(),
        record=record,
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
        total = sum(p.stat().st_size for p in files)
        _job = job = _Job(shares, plan, mapping, now, limits, max_line, tmpdir, total)
        context = multiprocessing.get_context("fork")
        workers = min(jobs - 1, len(shares) - 1)
        gc.freeze()  # no collection touches (and copies) the pages the workers share
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                parts = pool.map(_work, range(1, len(shares)))  # the workers fork now
                # The first share goes through the auditor that becomes the report, in this
                # process: its calls come first in input order, so nothing of it is recorded,
                # pickled or replayed.
                auditor = Auditor(plan, now=now, limits=limits)
                merger = _Merger(auditor, len(files))
                counter = FileCounter(str(shares[0].path), "")
                _audit_share(auditor, shares[0], job, counter)
                merger.first(shares[0], counter)
                exact = True
                for i, (share, part) in enumerate(zip(shares[1:], parts, strict=True), 1):
                    if exact:
                        exact = _merged(merger, i, share, part)
                    else:
                        part.ops.discard()
        finally:
            _job = None
            gc.unfreeze()
        if not exact:
            return None
    merger.finish()
    return auditor, merger.counters(files), time.perf_counter() - started


def _merged(merger: _Merger, i: int, share: Share, part: Part) -> bool:
    """Whether share ``i``'s part merged (one that did not has its spill file removed)."""
    try:
        try:
            merger.add(share, part)
        except Unmerged as more:
            # The maps the worker kept would reach their caps here: this share again, in this
            # process, with them recorded.
            part.ops.discard()
            part = _work(i, part.record | more.kinds)
            merger.add(share, part)
    except (Inexact, Unmerged):  # (Unmerged: the second time)
        part.ops.discard()
        return False
    return True


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
        part.duplicates.unpack()
        capped = _capped(a, part)
        if capped:
            raise Unmerged(capped)
        a.pipelines += part.pipelines
        a.bad_times += part.bad_times
        _add_counts(a.verdicts, part.verdicts)
        for mine, theirs in zip(_tallies(a), part.tallies, strict=True):
            _merge_tally(mine, theirs)
        _merge_events(a.events, part.events)
        _merge_events(a.attribute_census, part.attributes)
        _merge_identity(a.identity, part.identity)
        _merge_people(a.identity, part.identity)
        _merge_duplicates(a.duplicates, part.duplicates, str(share.path), part.har)
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


def _capped(a: Auditor, part: Part) -> frozenset[str]:
    """The maps the share kept that would reach their caps merged: the merges that follow
    (:func:`_merge_people`, :func:`_merge_duplicates`) rest on this having found none."""
    out = set()
    ident, theirs = a.identity, part.identity
    limit = ident.limit
    by_id, by_email, links = theirs.by_id, theirs.by_email, theirs.links
    # At its cap the id set notes the cap at one more id, even a known one, and the link map
    # drops one more link, even a known email's: they reach it at the cap, emails past it.
    # (A recorded map is empty: it adds nothing.)
    if by_id and len(ident.by_id) + _new(by_id, ident.by_id) >= limit:
        out.add("p")
    if by_email and len(ident.by_email) + _new(by_email, ident.by_email) > limit:
        out.add("m")
    if links and len(ident.links) + _new(links, ident.links) >= limit:
        out.add("l")
    for (letter, _, window), (_, _, kept) in zip(
        _windows(a.duplicates), _windows(part.duplicates), strict=True
    ):
        if len(window.map) + _new(kept.map, window.map) > window.limit:
            out.add(letter)
    return frozenset(out)


def _new(keys: Iterable[int], known: Container[int]) -> int:
    """How many of ``keys`` are not ``known``."""
    return sum(1 for h in keys if h not in known)


def _merge_people(a: IdentityCensus, b: _Identity) -> None:
    """The id, email and link sets a share kept (a recorded one is empty): one process's,
    since none reaches its cap merged (:func:`_capped`)."""
    a.by_id |= b.by_id
    by_email = a.by_email
    for h, where in b.by_email.items():  # in order of first sighting
        if h not in by_email:
            by_email[h] = where
    a.links.update(b.links)  # a known email keeps its place and takes the share's last id


def _merge_duplicates(a: DuplicateCensus, b: _Duplicates, file: str, har: bool) -> None:
    """The duplicate windows a share kept (not recorded), as if its calls had come after the
    shares before; none reaches its cap merged (:func:`_capped`: one that would evicts by
    order).

    A key the share saw first that the window already holds is a repeat the share could not
    see: counted here, at its first call in the share (``firsts``), with a retry burst when
    that call came within a minute of the window's last sighting
    (:func:`~trackguard.audit.duplicates.is_burst`). Examples are the first three repeats in
    input order: the share's own and those, ordered by call."""
    if b.overflow:  # the share dropped keys its full window had no room for
        raise Inexact
    for (_, kind, window), (_, _, theirs) in zip(_windows(a), _windows(b), strict=True):
        if not theirs.map:  # (as is a recorded window)
            continue
        seen, more = window.map, theirs.map
        again = [h for h in more if h in seen]
        examples = a.examples[kind]
        if len(examples) < 3:
            _merge_examples(kind, examples, b, again, seen, file, har)
        if kind == "requests":
            a.requests += b.requests + len(again)
            a.bursts += b.bursts
            for h in again:
                if is_burst(seen[h], b.first_when.get(h, more[h])):
                    a.bursts += 1
        elif kind == "ids":
            a.ids += b.ids + len(again)
        elif kind == "keys":
            a.keys += b.keys + len(again)
        else:
            a.messages += b.messages + len(again)
            a.message_ids += b.message_ids
            for h in again:
                # one process counts a messageId when its second copy arrives
                a.message_ids += (seen[h] == 1) - (more[h] >= 2)
        counts = {h: seen.pop(h) for h in again}  # the map stays ordered by last sighting
        if kind == "messages":
            for h, n in more.items():
                seen[h] = counts.get(h, 0) + n
        else:
            seen.update(more)
    if "g" not in b.record:
        a.message_calls += b.message_calls


def _merge_examples(
    kind: str,
    examples: list[Example],
    b: _Duplicates,
    again: list[int],
    seen: dict[int, int],
    file: str,
    har: bool,
) -> None:
    """The share's first repeats of ``kind`` in call order, until three are kept."""
    room = 3 - len(examples)
    found: list[tuple[int, Example]] = []
    for (seq, h, copy, value), example in zip(b.example_seqs[kind], b.examples[kind], strict=True):
        if kind == "messages" and h in seen:  # the copy's number counts the earlier shares'
            example = Example(example.where, message_detail(value, seen[h] + copy))
        found.append((seq, example))
    if kind == "requests":
        first_pos, more = b.first_positions(), b.seen_requests.map
        for h in heapq.nsmallest(room, again, key=first_pos.__getitem__):
            before, when = seen[h], b.first_when.get(h, more[h])
            detail = request_detail(when - before if is_burst(before, when) else None)
            found.append((first_pos[h], Example(_At(file, first_pos[h], har).where, detail)))
    else:
        firsts = b.firsts[kind]
        for h in heapq.nsmallest(room, again, key=lambda h: firsts[h][0]):
            seq, pos, x = firsts[h]
            where = _At(file, pos, har).where
            if kind == "ids":
                detail = id_detail(x)
            elif kind == "keys":
                detail = key_detail(x)
            else:
                detail = message_detail(x, seen[h] + 1)
            found.append((seq, Example(where, detail)))
    found.sort(key=lambda f: f[0])
    examples.extend(example for _, example in found[:room])


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
