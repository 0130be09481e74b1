"""Backfill: historical rows → Track API requests → the core → the store's outbox.

Each source row becomes one v1 request (an event ``POST /api/v1/customers/{id}/events`` or an
identify ``PUT /api/v1/customers/{id}``), is checked by the same :class:`Checker` as live traffic
(timeliness is not judged: the rows are historical by design) against the identity state the
store holds (loaded once, then updated after each batch commit, as the gateway does) and
committed with :func:`~trackguard.ingest.to_write` in batches of ``batch_size``. Delivery then
sends the outbox, rate-limited, like any other traffic.

With a Pipelines target (``--as pipelines:track:NAME``, see :mod:`.target`) each row becomes
one Pipelines call instead (``userId`` or ``anonymousId`` from the mapping's person, the payload
as ``properties`` or ``traits``, a group's ``groupId``, an alias's ``previousId``, an ISO-8601
``timestamp``), with a ``messageId`` derived from the source's name, the row's number and the
call itself, so a rerun or a ``restart`` sends the same messageIds and dedupe drops them. It is
judged and converted as the gateway's Pipelines door does it
(:func:`trackguard.ingest.decide_pipelines`) and delivered to the Pipelines upstream.

The store is SQLite or PostgreSQL. Resumable: with each batch the number of source rows done is
saved in the store's ``meta`` table (in the batch's own commit) under a key derived from the
source's identity, so a rerun skips them. The plan's dedupe
keys (``order_completed`` on ``data.order_id``) make an order seen twice harmless anyway, and a
``restart`` does not quarantine again a rejected row the quarantine already holds (same source
row, same body).

Each row read is counted once: accepted, fixed, warned, rejected, duplicate (accepted, but every
event it carries was sent already) or skipped, so those six add up to ``rows_read``.

Example::

    from trackguard.plan.loader import load_plan
    from trackguard.recovery.backfill import backfill
    from trackguard.recovery.mapping import load_mapping
    from trackguard.store.sqlite import SQLiteStore

    store = SQLiteStore("trackguard.db")
    report = backfill(
        "orders.csv.gz",
        store=store,
        mapping=load_mapping("orders.map.yaml"),
        event="order_completed",
        plan=load_plan("plan.yaml"),
    )
    print(report.accepted, report.duplicates, report.rows_per_second)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate
from trackguard.contract.pipelines.operations import payload_key
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.durations import iso_time
from trackguard.ingest import decide_pipelines, to_write
from trackguard.plan.model import DedupePolicy, Plan
from trackguard.recovery.dedupe import all_duplicates, claim_holder, conflicting_row
from trackguard.recovery.mapping import Mapping, RowError
from trackguard.recovery.sources import Source, SourceRow, open_source
from trackguard.recovery.target import Target
from trackguard.store.base import OutboxRow, Store, Write
from trackguard.store.sql import session
from trackguard.store.sqlite import SQLiteStore
from trackguard.store.view import GatewayState

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

OnError = Literal["skip", "stop"]
#: Progress callback: ``(rows done, source position, source total)`` after each batch.
Progress = Callable[[int, int | None, int | None], None]

#: Row problems kept on the report (all are counted).
MAX_PROBLEMS: Final = 1000
_HEADERS: Final = (("content-type", "application/json"),)
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A source row that could not be mapped."""

    row: int
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.message}"


@dataclass(slots=True)
class BackfillReport:
    """What one run did. Counts are of this run's rows (``resumed_from`` rows were skipped);
    ``accepted + fixed + warned + rejected + duplicates + skipped == rows_read``,
    ``already_quarantined`` of the rejected rows were kept from an earlier run, not again, and
    ``dedupe_conflicts`` of them were kept because another person holds their dedupe key."""

    source: str
    resumed_from: int = 0
    rows_read: int = 0
    accepted: int = 0
    fixed: int = 0
    warned: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0
    already_quarantined: int = 0
    dedupe_conflicts: int = 0
    seconds: float = 0.0
    stopped: bool = False
    complete: bool = False
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def rows_done(self) -> int:
        """Source rows done, including those of earlier runs."""
        return self.resumed_from + self.rows_read

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "resumed_from": self.resumed_from,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "fixed": self.fixed,
            "warned": self.warned,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "already_quarantined": self.already_quarantined,
            "dedupe_conflicts": self.dedupe_conflicts,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "stopped": self.stopped,
            "complete": self.complete,
            "problems": [str(p) for p in self.problems],
        }


