"""The queryable quarantine: filter, list, show, count, summarise, export and purge records.

Every function takes a store (SQLite or PostgreSQL), a path, a ``sqlite:///`` or
``postgresql://`` URL, or an open :class:`~trackguard.store.sql.Session`, and runs its SQL
through :func:`~trackguard.store.sql.session`: on SQLite its own short-lived connection to the
file, so the CLI can read a store a running gateway is writing (WAL readers never block the
writer) and the gateway can call :func:`purge` on a timer beside its own writes. A target that
holds no store is an error (:class:`~trackguard.errors.StoreNotFound`), never a new empty
store: a typo in ``--db`` must not look like an empty quarantine. The SQL is shared; where the
dialects differ (the JSON ``codes`` array, UTC days) each has its own text.

Records come back whole (body bytes, headers, findings), never truncated. :func:`export`
streams in constant memory: it pages through ids and reads records in small groups, so no read
snapshot is held for the whole export (which would stop WAL checkpoints meanwhile).

:func:`purge` deletes in short transactions and lowers the store's ``counts`` row
``quarantine`` in the same transaction as each delete, so ``quarantine_count()`` stays exact
and the gateway's group commits are never held up for long.
"""

from __future__ import annotations

import base64
import csv
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec

from trackguard.durations import iso_time
from trackguard.store.base import QuarantineKind, QuarantineRecord
from trackguard.store.queries import QUARANTINE_COLUMNS, quarantine_record
from trackguard.store.sql import Dialect, Session, session, snapshot
from trackguard.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from trackguard.store.postgres import PostgresStore

__all__ = [
    "CSV_COLUMNS",
    "ExportFormat",
    "QuarantineFilter",
    "QuarantineState",
    "QuarantineStats",
    "StoreLike",
    "count_quarantine",
    "csv_row",
    "export",
    "get",
    "list_quarantine",
    "page",
    "purge",
    "record_to_dict",
    "stats",
]

QuarantineState = Literal["quarantined", "replayed", "still_invalid"]
ExportFormat = Literal["jsonl", "csv"]
StoreLike: TypeAlias = "SQLiteStore | PostgresStore | Session | str | os.PathLike[str]"

#: The columns of a CSV export, in order; ``codes`` is space-separated, ``headers`` and
#: ``findings`` are JSON, ``body_base64`` is filled only when the body is not UTF-8.
CSV_COLUMNS: Final = (
    "id",
    "time",
    "received_at",
    "kind",
    "state",
    "method",
    "path",
    "source",
    "plan_version",
    "route",
    "status",
    "event_name",
    "codes",
    "batch_index",
    "upstream_error",
    "headers",
    "findings",
    "body",
    "body_base64",
)

#: The largest integer either database holds (a limit or id beyond it is clamped).
_MAX_INT: Final = 2**63 - 1
_PAGE: Final = 1000
#: An export reads records in groups of at most this many, and this many body bytes.
_GROUP_ROWS: Final = 100
_GROUP_BYTES: Final = 256 * 1024
_encode: Final = msgspec.json.encode
_decode: Final = msgspec.json.decode


class QuarantineFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which records a query selects; fields left ``None`` select everything.

    Text fields match exactly (``code`` matches a record carrying that code among others;
    ``route`` is a route key, ``"POST /api/v1/customers/{identifier}/events"``).
    ``since`` is inclusive and ``until`` exclusive, both Unix times compared with
    ``received_at``, so consecutive windows never count a record twice. A text value that is
    not valid Unicode (a lone surrogate from undecodable command-line bytes) matches nothing:
    every stored value is valid UTF-8.
    """

    event: str | None = None
    code: str | None = None
    source: str | None = None
    kind: QuarantineKind | None = None
    state: QuarantineState | None = None
    plan_version: str | None = None
    route: str | None = None
    since: float | None = None
    until: float | None = None


class QuarantineStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of the selected records; each breakdown is ``(value, count)`` pairs.

    Breakdowns are sorted by count, largest first, then by value, except ``by_day`` (UTC
    dates, oldest first). ``by_code`` counts a record once under each of its codes, so its
    counts may add up to more than ``total``. ``None`` is a record without an event name or
    source.
    """

    total: int
    by_kind: tuple[tuple[str, int], ...]
    by_state: tuple[tuple[str, int], ...]
    by_code: tuple[tuple[str, int], ...]
    by_event: tuple[tuple[str | None, int], ...]
    by_source: tuple[tuple[str | None, int], ...]
    by_day: tuple[tuple[str, int], ...]


