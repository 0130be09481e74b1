"""The reads SQLite and PostgreSQL answer with the same SQL, and the rows they return.

Both stores keep the same tables and columns, so :class:`StoreReads` implements the Store
protocol's plain reads once over ``_read`` (each store's own connection handling) and the
parameter mark of its driver (``?`` for sqlite3, ``%s`` for psycopg). It also holds the
open/closed checks both stores make the same way (``healthy`` writes through ``set_meta``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import msgspec

from trackguard.store.base import (
    OutboxRow,
    OutboxState,
    OutboxStats,
    QuarantineRecord,
    StoreClosed,
    StoreError,
)

#: An outbox row's columns in :func:`outbox_row_from`'s order (both stores select them).
OUTBOX_COLUMNS: Final = (
    "seq, received_at, person, payload, dedupe_key, event_name, source, state, attempts,"
    " next_attempt_at, last_error, delivered_at, route, plan_version"
)
QUARANTINE_COLUMNS: Final = (
    "id, received_at, kind, method, path, headers, body, source, plan_version, status,"
    " findings, event_name, codes, batch_index, upstream_error, state, route"
)
#: Rows per ``identities_since`` / ``last_orders_since`` call unless told otherwise.
CHANGES_PAGE: Final = 10_000

_HEADERS: Final = msgspec.json.Decoder(tuple[tuple[str, str], ...])
_CODES: Final = msgspec.json.Decoder(tuple[str, ...])


class StoreReads(ABC):
    """The protocol's reads over ``_read``; ``_P`` is the driver's parameter mark."""

    _P: ClassVar[str] = "?"
    _closed: bool

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query on the store's own connection handling."""

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query (``store info``, dry runs, ``store copy``), in the driver's
        parameter style."""
        return self._read(sql, params)

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Save one ``meta`` row (``healthy`` writes one to see a write commit)."""

    def healthy(self) -> bool:
        """True when a small write commits now (for SQLite: lock free, file writable); False
        once closed or while the database is unreachable."""
        if self._closed:
            return False
        try:
            self.set_meta("health_checked_at", repr(time.time()))
        except StoreError:
            return False
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def profile(self, person: str) -> dict[str, Any] | None:
        """The derived profile attributes of a person key (``id:42``), or None."""
        rows = self._read(
            "SELECT first_order_date, last_order_date, order_count, lifetime_value"
            f" FROM profiles WHERE person = {self._P}",
            (person,),
        )
        if not rows:
            return None
        first, last, count, value = rows[0]
        return {
            "first_order_date": first,
            "last_order_date": last,
            "order_count": count,
            "lifetime_value": value,
        }

    def identities(self) -> list[tuple[str, str]]:
        """Every ``(email, id)`` binding known."""
        return [(e, i) for e, i in self._read("SELECT email, id FROM identities")]

    def last_orders(self) -> list[tuple[str, int]]:
        """``(person key, last_order_date)`` of every profile with an order."""
        rows = self._read(
            "SELECT person, last_order_date FROM profiles WHERE last_order_date IS NOT NULL"
        )
        return [(p, int(t)) for p, t in rows]

    def identities_since(self, after: int, limit: int = CHANGES_PAGE) -> list[tuple[int, str, str]]:
        """``(seq, email, id)`` of the bindings committed after change number ``after`` (by
        any process on the store), in commit order, at most ``limit``. Pass the highest seq
        seen to read the next ones: nothing is read twice and, as numbers grow in commit
        order, nothing committed meanwhile is skipped."""
        p = self._P
        rows = self._read(
            f"SELECT seq, email, id FROM identities WHERE seq > {p} ORDER BY seq LIMIT {p}",
            (after, limit),
        )
        return [(int(s), e, i) for s, e, i in rows]

    def last_orders_since(
        self, after: int, limit: int = CHANGES_PAGE
    ) -> list[tuple[int, str, int]]:
        """``(seq, person key, last_order_date)`` of the profiles an order changed after
        change number ``after``, in commit order, at most ``limit`` (as
        :meth:`identities_since`)."""
        p = self._P
        rows = self._read(
            "SELECT seq, person, last_order_date FROM profiles"
            f" WHERE seq > {p} AND last_order_date IS NOT NULL ORDER BY seq LIMIT {p}",
            (after, limit),
        )
        return [(int(s), person, int(t)) for s, person, t in rows]

    def unlinked_anonymous(self, seen_before: float) -> list[tuple[str, float, str | None]]:
        """Anonymous activity first seen before ``seen_before`` and never linked to a person:
        ``(anonymous_id, first_seen, event)``, oldest first."""
        rows = self._read(
            "SELECT anonymous_id, first_seen, event FROM anonymous"
            f" WHERE person IS NULL AND first_seen < {self._P} ORDER BY first_seen",
            (seen_before,),
        )
        return [(a, float(f), e) for a, f, e in rows]

    def meta_value(self, key: str) -> str | None:
        """A value saved with ``commit(..., meta=...)`` (a backfill's checkpoint)."""
        rows = self._read(f"SELECT value FROM meta WHERE key = {self._P}", (key,))
        return str(rows[0][0]) if rows else None

    def duplicate_count(self) -> int:
        """Rows left out as duplicates since the store was created."""
        return self._count("duplicate")

    def quarantine_count(self) -> int:
        return self._count("quarantine")

    def conflict_count(self) -> int:
        """Rows quarantined because another person held their dedupe key."""
        return self._count("dedupe_conflict")

    def _count(self, name: str) -> int:
        return int(self._read(f"SELECT n FROM counts WHERE name = {self._P}", (name,))[0][0])

    def outbox_row(self, seq: int) -> OutboxRow | None:
        rows = self._read(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE seq = {self._P}", (seq,))
        return outbox_row_from(rows[0]) if rows else None

    def outbox_list(
        self, state: OutboxState | None = None, limit: int = 100, offset: int = 0
    ) -> list[OutboxRow]:
        """Rows newest first, optionally of one state (delivery state for the CLI)."""
        p = self._P
        where = f"WHERE state = {p}" if state is not None else ""
        params: tuple[Any, ...] = (state,) if state is not None else ()
        rows = self._read(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox {where} ORDER BY seq DESC LIMIT {p} OFFSET {p}",
            (*params, max(0, limit), max(0, offset)),
        )
        return [outbox_row_from(r) for r in rows]

    def outbox_stats(self) -> OutboxStats:
        """Counts by state; ``oldest_pending_at`` is the ``received_at`` of the lowest-seq
        pending row (the head of the queue), None when nothing is pending."""
        counts = dict(self._read("SELECT name, n FROM counts"))
        oldest = self._read(
            "SELECT received_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"
        )
        return OutboxStats(
            pending=counts["pending"],
            delivered=counts["delivered"],
            failed=counts["failed"],
            oldest_pending_at=oldest[0][0] if oldest else None,
            dedupe_conflicts=counts["dedupe_conflict"],
        )

    def quarantine_list(self, limit: int = 100, offset: int = 0) -> list[QuarantineRecord]:
        """Quarantine records, most recently quarantined (highest ``id``) first."""
        p = self._P
        rows = self._read(
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY id DESC LIMIT {p} OFFSET {p}",
            (max(0, limit), max(0, offset)),
        )
        return [quarantine_record(r) for r in rows]


def outbox_row_from(r: Any) -> OutboxRow:
    """The :class:`OutboxRow` of a row selected as :data:`OUTBOX_COLUMNS`."""
    return OutboxRow(
        seq=r[0],
        received_at=r[1],
        person=r[2],
        payload=r[3],
        dedupe_key=r[4],
        event_name=r[5],
        source=r[6],
        state=r[7],
        attempts=r[8],
        next_attempt_at=r[9],
        last_error=r[10],
        delivered_at=r[11],
        route=r[12],
        plan_version=r[13],
    )


def quarantine_record(r: Any) -> QuarantineRecord:
    return QuarantineRecord(
        id=r[0],
        received_at=r[1],
        kind=r[2],
        method=r[3],
        path=r[4],
        headers=_HEADERS.decode(r[5]),
        body=r[6],
        source=r[7],
        plan_version=r[8],
        status=r[9],
        findings=r[10].encode("utf-8"),
        event_name=r[11],
        codes=_CODES.decode(r[12]),
        batch_index=r[13],
        upstream_error=r[14],
        state=r[15],
        route=r[16],
    )
