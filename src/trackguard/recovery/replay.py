"""Replay: fix quarantined requests, check them again, and queue the ones that now pass.

Each selected record (kind ``contract`` or ``plan``, state ``quarantined`` or
``still_invalid``) gets the fix rules applied to its raw body, is checked by ``Checker(plan)``
at the replay time with what the store has learned, and, when nothing is rejected, is committed
with :func:`trackguard.ingest.to_write` through the store's ``commit``: dedupe claims drop
anything already sent, derived attributes stay idempotent. The record is marked
``replayed`` in the same transaction (``commit(..., quarantine_states=...)``), so a record is
never marked without its write queued, nor queued twice after a crash; otherwise it is marked
``still_invalid`` with the new findings. v2 batch items are replayed as
``POST /api/v2/entity``. The store is SQLite or PostgreSQL: the reads and the
``still_invalid`` updates go through one :func:`~trackguard.store.sql.session` (read-only for
a dry run, so a dry run cannot change anything).

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
from typing import Any, Final

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import is_pipelines_path
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.delivery.ratelimit import TokenBucket
from trackguard.ingest import quarantine_records, to_write
from trackguard.plan.model import Plan
from trackguard.recovery.dedupe import all_duplicates, claimed_keys
from trackguard.recovery.fixes import Fix, apply_fixes
from trackguard.store.base import OutboxRow, QuarantineRecord, Store, dedupe_conflict
from trackguard.store.quarantine import QuarantineFilter, get, list_quarantine
from trackguard.store.sql import Session, session
from trackguard.store.sqlite import open_store
from trackguard.store.view import GatewayState

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
    late: bool = False


class ReplayReport(msgspec.Struct, kw_only=True):
    dry_run: bool
    now: float
    items: list[ReplayItem]
    warnings: list[str]

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


def _selected_ids(s: Session, flt: QuarantineFilter) -> tuple[list[int], int]:
    """The replayable records' ids, and how many Pipelines API records were left out (they
    are not Track API requests; replaying them is not supported yet)."""
    states = _REPLAYABLE if flt.state is None else (flt.state,)
    ids: set[int] = set()
    pipelines: set[int] = set()
    for state in states:
        if state not in _REPLAYABLE:
            raise ValueError(f"records in state {state!r} are not replayed")
        scoped = msgspec.structs.replace(flt, state=state)
        offset = 0
        while True:
            page = list_quarantine(s, scoped, limit=1000, offset=offset)
            for r in page:
                if r.kind in ("contract", "plan"):
                    (pipelines if is_pipelines_path(r.path) else ids).add(r.id)
            if len(page) < 1000:
                break
            offset += 1000
    return sorted(ids), len(pipelines)


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


def _holder(
    s: Session, key: str, now: float, in_run: dict[str, str | None]
) -> tuple[bool, str | None]:
    """Whether ``key`` is claimed and by whom: an unexpired claim in the store first (its
    person may be None: a claim from before claims named their person), else the first row
    that claimed it earlier in this (dry) run."""
    held = s.one("SELECT person FROM claims WHERE key = ? AND expires_at > ?", (key, now))
    if held is not None:
        return True, held[0]
    if key in in_run:
        return True, in_run[key]
    return False, None


def _conflict(
    s: Session, rows: Sequence[OutboxRow], now: float, in_run: dict[str, str | None]
) -> QuarantineRecord | None:
    """The record of the dedupe conflict a row would meet (its key claimed, unexpired, by
    another person), or None."""
    for row in rows:
        if row.claim_until is None or row.dedupe_key is None:
            continue
        _, holder = _holder(s, row.dedupe_key, now, in_run)
        if holder is not None and holder != row.person:
            return dedupe_conflict(row, holder)
    return None


def _claimed(s: Session, keys: Sequence[str], now: float, in_run: dict[str, str | None]) -> bool:
    """Whether every key is claimed, in the store or earlier in this (dry) run."""
    if not keys:
        return False
    return all(_holder(s, k, now, in_run)[0] for k in keys)


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
    with session(target, readonly=dry_run) as s:
        ids, pipelines = _selected_ids(s, filter or QuarantineFilter())
        store = open_store(target, create=False, readonly=dry_run)
        try:
            checker = Checker(plan)
            state = GatewayState.load(store)
            identity_map = dict(store.identities())
            claimed: dict[str, str | None] = {}  # keys a dry run would have claimed, by whom
            bucket = TokenBucket(rate, 1, clock) if rate else None
            items: list[ReplayItem] = []
            for record_id in ids:
                if bucket is not None and not dry_run:
                    bucket.acquire(sleep)
                record = get(s, record_id)
                if record is None or record.state not in _REPLAYABLE:
                    continue  # purged or replayed meanwhile
                items.append(
                    _one(
                        record,
                        checker,
                        state,
                        store,
                        s,
                        plan,
                        fixes,
                        identity_map,
                        at,
                        claimed,
                        dry_run=dry_run,
                        now_timestamps=now_timestamps,
                    )
                )
        finally:
            store.close()
    warnings: list[str] = []
    if pipelines:
        warnings.append(
            f"{pipelines} Pipelines API record(s) left as they are: trackguard replay does not"
            " resend Pipelines calls yet"
        )
    late = [i.id for i in items if i.late and i.outcome != "still_invalid"]
    if late:
        shown = ", ".join(str(i) for i in late[:10]) + (" ..." if len(late) > 10 else "")
        warnings.append(
            f"{len(late)} replayed event(s) are older than 72h (records {shown}): Customer.io"
            " records them but does not trigger campaigns on them; use --now to re-time them"
        )
    return ReplayReport(dry_run=dry_run, now=at, items=items, warnings=warnings)


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
    claimed: dict[str, str | None],
    *,
    dry_run: bool,
    now_timestamps: bool,
) -> ReplayItem:
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
    item = ReplayItem(
        id=record.id,
        kind=record.kind,
        event_name=record.event_name,
        method=method,
        path=path,
        new_path=new_path,
        before=record.body,
        after=body_bytes,
        outcome="still_invalid",
        verdict=verdict.outcome,
        applied=applied,
    )
    if verdict.contract_errors or verdict.rejected or not verdict.operations:
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
    for op in verdict.operations:
        ts = op.body.get("timestamp") if isinstance(op.body, dict) else None
        if isinstance(ts, int) and not isinstance(ts, bool) and now - ts > CAMPAIGN_WINDOW:
            item.late = True
    write = to_write(request, verdict, now, plan.dedupe)
    keys = claimed_keys(write)
    conflict = _conflict(s, write.outbox, now, claimed)
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
        item.outcome = "duplicate" if _claimed(s, keys, now, claimed) else "replayed"
        for r in write.outbox:  # the first row to claim a key holds it for the rest of the run
            if r.claim_until is not None and r.dedupe_key:
                claimed.setdefault(r.dedupe_key, r.person)
        state.learn(write)  # as the real run does, so later records are checked the same way
        return item
    # The write and the mark are one transaction: a crash leaves both or neither.
    duplicates = store.commit([write], quarantine_states=[(record.id, "replayed")])[0]
    state.learn(write)
    item.outcome = "duplicate" if all_duplicates(write, duplicates) else "replayed"
    return item