# -- sessions -------------------------------------------------------------------------------


@contextmanager
def _session(target: StoreLike, *, readonly: bool = True) -> Iterator[Session]:
    """A session on ``target`` (or ``target`` itself when it is one: a caller running several
    queries, as replay does, opens one session for all of them)."""
    if isinstance(target, Session):
        yield target
        return
    with session(target, readonly=readonly) as s:
        yield s


def _where(flt: QuarantineFilter | None, dialect: Dialect) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of a filter (``TRUE`` when it selects everything)."""
    if flt is None:
        return "TRUE", []
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("event_name", flt.event),
        ("source", flt.source),
        ("kind", flt.kind),
        ("state", flt.state),
        ("plan_version", flt.plan_version),
        ("route", flt.route),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.code is not None:
        # codes is a JSON array as text: no index serves it, each row's array is read.
        if dialect == "postgresql":
            exact = "codes::jsonb @> jsonb_build_array(?::text)"
        else:
            exact = "EXISTS (SELECT 1 FROM json_each(quarantine.codes) AS c WHERE c.value = ?)"
        if flt.code.isascii() and flt.code.replace("_", "").isalnum():
            # A LIKE on the raw JSON text first (cheap; may over-match, never under-match a
            # plain code, which JSON writes as is), then the exact test.
            clauses.append(f"codes LIKE ? ESCAPE '\\' AND {exact}")
            params.extend([f'%"{_like(flt.code)}"%', flt.code])
        else:
            clauses.append(exact)
            params.append(flt.code)
    for bound, op in ((flt.since, ">="), (flt.until, "<")):
        if bound is not None:
            clauses.append(f"received_at {op} ?")
            params.append(bound)
    if any(not _storable(p, dialect) for p in params):
        return "FALSE", []
    return " AND ".join(clauses) or "TRUE", params


def _like(text: str) -> str:
    """``text`` for a LIKE pattern: its own ``%``, ``_`` and ``\\`` matched literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _storable(value: object, dialect: Dialect) -> bool:
    """Whether a stored value can equal ``value``; one that cannot matches nothing rather
    than failing: text that is not valid Unicode (every stored value is UTF-8), text with NUL
    on PostgreSQL (its text cannot hold one), a NaN time (no time compares with it)."""
    if isinstance(value, float):
        return not math.isnan(value)
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return dialect == "sqlite" or "\x00" not in value


def _clamp(n: int) -> int:
    return max(0, min(n, _MAX_INT))


# -- queries ---------------------------------------------------------------------------------


def list_quarantine(
    store: StoreLike, flt: QuarantineFilter | None = None, limit: int = 100, offset: int = 0
) -> list[QuarantineRecord]:
    """The selected records, most recently quarantined (highest ``id``) first."""
    with _session(store) as s:
        where, params = _where(flt, s.dialect)
        rows = s.rows(
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {where}"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, _clamp(limit), _clamp(offset)],
        )
    return [quarantine_record(r) for r in rows]


def page(
    store: StoreLike,
    flt: QuarantineFilter | None = None,
    before: int | None = None,
    limit: int = 50,
    after: int | None = None,
) -> list[QuarantineRecord]:
    """The selected records with ids below ``before`` (and above ``after``), highest first:
    keyset pagination, so a page deep in millions of records costs what the first one does
    (no ``OFFSET`` scan), and ``after`` bounds how far a sparse filter scans."""
    with _session(store) as s:
        where, params = _where(flt, s.dialect)
        if before is not None:
            where = f"({where}) AND id < ?"
            params = [*params, _clamp(before)]
        if after is not None:
            where = f"({where}) AND id > ?"
            params = [*params, _clamp(after)]
        rows = s.rows(
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, _clamp(limit)],
        )
    return [quarantine_record(r) for r in rows]


def count_quarantine(store: StoreLike, flt: QuarantineFilter | None = None) -> int:
    """How many records the filter selects (a scan; ``quarantine_count()`` is O(1) for all)."""
    with _session(store) as s:
        where, params = _where(flt, s.dialect)
        row = s.one(f"SELECT count(*) FROM quarantine WHERE {where}", params)
    return int(row[0]) if row else 0


