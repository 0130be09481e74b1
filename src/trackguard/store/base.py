"""The Store protocol: the one durable place for the outbox, the quarantine and delivery state.

The gateway writes a request's accepted operations (outbox rows) and its quarantine record in
one transaction, and answers 2xx only after it committed. Delivery workers lease outbox rows,
then mark them delivered, retry them later, or move them to quarantine with Customer.io's
reason. ``sqlite.py`` implements it in one WAL file; a PostgreSQL implementation shares this
protocol so several gateways and workers can use one database.

Exception tree (under :class:`trackguard.errors.TrackguardError`)::

    StoreError
    ├── StoreNotFound   (no store at the path; only serve creates one)
    └── StoreClosed     (the store was closed; nothing more is accepted)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, Protocol

import msgspec

from trackguard.errors import StoreError as StoreError
from trackguard.errors import StoreNotFound as StoreNotFound

OutboxState = Literal["pending", "delivered", "failed"]
QuarantineKind = Literal["contract", "plan", "upstream"]


class StoreClosed(StoreError):
    """The store is closed."""


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A rejected request or operation, kept whole so it can be fixed and replayed.

    ``headers`` never hold credentials: ``Authorization`` is redacted before it gets here.
    ``findings`` is the JSON list of contract errors and violations; ``upstream_error`` is
    Customer.io's reason when it rejected the operation at delivery. ``route`` is the route
    key the request matched (``"POST /api/v2/batch"``; None when it matched none) and
    ``plan_version`` the plan's version when it was checked; an ``upstream`` record has the
    route and plan version of the check that accepted the operation into the outbox (None and
    ``""`` for rows stored before schema v5) and no headers: the outbox never holds them.
    """

    id: int = 0  # assigned by the store
    received_at: float
    kind: QuarantineKind
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    source: str | None = None
    plan_version: str = ""
    route: str | None = None
    status: int = 200
    findings: bytes = b"[]"
    event_name: str | None = None
    codes: tuple[str, ...] = ()
    batch_index: int | None = None
    upstream_error: str | None = None
    state: Literal["quarantined", "replayed", "still_invalid"] = "quarantined"


class OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    """One operation waiting for (or done with) delivery.

    ``payload`` is the JSON of what delivery sends: ``{"v2": <batch item>}`` for operations
    the v2 batch endpoint expresses, ``{"v1": {"method", "path", "body"}}`` for the rest.
    ``person`` orders delivery: rows of one person are delivered in ``seq`` order.
    ``route`` (the route key, ``"POST /api/v1/customers/{identifier}/events"``) and
    ``plan_version`` are those of the verdict that accepted the operation, so a row
    Customer.io rejects at delivery is quarantined with them; rows stored before schema v5
    have None.
    """

    seq: int = 0  # assigned by the store
    received_at: float
    person: str
    payload: bytes
    dedupe_key: str | None = None
    event_name: str | None = None
    source: str | None = None
    route: str | None = None
    plan_version: str | None = None
    state: OutboxState = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    delivered_at: float | None = None
    #: Set on rows that claim ``dedupe_key`` until this time: a row whose key the same person
    #: already claimed (in any request, in any process) is a duplicate and is not stored; one
    #: whose key another person claimed is quarantined (:func:`dedupe_conflict`). Not persisted.
    claim_until: float | None = None
    #: JSON ``{"identifiers": {...}, "total": n, "ts": t}`` for a new order: the store updates
    #: the person's profile and queues an identify with the derived attributes. Not persisted.
    derive: bytes | None = None
    #: The operation's position in a v2 batch, to keep its item alone should another person
    #: hold ``dedupe_key`` (:func:`dedupe_conflict`). Not persisted.
    batch_index: int | None = None


#: The code of an event whose dedupe key another person claimed (``docs/violations.md``).
CODE_DEDUPE_CONFLICT: Final = "dedupe_key_conflict"


def dedupe_conflict(
    row: OutboxRow, claimer: str, request: QuarantineRecord | None = None
) -> QuarantineRecord:
    """The quarantine record of ``row``, whose dedupe key ``claimer`` (a person key) holds.

    Two people's events never share a business key by right (an order id reused by another
    shop, a client's id generator gone wrong), so the newcomer's event is kept, not dropped as
    a retry; replaying it after a fix (a new order id) delivers it. ``request`` is the
    request the row came from (``Write.kept_as``): the record keeps it whole, or the row's
    batch item alone; without it, the row's payload is kept.
    """
    template = request or QuarantineRecord(
        received_at=row.received_at, kind="plan", method="POST", path="", body=row.payload
    )
    if request is not None and row.batch_index is not None:
        template = msgspec.structs.replace(
            template, body=_batch_item(request.body, row.batch_index), batch_index=row.batch_index
        )
    finding = {
        "kind": "plan",
        "code": CODE_DEDUPE_CONFLICT,
        "rule": "dedupe",
        "path": "",
        "message": (
            f"dedupe key {row.dedupe_key!r} is claimed by {claimer}; this event of"
            f" {row.person} is kept, not delivered"
        ),
        "action": "reject",
        "batch_index": template.batch_index,
    }
    return msgspec.structs.replace(
        template,
        kind="plan",
        findings=msgspec.json.encode([finding]),
        codes=(CODE_DEDUPE_CONFLICT,),
        event_name=row.event_name,
    )