#: The report field a row is counted under, by its verdict's outcome.
_COUNTED: Final = {
    "rejected": "rejected",
    "invalid": "rejected",
    "fixed": "fixed",
    "warned": "warned",
}


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def _quarantined(store: SQLiteStore | PostgresStore, label: str) -> set[tuple[str | None, bytes]]:
    """``(source, body digest)`` of the quarantine records an earlier backfill of ``label``
    kept (digests: a large quarantine's bodies need not fit in memory). A prefix test, not a
    range: PostgreSQL compares text by the database's collation, which may ignore ``:``."""
    prefix = label + ":"
    sql = "SELECT source, body FROM quarantine WHERE substr(source, 1, ?) = ?"
    with session(store) as s:  # a read beside the store's own connections
        rows = s.rows(sql, (len(prefix), prefix))
    return {(source, _digest(bytes(body))) for source, body in rows}


def checkpoint_key(source_identity: str, what: str) -> str:
    """The ``meta`` key a backfill of this source (as this event/identify) is saved under."""
    digest = hashlib.sha256(f"{source_identity}\0{what}".encode()).hexdigest()[:24]
    return f"backfill:{digest}"


def read_checkpoint(store: Store, key: str) -> dict[str, Any] | None:
    """The checkpoint saved under ``key`` (:func:`checkpoint_key`), or None."""
    raw = store.meta_value(key)
    if raw is None:
        return None
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else None


def build_request(mapping: Mapping, event: str | None, row: dict[str, Any], source: str) -> Request:
    """The Track API v1 request for one source row (RowError if it cannot be mapped)."""
    person, ts, data = mapping.apply(row)
    assert person is not None  # a Track API mapping always has one
    path = "/api/v1/customers/" + quote(person, safe="@")
    body: dict[str, Any]
    if event is not None:
        body = {"name": event, "data": data}
        if ts is not None:
            body["timestamp"] = ts
        return Request(
            method="POST",
            path=path + "/events",
            body=_encode(body),
            headers=_HEADERS,
            source=source,
        )
    body = dict(data)
    if mapping.person_kind == "email" and "email" not in body:
        body["email"] = person
    if ts is not None and "created_at" not in body:
        body["created_at"] = ts
    return Request(method="PUT", path=path, body=_encode(body), headers=_HEADERS, source=source)


def build_call(
    mapping: Mapping, target: Target, row: dict[str, Any], source: str, number: int, name: str
) -> Request:
    """The Pipelines call for source row ``number`` of the source ``name`` (RowError if it
    cannot be mapped); its messageId is the same whenever the same row is read again."""
    person, ts, data = mapping.apply(row)
    ids = mapping.call_fields(row)
    body: dict[str, Any] = {"type": target.kind}
    if person is not None:
        body["anonymousId" if mapping.person_kind == "anonymous_id" else "userId"] = person
    if target.kind == "track":
        body["event"] = target.name
    elif target.name is not None:
        body["name"] = target.name
    if "groupId" in ids:
        body["groupId"] = ids["groupId"]
    if "previousId" in ids:
        body["previousId"] = ids["previousId"]
    if target.kind != "alias":  # an alias carries no data
        payload = dict(data)
        if target.kind == "identify" and mapping.person_kind == "email":
            payload.setdefault("email", person)
        if "objectTypeId" in ids:
            payload["objectTypeId"] = ids["objectTypeId"]
        body[payload_key(target.kind)] = payload
    if ts is not None:
        body["timestamp"] = iso_time(ts)
    seed = _encode([name, number, body])
    body["messageId"] = "backfill-" + hashlib.sha256(seed).hexdigest()[:32]
    path = f"/v1/{target.kind}"
    return Request(method="POST", path=path, body=_encode(body), headers=_HEADERS, source=source)


