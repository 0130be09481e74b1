"""The queryable quarantine: filter, list, show, count, summarise, export and purge records.

Every function takes a :class:`~trackguard.store.sqlite.SQLiteStore`, a path or a
``sqlite:///`` URL and opens its own short-lived connection to the file, so the CLI can read a
store a running gateway is writing (WAL readers never block the writer) and the gateway can
call :func:`purge` on a timer beside its own writes. A path that does not exist is an error,
never a new empty store: a typo in ``--db`` must not look like an empty quarantine.

Records come back whole (body bytes, headers, findings), never truncated. :func:`export`
streams in constant memory: it pages through ids and reads one record at a time, so no read
snapshot is held for the whole export (which would stop WAL checkpoints meanwhile).

:func:`purge` deletes in short transactions and lowers the store's ``counts`` row
``quarantine`` in the same transaction as each delete, so ``quarantine_count()`` stays exact
and the gateway's group commits are never held up for long.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.store.base import QuarantineKind, QuarantineRecord, StoreError
from trackguard.store.files import readonly_uri
from trackguard.store.queries import QUARANTINE_COLUMNS, quarantine_record
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore, sqlite_path

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
    "iso_time",
    "list_quarantine",
    "page",
    "purge",
    "record_to_dict",
    "stats",
]

QuarantineState = Literal["quarantined", "replayed", "still_invalid"]
ExportFormat = Literal["jsonl", "csv"]
StoreLike = SQLiteStore | str | os.PathLike[str]

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

_SQLITE_MAX_INT: Final = 2**63 - 1
_BUSY_TIMEOUT_MS: Final = 5000
_PAGE: Final = 1000
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


# -- connections ----------------------------------------------------------------------------


def _store_path(target: StoreLike) -> str:
    """The file a store, path or ``sqlite:///`` URL names (the rules of ``open_store``)."""
    if isinstance(target, SQLiteStore):
        return target.path
    path = sqlite_path(target)
    if path is None:
        raise StoreError(f"{target!r}: the quarantine is queried in a SQLite store only")
    return path