def _batch_item(body: bytes, index: int) -> bytes:
    """Item ``index`` of a v2 batch body, as JSON (the whole body if it has none)."""
    try:
        items = msgspec.json.decode(body).get("batch")
        return msgspec.json.encode(items[index])
    except (msgspec.DecodeError, AttributeError, IndexError, KeyError, TypeError):
        return body


class Write(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one request commits, atomically.

    ``links`` are ``(email, id)`` pairs an identify taught (the first binding of an email
    stays); ``anonymous`` are ``(anonymous_id, event name)`` of anonymous activity seen;
    ``anonymous_links`` are ``(anonymous_id, person key)`` from identifies that carry one.
    """

    outbox: tuple[OutboxRow, ...] = ()
    quarantine: tuple[QuarantineRecord, ...] = ()
    #: The request as a quarantine record without findings, when rows claim dedupe keys: what
    #: is kept of a row whose key another person holds (:func:`dedupe_conflict`).
    kept_as: QuarantineRecord | None = None
    links: tuple[tuple[str, str], ...] = ()
    anonymous: tuple[tuple[str, str | None], ...] = ()
    anonymous_links: tuple[tuple[str, str], ...] = ()


class OutboxStats(msgspec.Struct, frozen=True, kw_only=True):
    pending: int
    delivered: int
    failed: int
    oldest_pending_at: float | None
    #: Rows quarantined because another person held their dedupe key (``dedupe_key_conflict``).
    dedupe_conflicts: int = 0


class Store(Protocol):
    """What the gateway, delivery and the CLI need from storage. Methods are thread-safe."""

    def commit(
        self,
        writes: Sequence[Write],
        meta: Mapping[str, str] | None = None,
        *,
        quarantine_states: Sequence[tuple[int, str]] | None = None,
    ) -> list[int]:
        """Commit several requests' writes in one transaction (group commit); for each write,
        how many of its rows were duplicates (their dedupe key was already claimed by the same
        person). A row whose key another person claimed is quarantined instead
        (:func:`dedupe_conflict`), in the same transaction.

        ``meta`` entries are saved (as :meth:`set_meta` would) in that same transaction, so a
        backfill's checkpoint never runs ahead of, or behind, the rows it counts.
        ``quarantine_states`` are ``(record id, state)`` pairs that set existing quarantine
        records' state in it too, so a replay never marks a record ``replayed`` without its
        write queued, nor queues it twice after a crash."""

    def lease(self, limit: int, now: float) -> list[OutboxRow]:
        """Up to ``limit`` pending rows due at ``now``, oldest first, keeping per-person order:
        a row is never returned while an earlier pending row of the same person is not due.

        Returned rows are claimed: they are not due again (so no second lease returns them,
        and they hold back their person's later rows) until they are marked or the store's
        lease timeout runs out, after which they are leased again (delivery is at least once).
        """

    def mark_delivered(self, seqs: Sequence[int], now: float) -> None: ...

    def mark_retry(self, seqs: Sequence[int], error: str, next_attempt_at: float) -> None: ...

    def mark_failed(self, failures: Sequence[tuple[int, QuarantineRecord]], now: float) -> None:
        """Rows Customer.io rejected for good: mark them failed and quarantine them, atomically."""

    def outbox_row(self, seq: int) -> OutboxRow | None: ...

    def outbox_list(
        self, state: OutboxState | None = None, limit: int = 100, offset: int = 0
    ) -> list[OutboxRow]:
        """Rows newest first, optionally of one state."""

    def outbox_stats(self) -> OutboxStats: ...

    def quarantine_count(self) -> int: ...

    def quarantine_list(self, limit: int = 100, offset: int = 0) -> list[QuarantineRecord]: ...

    def identities(self) -> list[tuple[str, str]]:
        """Every ``(email, id)`` binding known."""

    def last_orders(self) -> list[tuple[str, int]]:
        """``(person key, last_order_date)`` of every profile with an order."""

    def identities_since(self, after: int, limit: int = ...) -> list[tuple[int, str, str]]:
        """``(seq, email, id)`` of bindings committed (by any writer) after change number
        ``after``, in commit order, at most ``limit``. Change numbers grow in commit order,
        so reading on from the highest one seen neither repeats nor skips a binding."""

    def last_orders_since(self, after: int, limit: int = ...) -> list[tuple[int, str, int]]:
        """``(seq, person key, last_order_date)`` of profiles an order changed after change
        number ``after``, in commit order, at most ``limit`` (as :meth:`identities_since`)."""

    def meta_value(self, key: str) -> str | None:
        """A small value saved under ``key`` (a checkpoint, the delivery circuit's state)."""

    def set_meta(self, key: str, value: str) -> None:
        """Save ``value`` under ``key`` (visible to every process on the store)."""

    def healthy(self) -> bool:
        """True when the store can take writes (readiness)."""

    def close(self) -> None: ...
