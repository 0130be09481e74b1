"""The Store in one SQLite file (WAL): the outbox, the quarantine and delivery state.

Writes go through one writer connection guarded by a lock, each in a ``BEGIN IMMEDIATE``
transaction so a second process on the same file (a separate delivery worker) waits on
``busy_timeout`` instead of failing half-way. Reads use one connection per thread, so they never
queue behind a group commit and always see the latest committed snapshot (WAL readers do not
block the writer).

Counts (pending, delivered, failed, quarantined) are kept in the ``counts`` table, updated in the
same transactions as the rows they count, so ``outbox_stats`` and ``quarantine_count`` stay O(1)
however many delivered rows accumulate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from trackguard.private import create_private
from trackguard.store.base import (
    OutboxRow,
    QuarantineRecord,
    Store,
    StoreClosed,
    StoreError,
    StoreNotFound,
    Write,
    dedupe_conflict,
)
from trackguard.store.claims import ClaimSweep
from trackguard.store.files import (
    cannot_open,
    connect,
    copy_database,
    not_a_store,
    readonly_uri,
    schema_version,
    upgrade_backup_path,
    writable_location,
)
from trackguard.store.prune_rules import CLAIMS
from trackguard.store.queries import (
    OUTBOX_COLUMNS,
    StoreReads,
    outbox_row_from,
)
from trackguard.store.sqlite_claims import CommitClaims
from trackguard.store.urls import (
    is_postgres_url,
    postgres_store_class,
    sqlite_path,
    unsupported_url,
)

log = logging.getLogger("trackguard.store")

Synchronous = Literal["FULL", "NORMAL"]

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 7

# Migrations, one tuple of statements per version step: ``_MIGRATIONS[n]`` takes a database at
# user_version n to n + 1. Statements run one by one (``executescript`` would commit early).
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE outbox (
            seq             INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at     REAL    NOT NULL,
            person          TEXT    NOT NULL,
            payload         BLOB    NOT NULL,
            dedupe_key      TEXT,
            event_name      TEXT,
            source          TEXT,
            state           TEXT    NOT NULL
                            CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL,
            next_attempt_at REAL    NOT NULL,
            last_error      TEXT,
            delivered_at    REAL,
            finished_at     REAL
        )""",
        # Lease scan: pending rows in seq order, due-ness and person read from the index alone.
        """CREATE INDEX outbox_pending_seq ON outbox (seq, next_attempt_at, person)
            WHERE state = 'pending'""",
        # Pending rows that are not due yet (retrying, or leased): the lease's blocked set.
        # New rows all share one next_attempt_at, so inserts append; a (person, ...) index
        # would insert at random places and cost up to half the insert rate.
        """CREATE INDEX outbox_pending_due ON outbox (next_attempt_at)
            WHERE state = 'pending'""",
        """CREATE TABLE quarantine (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at    REAL    NOT NULL,
            kind           TEXT    NOT NULL CHECK (kind IN ('contract', 'plan', 'upstream')),
            method         TEXT    NOT NULL,
            path           TEXT    NOT NULL,
            headers        TEXT    NOT NULL,
            body           BLOB    NOT NULL,
            source         TEXT,
            plan_version   TEXT    NOT NULL,
            status         INTEGER NOT NULL,
            findings       TEXT    NOT NULL,
            event_name     TEXT,
            codes          TEXT    NOT NULL,
            batch_index    INTEGER,
            upstream_error TEXT,
            state          TEXT    NOT NULL
                           CHECK (state IN ('quarantined', 'replayed', 'still_invalid')),
            outbox_seq     INTEGER
        )""",
        "CREATE INDEX quarantine_received_at ON quarantine (received_at)",
        "CREATE INDEX quarantine_event_name ON quarantine (event_name)",
        "CREATE INDEX quarantine_kind ON quarantine (kind)",
        "CREATE TABLE counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
        """INSERT INTO counts (name, n)
            VALUES ('pending', 0), ('delivered', 0), ('failed', 0), ('quarantine', 0)""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    ),
    (
        # Dedupe keys and event ids seen, until they expire: claimed in the commit transaction,
        # so two gateways sharing the file can never both deliver one key.
        "CREATE TABLE claims (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
        "CREATE INDEX claims_expires_at ON claims (expires_at)",
        # Derived profile attributes, updated only by orders whose claim was new (idempotent).
        """CREATE TABLE profiles (
            person           TEXT PRIMARY KEY,
            first_order_date INTEGER,
            last_order_date  INTEGER,
            order_count      INTEGER NOT NULL,
            lifetime_value   REAL    NOT NULL
        ) WITHOUT ROWID""",
        "INSERT INTO counts (name, n) VALUES ('duplicate', 0)",
    ),
    (
        # The id behind each email, learned from identifies carrying both (or imported).
        "CREATE TABLE identities (email TEXT PRIMARY KEY, id TEXT NOT NULL) WITHOUT ROWID",
        "CREATE INDEX identities_id ON identities (id)",
        # Anonymous activity, and the person an identify linked it to.
        """CREATE TABLE anonymous (
            anonymous_id TEXT PRIMARY KEY,
            first_seen   REAL NOT NULL,
            event        TEXT,
            person       TEXT,
            linked_at    REAL
        ) WITHOUT ROWID""",
        "CREATE INDEX anonymous_unlinked ON anonymous (first_seen) WHERE person IS NULL",
    ),
    (
        # Change numbers, so a gateway reads only what others committed since it last looked
        # (``identities_since``, ``last_orders_since``). Each new binding, and each profile an
        # order updates, gets max(seq) + 1 inside the commit's BEGIN IMMEDIATE transaction:
        # writers are serial, so numbers grow in commit order and a reader that saw seq n has
        # seen every row numbered below it. Rows are never deleted, so numbers are never reused.
        "ALTER TABLE identities ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE profiles ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
        # Rows of a v3 file are numbered 1..n (in key order: their commit order is unknown).
        """UPDATE identities SET seq = n.rn FROM
            (SELECT email, row_number() OVER (ORDER BY email) AS rn FROM identities) AS n
            WHERE n.email = identities.email""",
        """UPDATE profiles SET seq = n.rn FROM
            (SELECT person, row_number() OVER (ORDER BY person) AS rn FROM profiles) AS n
            WHERE n.person = profiles.person""",
        "CREATE INDEX identities_seq ON identities (seq)",
        "CREATE INDEX profiles_seq ON profiles (seq)",
    ),
    (
        # The route key and plan version of the verdict that accepted each operation, carried
        # to the quarantine record when Customer.io rejects the row at delivery. Rows of a v4
        # file keep NULL (what accepted them is not known); adding a nullable column rewrites
        # no row, so the upgrade is instant whatever the outbox holds.
        "ALTER TABLE outbox ADD COLUMN route TEXT",
        "ALTER TABLE outbox ADD COLUMN plan_version TEXT",
        # The route key of every quarantine record (NULL on records of a v4 file).
        "ALTER TABLE quarantine ADD COLUMN route TEXT",
        "CREATE INDEX quarantine_plan_version ON quarantine (plan_version)",
        "CREATE INDEX quarantine_route ON quarantine (route)",
    ),
    (
        # Retention: finished rows (delivered or failed) oldest first, and anonymous activity
        # by first sighting, so a prune batch reads only the rows it deletes. Pending rows stay
        # out of the outbox index; finished_at only grows, so its inserts append.
        """CREATE INDEX outbox_finished ON outbox (finished_at)
            WHERE state != 'pending'""",
        "CREATE INDEX anonymous_first_seen ON anonymous (first_seen)",
    ),
    (
        # Who claimed each dedupe key (a person key): the same key from another person is not
        # a retry but a conflict, kept in the quarantine. Claims of a v6 file keep NULL and
        # are treated as the same person's (a duplicate, as v6 did) until they expire.
        "ALTER TABLE claims ADD COLUMN person TEXT",
        "INSERT INTO counts (name, n) VALUES ('dedupe_conflict', 0)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_INSERT_OUTBOX: Final = (
    "INSERT INTO outbox (received_at, person, payload, dedupe_key, event_name, source, state,"
    " attempts, next_attempt_at, last_error, delivered_at, route, plan_version)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# A new row as the gateway queues it (pending, never tried): the constant columns are literals,
# because the sqlite3 module binds None and bytes only after a failed adapter lookup that
# formats an AttributeError (about 2,400 instructions a value); a bytearray payload binds as
# the same BLOB without it.
_INSERT_NEW_OUTBOX: Final = (
    "INSERT INTO outbox (received_at, person, payload, dedupe_key, event_name, source, state,"
    " attempts, next_attempt_at, route, plan_version)"
    " VALUES (?,?,?,?,?,?,'pending',0,?,?,?)"
)
_INSERT_QUARANTINE: Final = (
    "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
    " plan_version, status, findings, event_name, codes, batch_index, upstream_error, state,"
    " outbox_seq, route) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# The same for a commit's new records, which hold None in several columns (and bytes): there a
# nullable column gets a stand-in for None that NULLIF turns into NULL, 0 where the value is
# text and '' where it is an integer (a type the column's values never have, so no real value
# is taken for one), and the body binds as a bytearray (:func:`_new_quarantine_params`).
# Outbox rows hold few None: there the NULLIF calls would cost more than they save.
_INSERT_NEW_QUARANTINE: Final = (
    "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
    " plan_version, status, findings, event_name, codes, batch_index, upstream_error, state,"
    " outbox_seq, route) VALUES (?,?,?,?,?,?,NULLIF(?,0),?,?,?,NULLIF(?,0),?,NULLIF(?,''),"
    "NULLIF(?,0),?,NULLIF(?,''),NULLIF(?,0))"
)
# Pending rows in seq order that are due and whose person has no earlier pending row that is
# not due (retrying later, or leased and still in flight). ``blocked`` (the first not-due seq of
# each person) comes from ``outbox_pending_due``, so it costs what the not-due rows cost; the scan
# walks ``outbox_pending_seq`` (which covers due-ness and person) and stops at ``limit``. State
# literals, not parameters, let SQLite use the partial indexes.
_LEASE: Final = f"""
WITH blocked (person, seq) AS MATERIALIZED (
    SELECT person, min(seq) FROM outbox
    WHERE state = 'pending' AND next_attempt_at > :now
    GROUP BY person)
