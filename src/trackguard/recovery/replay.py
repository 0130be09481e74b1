"""Replay: fix quarantined requests, check them again, and queue the ones that now pass.

Each selected record (kind ``contract`` or ``plan``, state ``quarantined`` or
``still_invalid``) gets the fix rules applied to its raw body, is checked by ``Checker(plan)``
at the replay time with what the store has learned, and, when nothing is rejected, is committed
with :func:`trackguard.ingest.to_write` through the store's ``commit``: dedupe claims drop
anything already sent, derived attributes stay idempotent. The record is marked
``replayed`` in the same transaction (``commit(..., quarantine_states=...)``), so a record is
never marked without its write queued, nor queued twice after a crash; otherwise it is marked
``still_invalid`` with the new findings. v2 batch items are replayed as
``POST /api/v2/entity``.

Pipelines API records (a path under ``/v1/``: ``contract`` and ``plan``, and ``upstream``
records of calls ``/v1/batch`` refused in strict mode) go the same way, one call each, judged
and converted exactly as the gateway's Pipelines door does it
(:mod:`trackguard.recovery.replay_pipelines`); their dedupe key (the plan's business key, else
``pipelines:messageId:<id>``) makes a second replay a duplicate. An ``upstream`` record's key
is still claimed by the row that failed, so that claim is released first, unless another row
holding the key is pending or was delivered. A Pipelines record that holds no call (not JSON)
is left as it is and counted in :attr:`ReplayReport.unreadable`. The store is SQLite or
PostgreSQL, opened once: the reads and the ``still_invalid`` updates go through one
:func:`~trackguard.store.sql.session` on it (on PostgreSQL a connection of its pool; read-only
for a dry run, so a dry run cannot change anything).

A dry run previews the real run exactly: it claims dedupe keys in memory as it goes, so the
second of two quarantined copies of one order is counted as a duplicate in both. Duplicates are
counted apart from replayed records (a record is one or the other). A record whose dedupe key
another person still holds stays ``still_invalid`` (``dedupe_key_conflict``) instead of being
queued into a new conflict; the dry run remembers who claimed each key, so it says so too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import is_pipelines_path
from trackguard.core.coerce import parse_iso
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.delivery.ratelimit import TokenBucket
from trackguard.ingest import quarantine_records, to_write
from trackguard.plan.model import Plan
from trackguard.recovery import replay_pipelines as pl
from trackguard.recovery.dedupe import (
    all_duplicates,
    claim_holder,
    claimed_keys,
    conflicting_row,
)
from trackguard.recovery.fixes import Fix, apply_fixes
from trackguard.store.base import OutboxRow, QuarantineRecord, Store, Write, dedupe_conflict
from trackguard.store.quarantine import QuarantineFilter, get, list_quarantine
from trackguard.store.sql import Session, session
from trackguard.store.sqlite import SQLiteStore, open_store
from trackguard.store.view import GatewayState

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

__all__ = ["CAMPAIGN_WINDOW", "ReplayItem", "ReplayReport", "replay"]

#: Customer.io does not trigger campaigns on events older than this.
CAMPAIGN_WINDOW: Final = 72 * 3600.0
_REPLAYABLE: Final = ("quarantined", "still_invalid")
_decode_findings: Final = msgspec.json.Decoder(list[dict[str, Any]]).decode
_encode: Final = msgspec.json.encode


class ReplayItem(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    event_name: str | None
    method: str
    path: str
    new_path: str
    before: bytes
    after: bytes
    #: ``replayed`` | ``duplicate`` (accepted, but every event was already sent) | ``still_invalid``
    outcome: str
    verdict: str
    codes: tuple[str, ...] = ()
    reason: str = ""
    applied: tuple[str, ...] = ()
    #: An event older than :data:`CAMPAIGN_WINDOW` is queued (would be, in a dry run).
    late: bool = False


class ReplayReport(msgspec.Struct, kw_only=True):
    dry_run: bool
    now: float
    items: list[ReplayItem]
    warnings: list[str]
    #: Ids of the Pipelines API records left as they are: they hold no call to resend.
    unreadable: list[int] = msgspec.field(default_factory=list)

    @property
    def replayed(self) -> int:
        """Records whose operations were queued (would be, in a dry run)."""
        return sum(i.outcome == "replayed" for i in self.items)

    @property
    def duplicates(self) -> int:
        """Records accepted but dropped by dedupe: every event was sent already, before or
        earlier in this replay."""
        return sum(i.outcome == "duplicate" for i in self.items)

    @property
    def still_invalid(self) -> int:
        return sum(i.outcome == "still_invalid" for i in self.items)


def _selected_ids(s: Session, flt: QuarantineFilter) -> list[int]:
    """The replayable records' ids: contract and plan records, and the Pipelines calls
    Customer.io refused at delivery."""
    states = _REPLAYABLE if flt.state is None else (flt.state,)
    ids: set[int] = set()
    for state in states:
        if state not in _REPLAYABLE:
            raise ValueError(f"records in state {state!r} are not replayed")
        scoped = msgspec.structs.replace(flt, state=state)
        offset = 0
        while True:
            page = list_quarantine(s, scoped, limit=1000, offset=offset)
            for r in page:
                if r.kind in ("contract", "plan") or is_pipelines_path(r.path):
                    ids.add(r.id)
            if len(page) < 1000:
                break
            offset += 1000
    return sorted(ids)


def _is_event(body: dict[str, Any], batch_item: bool) -> bool:
    if batch_item:
        return body.get("action") == "event"
    return "name" in body


def _reason(verdict: Verdict) -> tuple[tuple[str, ...], bytes, str]:
    findings: list[dict[str, Any]] = []
    for e in verdict.contract_errors:
        findings.append({"kind": "contract", **msgspec.structs.asdict(e)})
    for v in verdict.violations:
        if v.action == "reject":
            findings.append({"kind": "plan", **msgspec.structs.asdict(v)})
    codes = tuple(sorted({str(f.get("code") or f.get("reason")) for f in findings}))
    messages = "; ".join(str(f.get("message", "")) for f in findings)
    return codes, _encode(findings), messages


class _Run(msgspec.Struct):
    """What a (dry) run remembers: keys claimed earlier in it, by whom, and the claims of
    failed rows it released (a dry run only pretends to)."""

    claimed: dict[str, str | None] = msgspec.field(default_factory=dict)
    released: set[str] = msgspec.field(default_factory=set)


def _holder(s: Session, key: str, now: float, run: _Run) -> tuple[bool, str | None]:
    """Whether ``key`` is claimed and by whom: an unexpired claim in the store first (its
    person may be None: a claim from before claims named their person), else the first row
    that claimed it earlier in this (dry) run."""
    if key not in run.released:
        claimed, person = claim_holder(s, key, now)
        if claimed:
            return True, person
    if key in run.claimed:
        return True, run.claimed[key]
    return False, None


def _conflict(
    s: Session, rows: Sequence[OutboxRow], now: float, run: _Run
) -> QuarantineRecord | None:
    """The record of the dedupe conflict a row would meet (its key claimed, unexpired, by
    another person), or None."""
    found = conflicting_row(rows, lambda row: _holder(s, str(row.dedupe_key), now, run)[1])
    return None if found is None else dedupe_conflict(*found)


def _claimed(s: Session, keys: Sequence[str], now: float, run: _Run) -> bool:
    """Whether every key is claimed, in the store or earlier in this (dry) run."""
    if not keys:
        return False
    return all(_holder(s, k, now, run)[0] for k in keys)


def _release(s: Session, keys: Sequence[str], run: _Run, dry_run: bool) -> None:
    """Free the claims an ``upstream`` record's failed row still holds, so its replay is not
    taken for a duplicate of itself: only keys no pending or delivered row holds."""
    for key in keys:
        live = s.one(
            "SELECT 1 FROM outbox WHERE dedupe_key = ? AND state <> 'failed' LIMIT 1", (key,)
        )
        if live is not None:
            continue
        if not dry_run:
            s.run("DELETE FROM claims WHERE key = ?", (key,))
        run.released.add(key)


def replay(
    target: str | os.PathLike[str],
    plan: Plan,
    filter: QuarantineFilter | None = None,
    fixes: Sequence[Fix] = (),
    dry_run: bool = False,
    now_timestamps: bool = False,
    *,
    now: float | None = None,
    rate: float | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayReport:
    """Replay the selected quarantine records of the store ``target`` names (a SQLite path,
    ``sqlite:///`` or ``postgresql://`` URL); see the module docstring.

    ``rate`` caps records replayed per second, so a large replay reaches the outbox (and
    Customer.io, behind delivery's own limit) as a steady stream rather than one burst;
    ``sleep`` and ``clock`` pace it (tests pass their own). A target that holds no store is
    :class:`~trackguard.errors.StoreNotFound`.
    """
    at = time.time() if now is None else now
    store = open_store(target, create=False, readonly=dry_run)
    try:
        with session(cast("SQLiteStore | PostgresStore", store), readonly=dry_run) as s:
            ids = _selected_ids(s, filter or QuarantineFilter())
            checker = Checker(plan)
            state = GatewayState.load(store)
            identity_map = dict(store.identities())
            run = _Run()
            unreadable: list[int] = []
            bucket = TokenBucket(rate, 1, clock) if rate else None
            items: list[ReplayItem] = []
            for record_id in ids:
                if bucket is not None and not dry_run:
                    bucket.acquire(sleep)
                record = get(s, record_id)
                if record is None or record.state not in _REPLAYABLE:
                    continue  # purged or replayed meanwhile
                item = _one(
                    record,
                    checker,
                    state,
                    store,
                    s,
                    plan,
                    fixes,
                    identity_map,
                    at,
                    run,
                    dry_run=dry_run,
                    now_timestamps=now_timestamps,
                )
                if item is None:
                    unreadable.append(record.id)
                else:
                    items.append(item)
    finally:
        store.close()
    warnings: list[str] = []
    if unreadable:
        warnings.append(
            f"{len(unreadable)} Pipelines API record(s) left as they are (records"
            f" {_shown(unreadable)}): they hold no call to resend"
        )
    late = [i.id for i in items if i.late and i.outcome != "still_invalid"]
    if late:
        warnings.append(
            f"{len(late)} replayed event(s) are older than 72h (records {_shown(late)}):"
            " Customer.io records them but does not trigger campaigns on them; use --now to"
            " re-time them"
        )
    return ReplayReport(
        dry_run=dry_run, now=at, items=items, warnings=warnings, unreadable=unreadable
    )


def _shown(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")


def _one(
    record: QuarantineRecord,
    checker: Checker,
    state: GatewayState,
    store: Store,
    s: Session,
    plan: Plan,
    fixes: Sequence[Fix],
    identity_map: dict[str, str],
    now: float,
    run: _Run,
    *,
    dry_run: bool,
    now_timestamps: bool,
) -> ReplayItem | None:
    """One record replayed (or previewed); None for a Pipelines record holding no call."""
    if is_pipelines_path(record.path):
        call = pl.call_of(record)
        if call is None:
            return None
        result = apply_fixes(call, pl.path_of(call), fixes, identity_map)
        fixed: dict[str, Any] = result.body
        pl.retime(fixed, record.received_at, now if now_timestamps else None)
        request, verdict, write = pl.judge(fixed, record, checker, state, now, plan.dedupe)
        item = _item(record, request, verdict, tuple(result.applied))
        queued = None if _invalid(verdict) else write
        if record.kind == "upstream" and queued is not None:
            _release(s, claimed_keys(queued), run, dry_run)
        return _settle(item, record, request, verdict, queued, store, s, state, now, run, dry_run)
    batch_item = record.batch_index is not None
    method, path = ("POST", "/api/v2/entity") if batch_item else (record.method, record.path)
    try:
        decoded: Any = msgspec.json.decode(record.body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        decoded = None
    body_bytes = record.body
    applied: tuple[str, ...] = ()
    new_path = path
    if isinstance(decoded, dict):
        result = apply_fixes(decoded, path, fixes, identity_map)
        body, new_path, applied = result.body, result.path, tuple(result.applied)
        if _is_event(body, batch_item):
            ts = body.get("timestamp")
            if now_timestamps:
                body["timestamp"] = int(now)
            elif not isinstance(ts, int) or isinstance(ts, bool):
                body["timestamp"] = int(record.received_at)  # when it really happened
        if applied or body != decoded:
            body_bytes = _encode(body)
    request = Request(method=method, path=new_path, body=body_bytes, source=record.source)
    verdict = checker.check(request, now=now, state=state)
    item = _item(record, request, verdict, applied, path=path)
    queued = None if _invalid(verdict) else to_write(request, verdict, now, plan.dedupe)
    return _settle(item, record, request, verdict, queued, store, s, state, now, run, dry_run)


def _invalid(verdict: Verdict) -> bool:
    return bool(verdict.contract_errors or verdict.rejected or not verdict.operations)


def _late(verdict: Verdict, now: float) -> bool:
    """Whether an event's ``timestamp`` (Unix seconds; ISO-8601 in a Pipelines call) is older
    than :data:`CAMPAIGN_WINDOW`: Customer.io keeps it but triggers no campaign on it."""
    for op in verdict.operations:
        stamp = op.body.get("timestamp") if op.is_event and op.body is not None else None
        if isinstance(stamp, str):
            stamp = parse_iso(stamp)
        if isinstance(stamp, int) and not isinstance(stamp, bool) and now - stamp > CAMPAIGN_WINDOW:
            return True
    return False


def _item(
    record: QuarantineRecord,
    request: Request,
    verdict: Verdict,
    applied: tuple[str, ...],
    *,
    path: str | None = None,
) -> ReplayItem:
    """The report line of a record replayed as ``request`` (``path``: the request's, when
    not the record's; a fix can change it), ``still_invalid`` until settled."""
    return ReplayItem(
        id=record.id,
        kind=record.kind,
        event_name=record.event_name,
        method=request.method,
        path=record.path if path is None else path,
        new_path=request.path,
        before=record.body,
        after=request.body,
        outcome="still_invalid",
        verdict=verdict.outcome,
        applied=applied,
    )


def _settle(
    item: ReplayItem,
    record: QuarantineRecord,
    request: Request,
    verdict: Verdict,
    write: Write | None,
    store: Store,
    s: Session,
    state: GatewayState,
    now: float,
    run: _Run,
    dry_run: bool,
) -> ReplayItem:
    """Mark the record ``still_invalid`` with the new findings (``write`` is None: the verdict
    sends nothing), or commit its write with the ``replayed`` mark (a dry run only counts)."""
    if write is None:
        item.codes, findings, item.reason = _reason(verdict)
        if not item.codes:
            item.reason = item.reason or "nothing to send"
        if not dry_run:
            records = quarantine_records(request, verdict, now)
            status = records[0].status if records else verdict.status
            s.run(
                "UPDATE quarantine SET state = 'still_invalid', findings = ?, codes = ?,"
                " status = ?, plan_version = ?, route = ? WHERE id = ? AND state != 'replayed'",
                (
                    findings.decode(),
                    _encode(item.codes).decode(),
                    status,
                    verdict.plan_version,
                    verdict.route,
                    record.id,
                ),
            )
        return item
    item.late = _late(verdict, now)
    keys = claimed_keys(write)
    conflict = _conflict(s, write.outbox, now, run)
    if conflict is not None:  # still another person's key: fix it (a new order id) first
        item.codes, item.reason = conflict.codes, _decode_findings(conflict.findings)[0]["message"]
        if not dry_run:
            s.run(
                "UPDATE quarantine SET state = 'still_invalid', findings = ?, codes = ?"
                " WHERE id = ? AND state != 'replayed'",
                (conflict.findings.decode(), _encode(conflict.codes).decode(), record.id),
            )
        return item
    if dry_run:
        item.outcome = "duplicate" if _claimed(s, keys, now, run) else "replayed"
        for r in write.outbox:  # the first row to claim a key holds it for the rest of the run
            if r.claim_until is not None and r.dedupe_key:
                run.claimed.setdefault(r.dedupe_key, r.person)
                run.released.discard(r.dedupe_key)
        state.learn(write)  # as the real run does, so later records are checked the same way
        return item
    # The write and the mark are one transaction: a crash leaves both or neither.
    duplicates = store.commit([write], quarantine_states=[(record.id, "replayed")])[0]
    state.learn(write)
    item.outcome = "duplicate" if all_duplicates(write, duplicates) else "replayed"
    return item