def get(store: StoreLike, record_id: int) -> QuarantineRecord | None:
    """The record with this id, or None (also for ids no record can have)."""
    with _session(store) as s:
        if not 0 < record_id <= _MAX_INT:
            return None
        row = s.one(f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?", (record_id,))
    return quarantine_record(row) if row is not None else None


#: A record's UTC day: SQLite's ``date()`` is NULL outside years 0000-9999, and PostgreSQL
#: gets the same range (its ``to_timestamp`` fails beyond its own), so both say the same.
_DAY: Final[dict[Dialect, str]] = {
    "sqlite": "date(received_at, 'unixepoch')",
    "postgresql": "CASE WHEN received_at >= -62167219200 AND received_at < 253402300800"
    " THEN to_char(to_timestamp(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') END",
}
#: The codes of a record, one row each, as a ``FROM`` item with the column ``value``.
_CODES: Final[dict[Dialect, str]] = {
    "sqlite": "json_each(quarantine.codes) AS code",
    "postgresql": "jsonb_array_elements_text(quarantine.codes::jsonb) AS code(value)",
}


def stats(store: StoreLike, flt: QuarantineFilter | None = None) -> QuarantineStats:
    """Counts of the selected records by kind, state, code, event, source and UTC day.

    All breakdowns come from one read transaction, so they describe the same snapshot.
    """
    with _session(store) as s:
        where, params = _where(flt, s.dialect)

        def group(expr: str, joins: str = "") -> list[Any]:
            sql = f"SELECT {expr}, count(*) FROM quarantine{joins} WHERE {where} GROUP BY 1"
            return s.rows(sql, params)

        with snapshot(s):
            total = s.one(f"SELECT count(*) FROM quarantine WHERE {where}", params)
            by_kind = group("kind")
            by_state = group("state")
            by_code = group("code.value", f", {_CODES[s.dialect]}")
            by_event = group("event_name")
            by_source = group("source")
            by_day = group(_DAY[s.dialect])
    return QuarantineStats(
        total=int(total[0]) if total else 0,
        by_kind=_by_count(by_kind),
        by_state=_by_count(by_state),
        by_code=_by_count(by_code),
        by_event=_by_count(by_event),
        by_source=_by_count(by_source),
        by_day=tuple(sorted((str(day or "(invalid time)"), int(n)) for day, n in by_day)),
    )


def _by_count(rows: list[Any]) -> tuple[tuple[Any, int], ...]:
    pairs = [(value, int(n)) for value, n in rows]
    pairs.sort(key=lambda p: (-p[1], p[0] is None, "" if p[0] is None else str(p[0])))
    return tuple(pairs)


# -- export ----------------------------------------------------------------------------------


def _body_fields(body: bytes) -> tuple[str, str | None]:
    """The body as text, and as base64 when it is not UTF-8 (the text then has U+FFFD)."""
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return body.decode("utf-8", "replace"), base64.b64encode(body).decode("ascii")


def _headers_object(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Headers as an object, as the request log writes them; a repeated header's values are
    joined with ``", "`` (the HTTP rule for combining them), so none is lost."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _findings(raw: bytes) -> Any:
    try:
        return _decode(raw)
    except msgspec.DecodeError:  # the store only writes JSON; keep anything else as text
        return raw.decode("utf-8", "replace")


def record_to_dict(record: QuarantineRecord) -> dict[str, Any]:
    """A record as one JSON object: the JSONL export line and ``show --json``.

    It is a request-log line too (``time``, ``method``, ``path``, ``headers``, ``body``,
    ``body_base64``, ``status``, ``source``), so ``trackguard check`` and ``trackguard audit``
    read an export as it is. ``body`` is the raw body as text; when the bytes are not UTF-8
    it has replacement characters and ``body_base64`` holds the exact bytes. A record with a
    ``batch_index`` holds one item of a v2 batch, not the whole batch body.
    """
    body, body_base64 = _body_fields(record.body)
    out: dict[str, Any] = {
        "id": record.id,
        "time": iso_time(record.received_at),
        "received_at": record.received_at,
        "kind": record.kind,
        "state": record.state,
        "method": record.method,
        "path": record.path,
        "headers": _headers_object(record.headers),
        "body": body,
    }
    if body_base64 is not None:
        out["body_base64"] = body_base64
    out.update(
        source=record.source,
        plan_version=record.plan_version,
        route=record.route,
        status=record.status,
        event_name=record.event_name,
        codes=list(record.codes),
        batch_index=record.batch_index,
        upstream_error=record.upstream_error,
        findings=_findings(record.findings),
    )
    return out


def csv_row(record: QuarantineRecord) -> list[Any]:
    """A record as one CSV row of :data:`CSV_COLUMNS` (the CSV export's rows)."""
    body, body_base64 = _body_fields(record.body)
    return [
        record.id,
        iso_time(record.received_at),
        repr(record.received_at),
        record.kind,
        record.state,
        record.method,
        record.path,
        record.source or "",
        record.plan_version,
        record.route or "",
        record.status,
        record.event_name or "",
        " ".join(record.codes),
        "" if record.batch_index is None else record.batch_index,
        record.upstream_error or "",
        _encode(_headers_object(record.headers)).decode(),
        record.findings.decode("utf-8", "replace"),
        body,
        body_base64 or "",
    ]


def _iter_records(s: Session, flt: QuarantineFilter | None) -> Iterator[QuarantineRecord]:
    """Selected records in id order, up to the highest id at the start.

    Ids (and body sizes) are read a page at a time, then records in small groups of at most
    :data:`_GROUP_ROWS` records and :data:`_GROUP_BYTES` of bodies (a larger body alone), so
    memory holds a bounded number of bodies, no read snapshot outlives a statement, and a
    PostgreSQL export is not one round trip per record. A record purged before its group is
    read is skipped; records quarantined meanwhile are left for the next export.
    """
    where, params = _where(flt, s.dialect)
    top = s.one("SELECT max(id) FROM quarantine")
    if top is None or top[0] is None:
        return
    page_sql = (
        f"SELECT id, length(body) FROM quarantine WHERE ({where}) AND id > ? AND id <= ?"
        f" ORDER BY id LIMIT {_PAGE}"
    )
    last = 0
    while True:
        page = s.rows(page_sql, [*params, last, top[0]])
        for group in _groups(page):
            marks = ", ".join("?" * len(group))
            sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id IN ({marks}) ORDER BY id"
            for row in s.rows(sql, group):
                yield quarantine_record(row)
        if len(page) < _PAGE:
            return
        last = page[-1][0]


def _groups(page: list[tuple[Any, ...]]) -> Iterator[list[int]]:
    """The ids of ``(id, body length)`` rows, in groups an export reads at once."""
    group: list[int] = []
    size = 0
    for record_id, length in page:
        if group and (size + int(length or 0) > _GROUP_BYTES or len(group) >= _GROUP_ROWS):
            yield group
            group, size = [], 0
        group.append(int(record_id))
        size += int(length or 0)
    if group:
        yield group


def export(
    store: StoreLike,
    out: IO[str],
    fmt: ExportFormat = "jsonl",
    flt: QuarantineFilter | None = None,
) -> int:
    """Write the selected records to ``out``, oldest first; returns how many were written.

    ``jsonl``: one :func:`record_to_dict` object per line. ``csv``: a header row of
    :data:`CSV_COLUMNS`, then one row per record (RFC 4180: CRLF line ends, fields with
    newlines quoted). Open a file for CSV with ``newline=""``.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use 'jsonl' or 'csv'")
    written = 0
    with _session(store) as s:
        if fmt == "jsonl":
            for record in _iter_records(s, flt):
                out.write(_encode(record_to_dict(record)).decode() + "\n")
                written += 1
        else:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for record in _iter_records(s, flt):
                writer.writerow(csv_row(record))
                written += 1
    return written


# -- retention -------------------------------------------------------------------------------

_PURGE: Final = (
    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine WHERE received_at < ?"
    " ORDER BY received_at LIMIT ?)"
)


def purge(
    store: StoreLike,
    older_than_seconds: float,
    *,
    now: float | None = None,
    batch_size: int = 1000,
) -> int:
    """Delete every record received more than ``older_than_seconds`` before ``now`` (default:
    the current time); returns how many were deleted.

    Retention is by ``received_at`` (when the request reached trackguard), whatever the
    record's kind or state. Records go ``batch_size`` per transaction, each lowering the
    ``quarantine`` count in the same transaction, so a large purge never holds the write lock
    for long and ``quarantine_count()`` is exact at every moment. A gateway keeps a retention
    with ``purge(store, retention_seconds)`` on a timer; it is idempotent and safe beside
    other writers (on SQLite each transaction waits up to 5 s for the write lock).
    """
    if not (math.isfinite(older_than_seconds) and older_than_seconds >= 0):
        raise ValueError(
            f"older_than_seconds must be a finite number >= 0, not {older_than_seconds!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    cutoff = (time.time() if now is None else now) - older_than_seconds
    deleted = 0
    with _session(store, readonly=False) as s:
        while True:
            with s.transaction():
                n = s.run(_PURGE, (cutoff, batch_size))
                if n:
                    s.run("UPDATE counts SET n = n - ? WHERE name = 'quarantine'", (n,))
            deleted += n
            if n < batch_size:
                return deleted