def backfill(
    source: str | Source,
    *,
    store: SQLiteStore | PostgresStore,
    mapping: Mapping,
    event: str | None = None,
    target: Target | None = None,
    plan: Plan | None = None,
    query: str | None = None,
    on_error: OnError = "skip",
    batch_size: int = 500,
    restart: bool = False,
    progress: Progress | None = None,
    max_batches: int | None = None,
    clock: Callable[[], float] = time.time,
) -> BackfillReport:
    """Backfill ``source`` into ``store``'s outbox as events named ``event`` (or identifies),
    or as what ``target`` names (a Pipelines call type, see :mod:`.target`).

    ``source`` is a CSV/JSONL path (gzip accepted), a ``sqlite:///db?query=...`` URL (or the URL
    and ``query``) or an opened :class:`~trackguard.recovery.sources.Source`. A row that cannot
    be mapped is recorded on the report with its row number and skipped, or (``on_error="stop"``)
    ends the run after committing the rows before it. A rerun continues after the last
    committed batch unless ``restart``. ``max_batches`` stops after that many batches (for
    tests and trial runs). Raises SourceError when the source cannot be read at all.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    src = open_source(source, query) if isinstance(source, str) else source
    if target is None:
        target = Target("track", "identify") if event is None else Target("track", "event", event)
    what = target.text()
    key = checkpoint_key(src.identity, what)
    report = BackfillReport(source=src.identity)
    if not restart:
        saved = read_checkpoint(store, key)
        if saved is not None:
            report.resumed_from = int(saved.get("rows", 0))
    checker = Checker(plan)
    # What the store knows (email → id bindings, last orders), as the gateway sees it: with
    # ``identity.email_keyed: fix`` an email-keyed row is rewritten to the known id.
    state = GatewayState.load(store)
    dedupe = plan.dedupe if plan is not None else DedupePolicy()
    label = f"backfill:{src.name}"
    # A restart reads rows an earlier run may have quarantined: keep those once.
    kept = _quarantined(store, label) if restart else set()
    started = time.perf_counter()
    batch: list[Write] = []
    outcomes: list[str] = []  # the batch's rows' outcomes, counted once committed
    done = report.resumed_from
    batches = 0
    # The store's count of dedupe conflicts, read once per batch: when a commit raises it, the
    # batch's rows are looked at (another writer's conflict between batches costs one look).
    conflicts = store.conflict_count()

    def flush() -> None:
        nonlocal batches, conflicts
        checkpoint = {"source": src.identity, "as": what, "rows": done, "updated_at": clock()}
        # The checkpoint commits with the batch: a crash can never skip or repeat rows.
        duplicates = store.commit(batch, meta={key: _encode(checkpoint).decode()})
        before, conflicts = conflicts, store.conflict_count()
        # The commit quarantines a row whose dedupe key another person holds: it is rejected.
        conflicted = _conflicted(store, batch) if conflicts > before else set()
        for n, (write, outcome, dropped) in enumerate(
            zip(batch, outcomes, duplicates, strict=True)
        ):
            counted = "duplicates" if all_duplicates(write, dropped) else outcome
            if n in conflicted:
                counted = "rejected"
                report.dedupe_conflicts += 1
            setattr(report, counted, getattr(report, counted) + 1)
            state.learn(write)
        batch.clear()
        outcomes.clear()
        batches += 1
        if progress is not None:
            progress(done, src.position(), src.total())

    def problem(row: SourceRow, message: str) -> None:
        if len(report.problems) < MAX_PROBLEMS:
            report.problems.append(RowProblem(row.number, row.line, message))

    pending_rows = 0
    for row in src.rows():
        if row.number <= report.resumed_from:
            continue
        report.rows_read += 1
        try:
            if row.values is None:
                raise RowError(row.error or "unreadable row")
            row_source = f"{label}:{row.number}"
            if target.api == "pipelines":
                request = build_call(mapping, target, row.values, row_source, row.number, src.name)
            else:
                request = build_request(mapping, target.name, row.values, row_source)
        except RowError as e:
            problem(row, str(e))
            if on_error == "stop":
                report.rows_read -= 1
                report.stopped = True
                break
            report.skipped += 1
            done = row.number
            pending_rows += 1
            continue
        verdict, write = _judge(request, target, checker, state, clock(), dedupe)
        if write.quarantine and all((q.source, _digest(q.body)) in kept for q in write.quarantine):
            write = msgspec.structs.replace(write, quarantine=())
            report.already_quarantined += 1
        outcomes.append(_COUNTED.get(verdict.outcome, "accepted"))
        batch.append(write)
        done = row.number
        pending_rows += 1
        if pending_rows >= batch_size:
            pending_rows = 0
            flush()
            if max_batches is not None and batches >= max_batches:
                report.seconds = time.perf_counter() - started
                return report
    else:
        report.complete = True
    if pending_rows or batch or report.complete:
        flush()
    report.seconds = time.perf_counter() - started
    return report


def _conflicted(store: SQLiteStore | PostgresStore, batch: list[Write]) -> set[int]:
    """The positions of the writes with a row whose dedupe key another person holds (the
    commit kept those rows in the quarantine as ``dedupe_key_conflict``): a claim unexpired
    when the row came, as the commit judged it."""
    with session(store) as s:

        def holder(row: OutboxRow) -> str | None:
            return claim_holder(s, str(row.dedupe_key), row.received_at)[1]

        return {n for n, w in enumerate(batch) if conflicting_row(w.outbox, holder) is not None}


def _judge(
    request: Request,
    target: Target,
    checker: Checker,
    state: GatewayState,
    now: float,
    dedupe: DedupePolicy,
) -> tuple[Verdict, Write]:
    """A row's verdict and write, as the door of its API makes them."""
    if target.api == "pipelines":
        return decide_pipelines(request, evaluate(request), checker, state, now, dedupe)
    verdict = checker.check(request, state=state)
    return verdict, to_write(request, verdict, now, dedupe)