@contextmanager
def _connect(target: StoreLike, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to an existing store of a schema this code reads; errors are StoreError.

    ``readonly`` (every function but :func:`purge`) opens it for reading only, so a store on
    a read-only mount (a backup being inspected) can be queried.
    """
    path = _store_path(target)
    if path in ("", ":memory:") or path.startswith("file:"):
        raise StoreError(f"the quarantine needs a store file path, not {path!r}")
    if not os.path.exists(path):
        raise StoreNotFound(str(path))
    try:
        # mode=rw/ro: never create a file, even if it disappears between the check and here.
        uri = readonly_uri(path) if readonly else Path(path).absolute().as_uri() + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    except (sqlite3.Error, ValueError) as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:
            raise StoreError(f"{path}: not a trackguard store (no schema)")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this trackguard understands"
                f" ({SCHEMA_VERSION}); upgrade trackguard"
            )
        if version < SCHEMA_VERSION:
            # An older file is upgraded in place, as the gateway would on start (the same
            # migrations, in one transaction, after a backup), so every query sees today's
            # columns; on a read-only location SQLiteStore refuses with the reason.
            SQLiteStore(path, readonly=readonly).close()
        yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def _where(flt: QuarantineFilter | None) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of a filter (``1`` when it selects everything)."""
    if flt is None:
        return "1", []
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
        # codes is a JSON array: no index can serve it, json_each reads it per row.
        exact = "EXISTS (SELECT 1 FROM json_each(quarantine.codes) AS c WHERE c.value = ?)"
        if flt.code.isascii() and flt.code.replace("_", "").isalnum():
            # A LIKE on the raw JSON text first (cheap; may over-match, never under-match a
            # plain code, which JSON writes as is), then the exact test.
            clauses.append(f"codes LIKE ? ESCAPE '\\' AND {exact}")
            params.extend([f'%"{_like(flt.code)}"%', flt.code])
        else:
            clauses.append(exact)
            params.append(flt.code)
    if flt.since is not None:
        clauses.append("received_at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("received_at < ?")
        params.append(flt.until)
    if any(isinstance(p, str) and not _is_unicode(p) for p in params):
        return "0", []
    return " AND ".join(clauses) or "1", params


def _like(text: str) -> str:
    """``text`` for a LIKE pattern: its own ``%``, ``_`` and ``\\`` matched literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clamp(n: int) -> int:
    return max(0, min(n, _SQLITE_MAX_INT))


# -- queries ---------------------------------------------------------------------------------


def list_quarantine(
    store: StoreLike, flt: QuarantineFilter | None = None, limit: int = 100, offset: int = 0
) -> list[QuarantineRecord]:
    """The selected records, most recently quarantined (highest ``id``) first."""
    where, params = _where(flt)
    sql = (
        f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {where}"
        " ORDER BY id DESC LIMIT ? OFFSET ?"
    )
    with _connect(store, readonly=True) as conn:
        rows = conn.execute(sql, [*params, _clamp(limit), _clamp(offset)]).fetchall()
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
    where, params = _where(flt)
    if before is not None:
        where = f"({where}) AND id < ?"
        params = [*params, _clamp(before)]
    if after is not None:
        where = f"({where}) AND id > ?"
        params = [*params, _clamp(after)]
    sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {where} ORDER BY id DESC LIMIT ?"
    with _connect(store) as conn:
        rows = conn.execute(sql, [*params, _clamp(limit)]).fetchall()
    return [quarantine_record(r) for r in rows]


def count_quarantine(store: StoreLike, flt: QuarantineFilter | None = None) -> int:
    """How many records the filter selects (a scan; ``quarantine_count()`` is O(1) for all)."""
    where, params = _where(flt)
    with _connect(store, readonly=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM quarantine WHERE {where}", params).fetchone()
    return int(row[0])


def get(store: StoreLike, record_id: int) -> QuarantineRecord | None:
    """The record with this id, or None (also for ids no record can have)."""
    with _connect(store, readonly=True) as conn:
        if not 0 < record_id <= _SQLITE_MAX_INT:
            return None
        row = conn.execute(
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?", (record_id,)
        ).fetchone()
    return quarantine_record(row) if row is not None else None


def stats(store: StoreLike, flt: QuarantineFilter | None = None) -> QuarantineStats:
    """Counts of the selected records by kind, state, code, event, source and UTC day.

    All breakdowns come from one read transaction, so they describe the same snapshot.
    """
    where, params = _where(flt)

    def group(conn: sqlite3.Connection, expr: str, joins: str = "") -> list[Any]:
        sql = f"SELECT {expr}, count(*) FROM quarantine{joins} WHERE {where} GROUP BY {expr}"
        return conn.execute(sql, params).fetchall()

    with _connect(store, readonly=True) as conn:
        conn.execute("BEGIN")
        try:
            total = group(conn, "NULL")
            by_kind = group(conn, "kind")
            by_state = group(conn, "state")
            by_code = group(conn, "code.value", ", json_each(quarantine.codes) AS code")
            by_event = group(conn, "event_name")
            by_source = group(conn, "source")
            by_day = group(conn, "date(received_at, 'unixepoch')")
        finally:
            conn.execute("COMMIT")
    return QuarantineStats(
        total=int(total[0][1]) if total else 0,
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


def iso_time(ts: float) -> str:
    """``received_at`` as ISO 8601 UTC with milliseconds, the request log's ``time`` format."""
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


def _iter_records(
    conn: sqlite3.Connection, flt: QuarantineFilter | None
) -> Iterator[QuarantineRecord]:
    """Selected records in id order, one at a time, up to the highest id at the start.

    Ids are read a page at a time and each record on its own, so memory holds one body and
    no read snapshot outlives a statement. A record purged meanwhile is skipped; records
    quarantined meanwhile are left for the next export.
    """
    where, params = _where(flt)
    top = conn.execute("SELECT max(id) FROM quarantine").fetchone()[0]
    if top is None:
        return
    page_sql = (
        f"SELECT id FROM quarantine WHERE ({where}) AND id > ? AND id <= ?"
        f" ORDER BY id LIMIT {_PAGE}"
    )
    one_sql = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?"
    last = 0
    while True:
        ids = [r[0] for r in conn.execute(page_sql, [*params, last, top]).fetchall()]
        for record_id in ids:
            row = conn.execute(one_sql, (record_id,)).fetchone()
            if row is not None:
                yield quarantine_record(row)
        if len(ids) < _PAGE:
            return
        last = ids[-1]


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
    with _connect(store, readonly=True) as conn:
        if fmt == "jsonl":
            for record in _iter_records(conn, flt):
                out.write(_encode(record_to_dict(record)).decode() + "\n")
                written += 1
        else:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for record in _iter_records(conn, flt):
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
    other writers (each transaction waits up to 5 s for the write lock).
    """
    if not (math.isfinite(older_than_seconds) and older_than_seconds >= 0):
        raise ValueError(
            f"older_than_seconds must be a finite number >= 0, not {older_than_seconds!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    cutoff = (time.time() if now is None else now) - older_than_seconds
    deleted = 0
    with _connect(store) as conn:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = conn.execute(_PURGE, (cutoff, batch_size)).rowcount
                if n:
                    conn.execute("UPDATE counts SET n = n - ? WHERE name = 'quarantine'", (n,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one to see
                        conn.execute("ROLLBACK")
                raise
            deleted += n
            if n < batch_size:
                return deleted
