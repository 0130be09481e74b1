"""Read-only aggregate queries over a store, for the console's pages.

Each function runs in its own read-only :func:`~trackguard.store.sql.session`, so a page can
never write: on SQLite its own connection to the file (WAL lets it read beside a running
gateway without blocking its commits), on PostgreSQL a pooled connection of the store given
(or of one opened from the URL). The SQL is the same text on both: buckets are integer
division of integer columns (``minute / ?``), which both databases truncate alike; text is
ordered by its bytes on both (``COLLATE "C"`` on PostgreSQL, whose default collation may sort
by language rules), so lists tie-break alike. The monitor's tables (``monitor_counts``,
``monitor_hourly``, ``monitor_health``, ``monitor_alerts``) may be missing on a store no
monitor has written yet: their queries then return nothing rather than fail.

Every query is bounded: time series by their range, lists by ``limit``, and quarantine pages
by keyset (``before`` an id), so a page costs the same at any depth.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final, TypeAlias

import msgspec

from trackguard.store.sql import Session, session
from trackguard.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

#: What each query reads: a store, a SQLite path or ``sqlite:///`` URL, or a
#: ``postgresql://`` URL (:func:`~trackguard.store.sql.session`).
Target: TypeAlias = "SQLiteStore | PostgresStore | str | os.PathLike[str]"

#: Outcomes a request counts as bad in the invalid rate: refused by Customer.io's contract
#: (``invalid``) or by the plan (``rejected``).
BAD_OUTCOMES: Final = ("invalid", "rejected")
#: The counter rows that are not requests: what the monitor polls from delivery.
DELIVERY_EVENT: Final = "(delivery)"


class Point(msgspec.Struct, frozen=True, array_like=True):
    """One bucket of a series: its start (Unix seconds), requests, and bad requests."""

    at: int
    total: int
    bad: int


class OutboxGroup(msgspec.Struct, frozen=True):
    key: str
    pending: int
    oldest: float


class UpstreamError(msgspec.Struct, frozen=True):
    seq: int
    person: str
    event_name: str | None
    attempts: int
    state: str
    last_error: str
    received_at: float


def event_series(store: Target, since: float, until: float, bucket: int) -> dict[str, list[Point]]:
    """Requests and bad requests per event in ``bucket``-second buckets over ``[since, until)``.

    Buckets with no traffic are absent (the chart draws them as gaps at zero). Delivery's own
    rows are left out: they are not requests. Hour-sized buckets read the hourly rollup.
    """
    bad = ",".join("?" * len(BAD_OUTCOMES))
    with session(store) as s:
        table, unit = _counts_table(s, bucket)
        if table is None:
            return {}
        step = max(1, bucket // unit)
        sql = f"""
            SELECT event, ({_UNIT[table]} / ?) * ? AS b, sum(n),
                   sum(CASE WHEN name IN ({bad}) THEN n ELSE 0 END)
            FROM {table}
            WHERE kind = 'outcome' AND {_UNIT[table]} >= ? AND {_UNIT[table]} < ? AND event != ?
            GROUP BY event, b ORDER BY {_bytewise(s, "event")}, b"""
        rows = s.rows(
            sql,
            (step, step, *BAD_OUTCOMES, int(since // unit), int(-(-until // unit)), DELIVERY_EVENT),
        )
        out: dict[str, list[Point]] = {}
        for event, b, total, n_bad in rows:
            out.setdefault(event, []).append(Point(int(b) * unit, int(total), int(n_bad)))
    return out


_UNIT: Final = {"monitor_counts": "minute", "monitor_hourly": "hour"}


def _bytewise(s: Session, column: str) -> str:
    """``column`` to order by its bytes, as SQLite orders text."""
    return f'{column} COLLATE "C"' if s.dialect == "postgresql" else column


def _counts_table(s: Session, bucket: int) -> tuple[str | None, int]:
    """The counter table to read for ``bucket``-second buckets, and its unit in seconds."""
    if bucket % 3600 == 0 and s.has_table("monitor_hourly"):
        return "monitor_hourly", 3600
    if s.has_table("monitor_counts"):
        return "monitor_counts", 60
    return None, 60


def delivery_series(
    store: Target, since: float, until: float, bucket: int
) -> dict[str, list[tuple[int, int]]]:
    """Delivery outcomes (``upstream_request``, ``delivered``, ``upstream_rejected``,
    ``upstream_error``) per bucket, as ``(bucket start, count)`` pairs."""
    step = max(1, bucket // 60)
    sql = """
        SELECT name, (minute / ?) * ? AS b, sum(n) FROM monitor_counts
        WHERE kind = 'outcome' AND event = ? AND minute >= ? AND minute < ?
        GROUP BY name, b ORDER BY {name}, b"""
    out: dict[str, list[tuple[int, int]]] = {}
    with session(store) as s:
        if not s.has_table("monitor_counts"):
            return out
        sql = sql.format(name=_bytewise(s, "name"))
        params = (step, step, DELIVERY_EVENT, int(since // 60), int(-(-until // 60)))
        for name, b, n in s.rows(sql, params):
            out.setdefault(name, []).append((int(b) * 60, int(n)))
    return out


def event_usage(store: Target, since: float) -> dict[str, tuple[int, float, int]]:
    """Per event seen since ``since`` (read by the hour): ``(requests, start of the last hour
    it was seen in, bad requests)``."""
    bad = ",".join("?" * len(BAD_OUTCOMES))
    with session(store) as s:
        table, unit = _counts_table(s, 3600)
        if table is None:
            return {}
        column = _UNIT[table]
        sql = f"""
            SELECT event, sum(n), max({column}),
                   sum(CASE WHEN name IN ({bad}) THEN n ELSE 0 END)
            FROM {table} WHERE kind = 'outcome' AND {column} >= ? AND event != ?
            GROUP BY event"""
        rows = s.rows(sql, (*BAD_OUTCOMES, int(since // unit), DELIVERY_EVENT))
        out = {e: (int(n), float(m) * unit, int(b)) for e, n, m, b in rows}
        if table == "monitor_hourly" and out and s.has_table("monitor_counts"):
            # The last hour seen, to the minute: only the latest two hours are read.
            latest = max(last for _, last, _ in out.values())
            recent = s.rows(
                "SELECT event, max(minute) FROM monitor_counts"
                " WHERE kind = 'outcome' AND minute >= ? AND event != ? GROUP BY event",
                (int(latest // 60) - 60, DELIVERY_EVENT),
            )
            for event, minute in recent:
                if event in out:
                    n, _, b = out[event]
                    out[event] = (n, float(minute) * 60, b)
        return out


def code_counts(store: Target, since: float, limit: int = 500) -> list[tuple[str, str, int]]:
    """``(event, code, count)`` of findings since ``since`` (by the hour), most frequent first."""
    with session(store) as s:
        table, unit = _counts_table(s, 3600)
        if table is None:
            return []
        column = _UNIT[table]
        sql = f"""
            SELECT event, name, sum(n) AS c FROM {table}
            WHERE kind = 'code' AND {column} >= ? GROUP BY event, name
            ORDER BY c DESC, {_bytewise(s, "event")}, {_bytewise(s, "name")} LIMIT ?"""
        rows = s.rows(sql, (int(since // unit), limit))
        return [(e, c, int(n)) for e, c, n in rows]


def health_latest(store: Target) -> dict[str, tuple[float, int]]:
    """The latest data-health snapshot of each metric: ``metric -> (at, value)``."""
    sql = """
        SELECT metric, at, value FROM monitor_health AS h
        WHERE at = (SELECT max(at) FROM monitor_health WHERE metric = h.metric)"""
    with session(store) as s:
        if not s.has_table("monitor_health"):
            return {}
        return {m: (float(at), int(v)) for m, at, v in s.rows(sql)}


def alert_states(store: Target) -> dict[str, bytes]:
    """Every rule's persisted state blob (``monitor/state.py`` decodes it)."""
    with session(store) as s:
        if not s.has_table("monitor_alerts"):
            return {}
        return {r: bytes(b) for r, b in s.rows("SELECT rule, state FROM monitor_alerts")}