UPDATE outbox SET next_attempt_at = :until
WHERE seq IN (
    SELECT o.seq FROM outbox AS o
    WHERE o.state = 'pending' AND o.next_attempt_at <= :now
      AND NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.person = o.person AND b.seq < o.seq)
    ORDER BY o.seq
    LIMIT :limit)
RETURNING {OUTBOX_COLUMNS}
"""
_MARK_DELIVERED: Final = (
    "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?,"
    " finished_at = ? WHERE seq = ? AND state = 'pending'"
)
_MARK_RETRY: Final = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
    " WHERE seq = ? AND state = 'pending'"
)
_MARK_FAILED: Final = (
    "UPDATE outbox SET state = 'failed', attempts = attempts + 1,"
    " last_error = COALESCE(?, last_error), finished_at = ? WHERE seq = ? AND state = 'pending'"
)
_ADD_COUNT: Final = "UPDATE counts SET n = n + ? WHERE name = ?"
_PROFILE: Final = (
    "SELECT first_order_date, last_order_date, order_count, lifetime_value FROM profiles"
    " WHERE person = ?"
)
_SAVE_PROFILE: Final = (
    "INSERT OR REPLACE INTO profiles"
    " (person, first_order_date, last_order_date, order_count, lifetime_value, seq)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# A new binding gets the next change number; a bound email keeps its id and its number.
_BIND: Final = (
    "INSERT OR IGNORE INTO identities (email, id, seq)"
    " VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM identities))"
)
_DERIVE: Final = msgspec.json.Decoder()
#: Expired claims a commit sweeps: the retention's batch (its RETURNING rows read and dropped).
_SWEEP: Final = CLAIMS.batch_sql("sqlite")

_encode: Final = msgspec.json.encode


class SQLiteStore(StoreReads):
    """The :class:`~trackguard.store.base.Store` in one SQLite file in WAL mode.

    ``synchronous="FULL"`` (the default) fsyncs the WAL at every commit: a transaction that
    committed (so a request that got its 2xx) survives a process crash *and* a power loss or
    kernel panic. ``"NORMAL"`` fsyncs only at checkpoints: it survives a process crash
    (``kill -9``: the WAL is in the OS page cache) but a power loss can roll back the last
    transactions, including some already answered 2xx; the file stays consistent either way.
    Choose NORMAL only where the machine's power and kernel are trusted more than throughput.

    ``busy_timeout`` (seconds) is how long a write waits for another process holding the write
    lock. ``lease_seconds`` is how long :meth:`lease` claims rows: a leased row is not due
    again (and holds back its person's later rows) until it is marked or the lease runs out,
    so a crashed worker's rows are retried and two leases never hand out the same row.

    ``readonly=True`` opens an existing store for reading only (``trackguard outbox``,
    ``store info``…): it never creates the file, works on a read-only mount or file
    (:func:`~trackguard.store.files.readonly_uri`), and every write raises StoreError. A file
    of an older schema is upgraded first when its location is writable, else refused.

    Opening a file of an older schema for writing upgrades it in place, after copying it
    beside itself (:func:`~trackguard.store.files.upgrade_backup_path`), so a failed or
    regretted upgrade can be undone by putting the copy back.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        lease_seconds: float = 60.0,
        readonly: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise StoreError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file:"):
            raise StoreError(f"SQLiteStore needs a file path, not {self.path!r}")
        self.synchronous: Synchronous = synchronous
        self.lease_seconds = lease_seconds
        self.readonly = readonly
        #: The copy taken before this open upgraded the file's schema (None: no upgrade).
        self.upgrade_backup: Path | None = None
        self._busy_ms = max(0, int(busy_timeout * 1000))
        self._closed = False
        #: Which claiming commits also delete expired claims (:class:`ClaimSweep`).
        self.claim_sweep = ClaimSweep()
        #: How the next commit claims its keys (:mod:`trackguard.store.sqlite_claims`).
        self._claims_read_first = False
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._readers: dict[threading.Thread, _Reader] = {}
        self._local = threading.local()
        if readonly:
            self._open_readonly()
            self._writer = self._connect()
            return
        create_private(self.path)  # the request data it will hold is nobody else's to read
        self._writer = self._connect()
        try:
            w = self._writer
            if (
                not w.execute("PRAGMA user_version").fetchone()[0]
                and w.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
            ):
                # Tables but no schema version: another program's database, never taken over
                # and not even switched to WAL (trackguard sets the version in the transaction
                # that creates its tables, so no store of its own ever looks like this).
                raise not_a_store(self.path)
            self._writer.execute("PRAGMA cache_size = -16000")  # lease scans stay in memory
            # A WAL that grew during a burst (or while a reader held back checkpoints) is cut
            # back to 64 MiB after the next checkpoint instead of keeping its largest size.
            self._writer.execute("PRAGMA journal_size_limit = 67108864")
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode!r})")
            self._migrate()
        except sqlite3.Error as e:
            self._writer.close()
            raise cannot_open(self.path, e) from e
        except BaseException:
            self._writer.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- connections -------------------------------------------------------------------------

    def _open_readonly(self) -> None:
        """Check that the file is a store of this schema (upgrading an older one where the
        location is writable) without ever creating or writing it."""
        if not os.path.exists(self.path):
            raise StoreNotFound(self.path)
        version = self._version()
        if version > SCHEMA_VERSION:
            raise newer_schema(self.path, version)
        if version < SCHEMA_VERSION:
            if not writable_location(self.path):
                raise StoreError(
                    f"{self.path}: schema version {version} is older than this trackguard's"
                    f" ({SCHEMA_VERSION}) and the file cannot be written to upgrade it; copy"
                    " it to a writable place first"
                )
            upgraded = SQLiteStore(self.path, busy_timeout=self._busy_ms / 1000)
            self.upgrade_backup = upgraded.upgrade_backup
            upgraded.close()

    def _version(self) -> int:
        conn = self._connect()
        try:
            return schema_version(conn, self.path)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        target, uri = (readonly_uri(self.path), True) if self.readonly else (self.path, False)
        conn = connect(self.path, target, uri=uri, timeout=0, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as e:
            conn.close()
            raise cannot_open(self.path, e) from e
        return conn

    def _migrate(self) -> None:
        conn = self._writer
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if 0 < found < SCHEMA_VERSION:
            # Before the upgrade takes the write lock: the copy is one read snapshot.
            backup = upgrade_backup_path(self.path, found, time.time())
            try:
                copy_database(conn, backup)
            except (OSError, sqlite3.Error) as e:
                raise StoreError(
                    f"{self.path}: not upgrading schema version {found}: the backup to"
                    f" {backup} failed: {e}"
                ) from e
            self.upgrade_backup = backup
        conn.execute("BEGIN IMMEDIATE")  # two processes opening a new file migrate once
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise newer_schema(self.path, version)
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            _checks_as_comparisons(conn, self.path)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short ``BEGIN IMMEDIATE … COMMIT`` on the writer, in turn with commits (for
        retention: a prune batch queues behind a group commit instead of contending for the
        file lock); any failure rolls it all back and raises StoreError."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE … COMMIT`` on the writer; any failure rolls it all back."""
        with self._write_lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            if self.readonly:
                raise StoreError(f"{self.path}: opened read-only; this needs a writable store")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    # The original error is the one worth raising.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"{self.path}: {e}") from e
                raise

    def _reader(self) -> _Reader:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None:
            return reader
        conn = self._connect()
        reader = _Reader(conn)
        with self._registry_lock:
            if self._closed:
                conn.close()
                raise StoreClosed("the store is closed")
            # Connections of threads that ended are closed here, so a churn of short-lived
            # threads does not pile up open files.
            for thread in [t for t in self._readers if not t.is_alive()]:
                dead = self._readers.pop(thread)
                with dead.lock:
                    dead.conn.close()
            self._readers[threading.current_thread()] = reader
        self._local.reader = reader
        return reader

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._closed:
            raise StoreClosed("the store is closed")
        reader = self._reader()
        with reader.lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            try:
                return reader.conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: {e}") from e

    # -- the Store protocol ------------------------------------------------------------------

    def commit(
        self,
        writes: Sequence[Write],
        meta: Mapping[str, str] | None = None,
        *,
        quarantine_states: Sequence[tuple[int, str]] | None = None,
    ) -> list[int]:
        """Insert every write's outbox rows and quarantine records in one transaction.

        ``meta`` entries (a backfill's checkpoint) are saved in the same transaction, so a
        checkpoint never runs ahead of, or behind, the rows it counts. ``quarantine_states``
        ``(record id, state)`` pairs set existing quarantine records' state in it too (a replay
        marks its record ``replayed`` with the write it queued).

        Each row keeps the fields it carries except ``seq``/``id``, which the store assigns in
        commit order. Either everything is committed or nothing is (and StoreError is raised).
        Rows with ``claim_until`` claim their ``dedupe_key`` first: when an unexpired claim of
        the same person holds it the row is a duplicate and is left out (the result counts
        them per write); when another person's claim holds it, the row is quarantined instead
        (:func:`~trackguard.store.base.dedupe_conflict`) and counted as ``dedupe_conflict``.
        A new order with ``derive`` updates its person's profile and queues an identify with
        the derived attributes right after the order.
        """
        claiming, learning = claims_keys(writes), learns_identities(writes)
        if nothing_to_commit(writes, meta, quarantine_states):
            self._check_open()
            return [0] * len(writes)
        with self._transaction() as conn:
            cur = conn.cursor()  # one cursor for every statement of the commit
            claims = CommitClaims(cur, writes, read_first=claiming and self._claims_read_first)
            plan = plan_commit(
                writes, claims.claim, lambda p: cur.execute(_PROFILE, (p,)).fetchone()
            )
            if claiming:
                claims.finish()
                self._claims_read_first = claims.next_read_first
            outbox, quarantine, profiles = plan.outbox, plan.quarantine, plan.profiles
            if outbox:  # one statement, so the rows keep their order (seq)
                new = _new_params(outbox)
                if new is not None:
                    cur.executemany(_INSERT_NEW_OUTBOX, new)
                else:
                    cur.executemany(_INSERT_OUTBOX, outbox)
            if profiles:
                base = cur.execute("SELECT coalesce(max(seq), 0) FROM profiles").fetchone()[0]
                cur.executemany(
                    _SAVE_PROFILE,
                    [
                        (person, first, last, count, value, base + n)
                        for n, (person, (first, last, count, value)) in enumerate(
                            profiles.items(), 1
                        )
                    ],
                )
            if quarantine:
                cur.executemany(_INSERT_NEW_QUARANTINE, map(_new_quarantine_params, quarantine))
            counts = [(n, name) for name, n in plan.counts().items() if n]
            if counts:
                cur.executemany(_ADD_COUNT, counts)
            if learning:
                _learn(cur, writes)
            if meta:
                cur.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items())
                )
            if quarantine_states:
                cur.executemany(
                    "UPDATE quarantine SET state = ? WHERE id = ?",
                    [(state, record_id) for record_id, state in quarantine_states],
                )
            if claiming and (due := self.claim_sweep.due(writes)) is not None:
                cur.execute(_SWEEP, due).fetchall()
        return plan.duplicates

    def import_identities(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Bind emails to ids (``trackguard identity import``); an email already bound keeps
        its id. Returns how many bindings were new."""
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(_BIND, [(email.strip().lower(), ident) for email, ident in pairs])
            return conn.total_changes - before

    def set_meta(self, key: str, value: str) -> None:
        """Save ``value`` under ``key`` in its own transaction."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def lease(self, limit: int, now: float) -> list[OutboxRow]:
        """Claim up to ``limit`` due pending rows in seq order, keeping per-person order.

        A row is returned only if no earlier pending row of its person is not due (retrying
        later, or leased and still in flight). Returned rows are claimed: their
        ``next_attempt_at`` becomes ``now + lease_seconds``, so they are not leased again, and
        their person's later rows wait, until they are marked or the claim runs out.
        """
        if limit <= 0:
            if self._closed:
                raise StoreClosed("the store is closed")
            return []
        params = {"until": now + self.lease_seconds, "now": now, "limit": limit}
        with self._transaction() as conn:
            rows = conn.execute(_LEASE, params).fetchall()
        rows.sort(key=lambda r: r[0])  # RETURNING gives no order
        return [outbox_row_from(r) for r in rows]

    def mark_delivered(self, seqs: Sequence[int], now: float) -> None:
        """Pending rows become ``delivered`` (attempts + 1); other or unknown seqs are ignored."""
        params = [(now, now, seq) for seq in dict.fromkeys(seqs)]
        if not params:
            self._check_open()
            return
        with self._transaction() as conn:
            n = conn.executemany(_MARK_DELIVERED, params).rowcount
            conn.execute(_ADD_COUNT, (-n, "pending"))
            conn.execute(_ADD_COUNT, (n, "delivered"))

    def mark_retry(self, seqs: Sequence[int], error: str, next_attempt_at: float) -> None:
        """Pending rows get ``attempts + 1``, ``last_error`` and their next due time."""
        params = [(error, next_attempt_at, seq) for seq in dict.fromkeys(seqs)]
        if not params:
            self._check_open()
            return
        with self._transaction() as conn:
            conn.executemany(_MARK_RETRY, params)

    def mark_failed(self, failures: Sequence[tuple[int, QuarantineRecord]], now: float) -> None:
        """Rows Customer.io rejected for good: mark them failed and quarantine them, atomically.

        Only rows still pending are moved (a row delivered meanwhile keeps its state and gets
        no quarantine record). ``last_error`` becomes the record's ``upstream_error``.
        """
        todo = {seq: (rec.upstream_error, quarantine_params(rec, seq)) for seq, rec in failures}
        if not todo:
            self._check_open()
            return
        with self._transaction() as conn:
            n = 0
            for seq, (error, record) in todo.items():
                if conn.execute(_MARK_FAILED, (error, now, seq)).rowcount:
                    conn.execute(_INSERT_QUARANTINE, record)
                    n += 1
            if n:
                conn.execute(_ADD_COUNT, (-n, "pending"))
                conn.execute(_ADD_COUNT, (n, "failed"))
                conn.execute(_ADD_COUNT, (n, "quarantine"))

    def close(self) -> None:
        """Close every connection; idempotent. Later calls raise StoreClosed."""
        with self._registry_lock:
            if self._closed:
                return
            self._closed = True
            readers = list(self._readers.values())
            self._readers.clear()
        with self._write_lock:
            # Best effort: keeps query plans good across restarts, must not make close() fail.
            with contextlib.suppress(sqlite3.Error):
                if not self.readonly:
                    self._writer.execute("PRAGMA optimize")
            self._writer.close()
        for reader in readers:
            with reader.lock:
                reader.conn.close()


#: The CHECK constraints migrations wrote as ``IN`` lists, and the same constraints written as
#: comparisons. SQLite (3.40 at least) checks ``x IN (...)`` by building a temporary index for
#: every row it inserts, which cost about a quarter of a commit's CPU (10,000 instructions a
#: row); the comparisons cost almost nothing and accept exactly the same values.
_CHECKS: Final = tuple(
    (f"{column} IN ({', '.join(repr(v) for v in values)})",
     "(" + " OR ".join(f"{column} = {v!r}" for v in values) + ")")
    for column, values in (
        ("state", ("pending", "delivered", "failed")),
        ("kind", ("contract", "plan", "upstream")),
        ("state", ("quarantined", "replayed", "still_invalid")),
    )
)  # fmt: skip


def _checks_as_comparisons(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> None:
    """Rewrite ``_CHECKS`` in the schema's text, in the open transaction (a file rewritten
    before has nothing left to rewrite, and its schema is left as it is).

    The constraints are equivalent, so no row and no format changes: older and newer
    trackguard read the file alike, which is why this is not a schema version. It is SQLite's
    documented way to change a constraint without rebuilding the table
    (https://sqlite.org/lang_altertable.html#otheralter). Where the schema cannot be written
    (a defensive SQLite build), the ``IN`` form stays: slower commits, nothing else.
    """
    changed = []
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master"
        " WHERE type = 'table' AND name IN ('outbox', 'quarantine')"
    ).fetchall():
        new = sql
        for slow, fast in _CHECKS:
            new = new.replace(slow, fast)
        if new != sql:
            changed.append((new, name))
    if not changed:
        return
    version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    conn.execute("SAVEPOINT checks")
    try:
        conn.execute("PRAGMA writable_schema = ON")
        conn.executemany(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", changed
        )
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    except sqlite3.Error as e:
        conn.execute("ROLLBACK TO checks")
        log.info("%s: CHECK constraints kept as IN lists (%s): commits cost more CPU", path, e)
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
        conn.execute("RELEASE checks")


class _Reader:
    """One thread's read connection; the lock only guards it against :meth:`close`."""

    __slots__ = ("conn", "lock")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()


def _learn(cur: sqlite3.Cursor, writes: Sequence[Write]) -> None:
    """Identity bindings and anonymous activity, in the commit's transaction (the bindings of
    every write in one executemany, in order: they touch no table the rest does)."""
    links = [link for w in writes for link in w.links]
    if links:
        cur.executemany(_BIND, links)
    for w in writes:
        if not (w.anonymous or w.anonymous_links):
            continue
        at = max((r.received_at for r in w.outbox), default=time.time())
        for anonymous_id, event in w.anonymous:
            cur.execute(
                "INSERT OR IGNORE INTO anonymous (anonymous_id, first_seen, event)"
                " VALUES (?, ?, ?)",
                (anonymous_id, at, event),
            )
        for anonymous_id, person in w.anonymous_links:
            cur.execute(
                "INSERT INTO anonymous (anonymous_id, first_seen, person, linked_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (anonymous_id) DO UPDATE"
                " SET person = excluded.person, linked_at = excluded.linked_at"
                " WHERE anonymous.person IS NULL",
                (anonymous_id, at, person, at),
            )


def _new_params(outbox: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
    """``_INSERT_NEW_OUTBOX`` parameters of ``_INSERT_OUTBOX`` ones when every row is new (a
    pending row never tried, as the gateway queues them); None when one is not."""
    new = []
    for p in outbox:
        if p[6] != "pending" or p[7] != 0 or p[9] is not None or p[10] is not None:
            return None
        new.append((p[0], p[1], bytearray(p[2]), p[3], p[4], p[5], p[8], p[11], p[12]))
    return new


def _new_quarantine_params(q: tuple[Any, ...]) -> tuple[Any, ...]:
    """``_INSERT_NEW_QUARANTINE`` parameters of :func:`quarantine_params` ones."""
    text, number = (6, 10, 13, 16), (12, 15)
    out = list(q)
    if type(out[5]) is bytes:
        out[5] = bytearray(out[5])
    for i in text:
        if out[i] is None:
            out[i] = 0
    for i in number:
        if out[i] is None:
            out[i] = ""
    return tuple(out)


def _outbox_params(r: OutboxRow) -> tuple[Any, ...]:
    return (
        r.received_at,
        r.person,
        r.payload,
        r.dedupe_key,
        r.event_name,
        r.source,
        r.state,
        r.attempts,
        r.next_attempt_at,
        r.last_error,
        r.delivered_at,
        r.route,
        r.plan_version,
    )


def derived_row(
    load: Callable[[str], Sequence[Any] | None], profiles: dict[str, list[Any]], order: OutboxRow
) -> OutboxRow | None:
    """Update the person's profile for a new order; the identify row that carries it.

    ``profiles`` holds the profiles this commit changed (person key → first, last, count,
    value); a person not in it yet is read with ``load`` (None: no profile)."""
    assert order.derive is not None
    try:
        derive = _DERIVE.decode(order.derive)
        identifiers, total, ts = derive["identifiers"], float(derive["total"]), int(derive["ts"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    profile = profiles.get(order.person)
    if profile is None:
        row = load(order.person)
        profile = list(row) if row is not None else [None, None, 0, 0.0]
        profiles[order.person] = profile
    first, last, count, value = profile
    profile[0] = ts if first is None else min(first, ts)
    profile[1] = ts if last is None else max(last, ts)
    profile[2] = count + 1
    profile[3] = round(value + total, 2)
    item = {
        "type": "person",
        "action": "identify",
        "identifiers": identifiers,
        "attributes": {
            "first_order_date": profile[0],
            "last_order_date": profile[1],
            "order_count": profile[2],
            "lifetime_value": profile[3],
        },
    }
    return OutboxRow(
        received_at=order.received_at,
        person=order.person,
        payload=b'{"v2":' + _encode(item) + b"}",
        source=order.source,
        route=order.route,
        plan_version=order.plan_version,
    )


_STATES: Final = ("pending", "delivered", "failed")


@dataclass
class CommitPlan:
    """What one commit writes, once its rows' claims are settled (:func:`plan_commit`)."""

    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    #: Profiles the commit's new orders changed: person key -> [first, last, count, value].
    profiles: dict[str, list[Any]] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_STATES, 0))
    duplicates: list[int] = field(default_factory=list)
    conflicts: int = 0

    def counts(self) -> dict[str, int]:
        """The changes to the ``counts`` rows, by name."""
        return {
            **self.added,
            "quarantine": len(self.quarantine),
            "duplicate": sum(self.duplicates),
            "dedupe_conflict": self.conflicts,
        }


def plan_commit(
    writes: Sequence[Write],
    claim: Callable[[OutboxRow], tuple[bool, str | None]],
    load: Callable[[str], Sequence[Any] | None],
) -> CommitPlan:
    """Sort the rows of ``writes`` (both stores commit this way, inside their transaction).

    ``claim(row)`` claims a claiming row's key, in order: whether it got it, and who holds
    it. A row whose key the same person holds is a duplicate (counted per
    write); one whose key another person holds is quarantined (``dedupe_key_conflict``);
    the rest are stored, and a new order with ``derive`` updates its person's profile
    (read with ``load``) and queues an identify right after it.
    """
    plan = CommitPlan(
        quarantine=[quarantine_params(q, None) for w in writes for q in w.quarantine],
        duplicates=[0] * len(writes),
    )
    for i, write in enumerate(writes):
        for r in write.outbox:
            if r.claim_until is not None and r.dedupe_key is not None:
                taken, holder = claim(r)
                if not taken:
                    if holder is None or holder == r.person:
                        plan.duplicates[i] += 1  # a retry: stored already
                    else:  # not a retry: another person's event with the same key
                        plan.quarantine.append(conflict_params(r, holder, write))
                        plan.conflicts += 1
                    continue
            plan.outbox.append(_outbox_params(r))
            if r.state in plan.added:
                plan.added[r.state] += 1
            if r.derive is not None:
                derived = derived_row(load, plan.profiles, r)
                if derived is not None:
                    plan.outbox.append(_outbox_params(derived))
                    plan.added["pending"] += 1
    return plan


def claims_keys(writes: Sequence[Write]) -> bool:
    """Whether a row of ``writes`` claims a dedupe key (the commit reads claims first)."""
    return any(r.claim_until is not None for w in writes for r in w.outbox)


def learns_identities(writes: Sequence[Write]) -> bool:
    """Whether ``writes`` bind identities or record anonymous activity."""
    return any(w.links or w.anonymous or w.anonymous_links for w in writes)


def nothing_to_commit(
    writes: Sequence[Write],
    meta: Mapping[str, str] | None,
    quarantine_states: Sequence[tuple[int, str]] | None,
) -> bool:
    """True when ``commit`` has nothing to write (no transaction is opened)."""
    return not (
        meta
        or quarantine_states
        or learns_identities(writes)
        or any(w.outbox or w.quarantine for w in writes)
    )


def conflict_params(row: OutboxRow, claimer: str, write: Write) -> tuple[Any, ...]:
    """The quarantine record (as insert parameters) of ``row``, whose dedupe key another
    person (``claimer``) holds; logged, as every record kept instead of delivered is."""
    log.warning(
        "dedupe key %r is claimed by %s: the event of %s is kept in the quarantine"
        " (dedupe_key_conflict)",
        row.dedupe_key,
        claimer,
        row.person,
    )
    return quarantine_params(dedupe_conflict(row, claimer, write.kept_as), None)


def quarantine_params(q: QuarantineRecord, outbox_seq: int | None) -> tuple[Any, ...]:
    """The insert parameters of ``q`` (both stores' quarantine column order, after id)."""
    try:
        findings = q.findings.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StoreError(f"quarantine findings must be UTF-8 JSON: {e}") from e
    return (
        q.received_at,
        q.kind,
        q.method,
        q.path,
        _encode(q.headers).decode(),
        q.body,
        q.source,
        q.plan_version,
        q.status,
        findings,
        q.event_name,
        _encode(q.codes).decode(),
        q.batch_index,
        q.upstream_error,
        q.state,
        outbox_seq,
        q.route,
    )


def newer_schema(path: str, version: int) -> StoreError:
    """The error for a file whose schema ``version`` is newer than :data:`SCHEMA_VERSION`."""
    return StoreError(
        f"{path}: schema version {version} is newer than this trackguard understands"
        f" ({SCHEMA_VERSION}); upgrade trackguard"
    )


def open_store(
    target: str | os.PathLike[str],
    *,
    synchronous: Synchronous = "FULL",
    create: bool = True,
    readonly: bool = False,
    lease_seconds: float = 60.0,
) -> Store:
    """Open the store that ``target`` names: a file path or ``sqlite:///path``
    (:func:`sqlite_path`), or ``postgresql://user@host:port/db[?schema=NAME]``
    (:class:`~trackguard.store.postgres.PostgresStore`, which creates its tables when missing).
    Without ``create``, a path that names no file raises :class:`StoreNotFound`.

    ``readonly=True`` (every command that only reads) never creates or writes the file and
    opens one on a read-only mount (:class:`SQLiteStore`). ``lease_seconds`` is how long a
    delivery lease holds rows (a dead deliverer's rows are leased again after it).
    """
    path = sqlite_path(target)
    if path is not None:
        if (readonly or not create) and not os.path.exists(path):
            raise StoreNotFound(path)
        return SQLiteStore(
            path, synchronous=synchronous, readonly=readonly, lease_seconds=lease_seconds
        )
    url = os.fspath(target)
    if is_postgres_url(url):
        return postgres_store_class(url.partition("://")[0].lower())(
            url, create=create and not readonly, lease_seconds=lease_seconds
        )
    raise unsupported_url(target)