def pending_by(store: Target, column: str, limit: int = 20) -> list[OutboxGroup]:
    """Pending outbox rows grouped by ``person`` or ``event_name``, largest groups first."""
    if column not in ("person", "event_name"):
        raise ValueError(f"cannot group the outbox by {column!r}")
    with session(store) as s:
        key = f"coalesce({column}, '(none)')"
        sql = f"""
            SELECT {key}, count(*) AS c, min(received_at) FROM outbox WHERE state = 'pending'
            GROUP BY 1 ORDER BY c DESC, {_bytewise(s, key)} LIMIT ?"""
        return [OutboxGroup(str(k), int(c), float(t)) for k, c, t in s.rows(sql, (limit,))]


def upstream_errors(store: Target, limit: int = 20) -> list[UpstreamError]:
    """The latest rows Customer.io answered with an error (retrying or failed), newest first.

    Walks the outbox from its newest row and stops after ``limit`` matches or 50,000 rows, so
    the page stays cheap on a large outbox; older errors are in the quarantine.
    """
    sql = """
        SELECT seq, person, event_name, attempts, state, last_error, received_at FROM (
            SELECT seq, person, event_name, attempts, state, last_error, received_at
            FROM outbox ORDER BY seq DESC LIMIT 50000) AS latest
        WHERE last_error IS NOT NULL ORDER BY seq DESC LIMIT ?"""
    with session(store) as s:
        return [
            UpstreamError(int(seq), p, e, int(a), st, le, float(r))
            for seq, p, e, a, st, le, r in s.rows(sql, (limit,))
        ]


class Counts(msgspec.Struct, frozen=True):
    pending: int
    delivered: int
    failed: int
    quarantine: int
    duplicate: int
    oldest_pending_at: float | None


def outbox_counts(store: Target) -> Counts:
    """The store's running counts (O(1)) and when the oldest pending row was received."""
    with session(store) as s:
        n = dict(s.rows("SELECT name, n FROM counts"))
        oldest = s.one(
            "SELECT received_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"
        )
    return Counts(
        pending=int(n.get("pending", 0)),
        delivered=int(n.get("delivered", 0)),
        failed=int(n.get("failed", 0)),
        quarantine=int(n.get("quarantine", 0)),
        duplicate=int(n.get("duplicate", 0)),
        oldest_pending_at=None if oldest is None else float(oldest[0]),
    )


def quarantine_max_id(store: Target) -> int:
    """The highest quarantine record id (0 when there is none); O(1) on the rowid."""
    with session(store) as s:
        row = s.one("SELECT max(id) FROM quarantine")
    return int(row[0] or 0) if row else 0
