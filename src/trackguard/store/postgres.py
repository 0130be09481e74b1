"""The Store in PostgreSQL, so several gateways and delivery workers can share one database.

It keeps the guarantees of :class:`~trackguard.store.sqlite.SQLiteStore`, on these grounds:

- **Commits are serial and commit-ordered.** Each commit takes a transaction-level advisory
  lock (:data:`_COMMIT_LOCK`, one per schema) first, so commits from every process run one after
  another, as SQLite's one writer does. Outbox ``seq`` values, identity bindings' and profiles'
  change numbers (``max(seq) + 1`` under that lock) therefore grow in commit order: a lock is
  released only after its commit is visible, so a reader that saw number n has seen every
  number below it. A plain sequence would not do: two transactions can take 5 and 6 and commit
  6 first, and a reader that read on from 6 would skip 5 for good.
- **Dedupe claims** are rows of ``claims`` with the key as primary key. A commit reads the
  claims of all its keys in one statement under the commit lock, decides row by row in Python
  (:class:`~trackguard.store.claims.ClaimBook`, SQLite's rule) and writes the keys taken in
  one upsert, in the same transaction (``_read_first`` says why deletes outside the lock
  cannot change an answer).
- **A commit is two round trips.** BEGIN, the lock and the two reads (claims, profiles) go
  in one pipeline; every write (one statement per table, its rows as one JSON text: psycopg
  adapts a list element by element in Python) and COMMIT in a second. ``commit`` returns
  only once COMMIT's answer came back, so a 2xx still means committed.
- **Counts** (``counts``) are updated in the transactions that change what they count; rows are
  always updated in name order, so two transactions never wait on each other in a cycle.
- **Leases** take a second advisory lock (:data:`_LEASE_LOCK`) and pick rows with
  ``FOR UPDATE SKIP LOCKED``: two workers never lease one row, and a person's later row is never
  leased while an earlier one is in flight (without the lock, a worker could skip a row another
  worker is leasing and take the same person's next row). Leased rows get ``next_attempt_at =
  now + lease_seconds``, so a dead worker's rows are leased again after that.
- **Wake-ups**: a commit that adds outbox rows, identity bindings or orders sends one
  ``NOTIFY`` on the schema's channel in its transaction; :meth:`PostgresStore.subscribe` wakes
  deliverers and gateways on it (``listen.py``), and they still poll as a fallback.
- **A shared rate limit**: :meth:`PostgresStore.reserve_tokens` takes tokens from a bucket kept
  in ``meta`` under a row lock, so every deliverer on the schema shares one upstream rate
  (``delivery/ratelimit.py``).
- **Losing the database** makes calls raise :class:`StoreError` (the gateway answers 503 and
  ``/readyz`` says not ready); a broken connection is dropped and the next call connects again,
  so the store recovers by itself when PostgreSQL is back.

The URL is libpq's (``postgresql://user@host:5432/db``) plus an optional ``schema=NAME`` query
parameter: the schema the store's tables live in (created when missing), ``public`` when not
given. Its version is in ``schema_version``; a newer one than this code knows is refused.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Final

import msgspec
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from trackguard.delivery.ratelimit import Reservation, SharedState, take_shared
from trackguard.errors import first_line
from trackguard.store.base import (
    OutboxRow,
    QuarantineRecord,
    StoreError,
    StoreNotFound,
    Write,
)
from trackguard.store.claims import ClaimBook, ClaimSweep, claiming_keys
from trackguard.store.listen import IDENTITIES, OUTBOX, Listener, Unsubscribe, channel_name
from trackguard.store.monitor_schema import create_statements
from trackguard.store.prune_rules import CLAIMS
from trackguard.store.queries import OUTBOX_COLUMNS, StoreReads, outbox_row_from
from trackguard.store.sql import postgres_sql
from trackguard.store.sqlite import (
    claims_keys,
    learns_identities,
    nothing_to_commit,
    plan_commit,
    quarantine_params,
)
from trackguard.store.urls import display_url, split_url

#: The schema version this code writes (``schema_version.version``).
SCHEMA_VERSION: Final = 2

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE outbox (
            seq             bigint  PRIMARY KEY,
            received_at     double precision NOT NULL,
            person          text    NOT NULL,
            payload         bytea   NOT NULL,
            dedupe_key      text,
            event_name      text,
            source          text,
            route           text,
            plan_version    text,
            state           text    NOT NULL
                            CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts        integer NOT NULL,
            next_attempt_at double precision NOT NULL,
            last_error      text,
            delivered_at    double precision,
            finished_at     double precision
        )""",
        # The lease walks pending rows in seq order; due-ness and person come from the index.
        """CREATE INDEX outbox_pending_seq ON outbox (seq) INCLUDE (next_attempt_at, person)
            WHERE state = 'pending'""",
        # Pending rows not due yet (retrying or leased): the lease's blocked persons.
        """CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) INCLUDE (person)
            WHERE state = 'pending'""",
        "CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending'",
        """CREATE TABLE quarantine (
            id             bigint  PRIMARY KEY,
            received_at    double precision NOT NULL,
            kind           text    NOT NULL CHECK (kind IN ('contract', 'plan', 'upstream')),
            method         text    NOT NULL,
            path           text    NOT NULL,
            headers        text    NOT NULL,
            body           bytea   NOT NULL,
            source         text,
            plan_version   text    NOT NULL,
            route          text,
            status         integer NOT NULL,
            findings       text    NOT NULL,
            event_name     text,
            codes          text    NOT NULL,
            batch_index    integer,
            upstream_error text,
            state          text    NOT NULL
                           CHECK (state IN ('quarantined', 'replayed', 'still_invalid')),
            outbox_seq     bigint
        )""",
        "CREATE INDEX quarantine_received_at ON quarantine (received_at)",
        "CREATE INDEX quarantine_event_name ON quarantine (event_name)",
        "CREATE INDEX quarantine_kind ON quarantine (kind)",
        "CREATE INDEX quarantine_plan_version ON quarantine (plan_version)",
        "CREATE INDEX quarantine_route ON quarantine (route)",
        "CREATE TABLE counts (name text PRIMARY KEY, n bigint NOT NULL)",
        """INSERT INTO counts (name, n) VALUES ('pending', 0), ('delivered', 0), ('failed', 0),
            ('quarantine', 0), ('duplicate', 0), ('dedupe_conflict', 0)""",
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        # The last outbox seq and quarantine id handed out. A counter row, not a sequence: it
        # rolls back with a failed transaction (no gaps, as in SQLite) and, taken under the
        # commit lock, hands out numbers in commit order.
        "CREATE TABLE sequences (name text PRIMARY KEY, last bigint NOT NULL)",
        "INSERT INTO sequences (name, last) VALUES ('outbox', 0), ('quarantine', 0)",
        # Dedupe keys and who claimed them (a person key), until they expire.
        """CREATE TABLE claims (
            key text PRIMARY KEY, expires_at double precision NOT NULL, person text)""",
        "CREATE INDEX claims_expires_at ON claims (expires_at)",
        """CREATE TABLE profiles (
            person           text PRIMARY KEY,
            first_order_date bigint,
            last_order_date  bigint,
            order_count      integer NOT NULL,
            lifetime_value   double precision NOT NULL,
            seq              bigint  NOT NULL
        )""",
        "CREATE INDEX profiles_seq ON profiles (seq)",
        "CREATE TABLE identities (email text PRIMARY KEY, id text NOT NULL, seq bigint NOT NULL)",
        "CREATE INDEX identities_id ON identities (id)",
        "CREATE INDEX identities_seq ON identities (seq)",
        """CREATE TABLE anonymous (
            anonymous_id text PRIMARY KEY,
            first_seen   double precision NOT NULL,
            event        text,
            person       text,
            linked_at    double precision
        )""",
        "CREATE INDEX anonymous_unlinked ON anonymous (first_seen) WHERE person IS NULL",
        "CREATE INDEX anonymous_first_seen ON anonymous (first_seen)",
    ),
    # The monitor's tables (trackguard.monitor.db, docs/monitoring.md): counters every gateway
    # adds to, data-health snapshots, and the saved state of alert rules and channels.
    create_statements("postgresql"),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

#: Advisory lock purposes (the second key; the first is the schema's).
_MIGRATE_LOCK: Final = 1
_COMMIT_LOCK: Final = 2
_LEASE_LOCK: Final = 3

#: Outbox columns a commit writes: seq, then ``_outbox_params`` order.
OUTBOX_INSERT_COLUMNS: Final = (
    "seq, received_at, person, payload, dedupe_key, event_name, source, state, attempts,"
    " next_attempt_at, last_error, delivered_at, route, plan_version"
)
#: Quarantine columns a commit writes: id, then ``quarantine_params`` order.
QUARANTINE_INSERT_COLUMNS: Final = (
    "id, received_at, kind, method, path, headers, body, source, plan_version, status, findings,"
    " event_name, codes, batch_index, upstream_error, state, outbox_seq, route"
)
_LOCK: Final = "SELECT pg_advisory_xact_lock(%s, %s)"
# Outbox rows and quarantine records with the next numbers of their counter (``sequences``:
# its row is locked until the transaction ends, so numbers are handed out without gaps and,
# under the commit lock, in commit order), from one JSON array of ``_outbox_json`` rows /
# ``quarantine_params`` (float and bytes as ``_insert_quarantine`` gives them).
_INSERT_OUTBOX: Final = (
    "WITH s AS (UPDATE sequences SET last = last + %(n)s WHERE name = 'outbox' RETURNING last)"
    f" INSERT INTO outbox ({OUTBOX_INSERT_COLUMNS})"
    " SELECT s.last - %(n)s + u.k, (r->>0)::float8, r->>1, decode(r->>2, 'hex'), r->>3,"
    " r->>4, r->>5, r->>6, (r->>7)::integer, (r->>8)::float8, r->>9, (r->>10)::float8,"
    " r->>11, r->>12"
    " FROM s, jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS u(r, k)"
)
_INSERT_QUARANTINE: Final = (
    "WITH s AS (UPDATE sequences SET last = last + %(n)s WHERE name = 'quarantine'"
    " RETURNING last)"
    f" INSERT INTO quarantine ({QUARANTINE_INSERT_COLUMNS})"
    " SELECT s.last - %(n)s + u.k, (r->>0)::float8, r->>1, r->>2, r->>3, r->>4,"
    " decode(r->>5, 'hex'), r->>6, r->>7, (r->>8)::integer, r->>9, r->>10, r->>11,"
    " (r->>12)::integer, r->>13, r->>14, (r->>15)::bigint, r->>16"
    " FROM s, jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS u(r, k)"
)
# A commit's many-row statements take their rows as one JSON array (``_json``: rows as
# arrays, floats as their repr strings, so NaN and infinities arrive as they are), read with
# json_array_elements: psycopg adapts one string for a fraction of what it spends on a list.
#
# Statements whose best plan depends on how large a table has grown are planned at every
# execution (``prepare=False``): the claims and profiles a commit reads, and the emails it binds.
# psycopg prepares a statement on its fifth execution and PostgreSQL then settles on a generic
# plan made from the table as it was: on a new store, a sequential scan of an empty table. That
# plan stays until the table is next analyzed, so with autovacuum off or behind, a commit read
# every claim: 5 ms a commit at 60,000 claims, growing with every key (the claims table holds a
# window's keys, millions at production rates). Planning each time costs 0.03 ms for each read
# and 0.08 ms for the binding (PostgreSQL 15, 60,000 claims).
#
# The claims of a commit's keys, read under the commit lock (``claims.ClaimBook`` decides).
_HELD: Final = (
    "SELECT key, expires_at, person FROM claims"
    " WHERE key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)
# The keys a commit took, each once (its last taking).
_TAKE: Final = (
    "INSERT INTO claims (key, expires_at, person)"
    " SELECT r->>0, (r->>1)::float8, r->>2 FROM json_array_elements(%s::json) AS r"
    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, person = excluded.person"
)
# The profiles of a commit's ordering persons, read before plan_commit (under the commit lock).
_PROFILES: Final = (
    "SELECT person, first_order_date, last_order_date, order_count, lifetime_value"
    " FROM profiles WHERE person = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)
# Changed profiles, each with the next change number in the order given (under the commit
# lock; the max is read once, before the statement's own rows).
_SAVE_PROFILES: Final = (
    "INSERT INTO profiles"
    " (person, first_order_date, last_order_date, order_count, lifetime_value, seq)"
    " SELECT r->>0, (r->>1)::bigint, (r->>2)::bigint, (r->>3)::integer, (r->>4)::float8,"
    " (SELECT coalesce(max(seq), 0) FROM profiles) + n"
    " FROM json_array_elements(%s::json) WITH ORDINALITY AS u(r, n)"
    " ON CONFLICT (person) DO UPDATE SET"
    " first_order_date = excluded.first_order_date, last_order_date = excluded.last_order_date,"
    " order_count = excluded.order_count, lifetime_value = excluded.lifetime_value,"
    " seq = excluded.seq"
)
# A new binding gets the next change number (under the commit lock); a bound email keeps its.
_BIND: Final = (
    "INSERT INTO identities (email, id, seq)"
    " VALUES (%s, %s, (SELECT coalesce(max(seq), 0) + 1 FROM identities))"
    " ON CONFLICT (email) DO NOTHING"
)
# Emails not bound yet, each bound once (its first pair) with the next change numbers in the
# order given: the rows ``_BIND`` one pair at a time would give (under the commit lock).
_BIND_NEW: Final = (
    "INSERT INTO identities (email, id, seq)"
    " SELECT r->>0, r->>1, (SELECT coalesce(max(seq), 0) FROM identities)"
    " + row_number() OVER (ORDER BY n)"
    " FROM json_array_elements(%s::json) WITH ORDINALITY AS u(r, n)"
    " WHERE NOT EXISTS (SELECT 1 FROM identities AS i WHERE i.email = r->>0)"
    " ON CONFLICT (email) DO NOTHING"
)
# Anonymous activity seen (the first sighting of an id stays), and ids linked to a person
# (one each: the links of one commit are made distinct first; a linked id keeps its person).
_SEEN: Final = (
    "INSERT INTO anonymous (anonymous_id, first_seen, event)"
    " SELECT r->>0, (r->>1)::float8, r->>2 FROM json_array_elements(%s::json) AS r"
    " ON CONFLICT (anonymous_id) DO NOTHING"
)
_LINK: Final = (
    "INSERT INTO anonymous (anonymous_id, first_seen, person, linked_at)"
    " SELECT r->>0, (r->>1)::float8, r->>2, (r->>1)::float8"
    " FROM json_array_elements(%s::json) AS r"
    " ON CONFLICT (anonymous_id) DO UPDATE"
    " SET person = excluded.person, linked_at = excluded.linked_at"
    " WHERE anonymous.person IS NULL"
)
# Due pending rows in seq order whose person has no earlier pending row that is not due.
_LEASE: Final = f"""
WITH blocked AS MATERIALIZED (
    SELECT person, min(seq) AS seq FROM outbox
    WHERE state = 'pending' AND next_attempt_at > %(now)s
    GROUP BY person),
picked AS (
    SELECT o.seq FROM outbox AS o
    WHERE o.state = 'pending' AND o.next_attempt_at <= %(now)s
      AND NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.person = o.person AND b.seq < o.seq)
    ORDER BY o.seq
    LIMIT %(limit)s
    FOR UPDATE OF o SKIP LOCKED)
UPDATE outbox SET next_attempt_at = %(until)s FROM picked WHERE outbox.seq = picked.seq
RETURNING {", ".join("outbox." + c.strip() for c in OUTBOX_COLUMNS.split(","))}
"""
# Rows are locked in seq order, so two workers marking overlapping rows never deadlock.
_PENDING_LOCKED: Final = (
    "WITH t AS (SELECT seq FROM outbox WHERE seq = ANY(%(seqs)s) AND state = 'pending'"
    " ORDER BY seq FOR UPDATE) "
)
_MARK_DELIVERED: Final = (
    _PENDING_LOCKED + "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,"
    " delivered_at = %(now)s, finished_at = %(now)s FROM t WHERE outbox.seq = t.seq"
)
_MARK_RETRY: Final = (
    _PENDING_LOCKED + "UPDATE outbox SET attempts = attempts + 1, last_error = %(error)s,"
    " next_attempt_at = %(at)s FROM t WHERE outbox.seq = t.seq"
)
_MARK_FAILED: Final = (
    _PENDING_LOCKED + "UPDATE outbox SET state = 'failed', attempts = attempts + 1,"
    " finished_at = %(now)s FROM t WHERE outbox.seq = t.seq RETURNING outbox.seq"
)
# The shared bucket's row, locked, and the database's clock.
_BUCKET: Final = (
    "SELECT value, extract(epoch FROM clock_timestamp()) FROM meta WHERE key = %s FOR UPDATE"
)
_encode: Final = msgspec.json.encode
_decode_bucket: Final = msgspec.json.Decoder(SharedState)
# The rows are locked in name order first (FOR UPDATE in a sorted, materialized CTE), then
# updated: the lock order of every transaction that changes counts.
_ADD_COUNTS: Final = (
    "WITH d AS MATERIALIZED"
    " (SELECT r->>0 AS name, (r->>1)::bigint AS n FROM json_array_elements(%s::json) AS r),"
    " locked AS MATERIALIZED"
    " (SELECT name FROM counts WHERE name IN (SELECT name FROM d) ORDER BY name FOR UPDATE)"
    " UPDATE counts SET n = counts.n + d.n FROM locked JOIN d USING (name)"
    " WHERE counts.name = locked.name"
)
#: Expired claims a commit sweeps: the retention's batch, its SKIP LOCKED passing over the rows
#: a pruner holds (planned each time too, see _HELD).
_SWEEP: Final = postgres_sql(CLAIMS.batch_sql("postgresql"))

#: How long connecting may take before the store reports the database unreachable.
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
#: Connections one store keeps at most (commits, leases and reads of its threads).
DEFAULT_POOL_SIZE: Final = 8


class PostgresStore(StoreReads):
    """The :class:`~trackguard.store.base.Store` in a PostgreSQL schema (module docstring).

    ``lease_seconds`` is how long :meth:`lease` claims rows (as for SQLite).
    Without ``create``, a schema that holds no store is :class:`StoreNotFound`.
    ``connect_timeout`` bounds each connection attempt; ``pool_size`` bounds the connections
    this store holds (a call waits for a free one when all are busy).
    """

    _P = "%s"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        lease_seconds: float = 60.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        create: bool = True,
    ) -> None:
        if pool_size < 1:
            raise StoreError("pool_size must be >= 1")
        self._conninfo, url_schema = split_url(url)
        try:  # the URL's application_name wins (pg_stat_activity tells processes apart)
            given = "application_name" in conninfo_to_dict(self._conninfo)
        except psycopg.Error as e:
            raise StoreError(f"{display_url(url)}: not a PostgreSQL URL: {first_line(e)}") from None
        self._application: dict[str, Any] = {} if given else {"application_name": "trackguard"}
        self.schema = schema or url_schema or "public"
        self.name = display_url(url)
        #: The store in messages: the URL, and the schema when the URL does not name it.
        self.where = self.name if url_schema else f"{self.name} (schema {self.schema})"
        self.lease_seconds = lease_seconds
        self._connect_timeout = max(1, round(connect_timeout))
        self._closed = False
        #: Which claiming commits also delete expired claims (:class:`ClaimSweep`).
        self.claim_sweep = ClaimSweep()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock_key = zlib.crc32(self.schema.encode()) - 2**31
        #: The NOTIFY channel of this schema, and its listener (started by :meth:`subscribe`).
        self.channel = channel_name(self.schema)
        self._listener: Listener | None = None
        try:
            self._migrate(create)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r}, schema={self.schema!r})"

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                **self._application,
            )
        except psycopg.Error as e:
            raise StoreError(
                f"{self.name}: cannot connect to PostgreSQL: {first_line(e)}"
            ) from None
        try:
            conn.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)),
            )
        except psycopg.Error as e:
            conn.close()
            raise StoreError(f"{self.name}: {first_line(e)}") from None
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; one that broke is closed instead of returned, so the next
        call connects again (the store recovers when the database comes back)."""
        self._check_open()
        self._slots.acquire()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            except psycopg.Error as e:
                if conn.broken or conn.closed:
                    conn.close()
                    conn = None
                raise StoreError(f"{self.name}: {first_line(e)}") from None
            finally:
                if conn is not None:
                    with self._lock:
                        if self._closed or conn.closed:
                            conn.close()
                        else:
                            self._idle.append(conn)
        finally:
            self._slots.release()

    @contextmanager
    def _transaction(
        self, lock: int | None = None, *, pipeline: bool = False
    ) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction; ``lock`` is an advisory lock purpose to take first. With
        ``pipeline`` its statements go in pipeline mode: leaving the block waits for COMMIT's
        answer (or raises), so the transaction is still committed when it returns."""
        with (
            self.connection() as conn,
            conn.pipeline() if pipeline else nullcontext(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if lock is not None:
                cur.execute(_LOCK, (self._lock_key, lock))
            yield cur

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction in turn with commits (it takes the commit lock first), for writes
        beyond the protocol (``store copy``); any failure rolls it all back."""
        with self._transaction(_COMMIT_LOCK) as cur:
            yield cur

    def _read(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        with self.connection() as conn:
            return conn.execute(query, params).fetchall()

    def _migrate(self, create: bool) -> None:
        """Create or upgrade the schema; without ``create`` a schema with no store in it is
        :class:`StoreNotFound` (commands that only read never create one)."""
        with self._transaction(_MIGRATE_LOCK) as cur:
            cur.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            found = int(row[0]) if row and row[0] is not None else 0
            if found == 0 and not create:
                raise StoreNotFound(self.where)
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where}: schema version {found} is newer than"
                    f" this trackguard understands ({SCHEMA_VERSION}); upgrade trackguard"
                )
            if found == 0 and cur.execute("SELECT to_regclass('outbox')").fetchone() != (None,):
                raise StoreError(
                    f"{self.where}: has an outbox table but no"
                    " schema_version: not a trackguard store; use another schema"
                )
            for step in _MIGRATIONS[found:]:
                for statement in step:
                    cur.execute(statement)
            if found != SCHEMA_VERSION:
                cur.execute("DELETE FROM schema_version")
                cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))

    # -- the Store protocol ------------------------------------------------------------------

    def commit(
        self,
        writes: Sequence[Write],
        meta: Mapping[str, str] | None = None,
        *,
        quarantine_states: Sequence[tuple[int, str]] | None = None,
    ) -> list[int]:
        """Everything of ``writes`` in one transaction, serial with every other commit (as
        :meth:`SQLiteStore.commit <trackguard.store.sqlite.SQLiteStore.commit>`): a row whose
        dedupe key the same person claimed is a duplicate, one whose key another person
        claimed is quarantined (``dedupe_key_conflict``)."""
        claiming, learning = claims_keys(writes), learns_identities(writes)
        if nothing_to_commit(writes, meta, quarantine_states):
            self._check_open()
            return [0] * len(writes)
        # Pipelined: BEGIN, the commit lock and the reads go in one round trip, every write
        # and COMMIT in a second.
        with self._transaction(_COMMIT_LOCK, pipeline=True) as cur:
            book, found = _read_first(cur.connection, writes)
            plan = plan_commit(writes, book.claim, found.get)
            outbox, quarantine, profiles = plan.outbox, plan.quarantine, plan.profiles
            if book.taken:
                _take_claims(cur, book.taken)
            if outbox:
                _insert_outbox(cur, outbox)
            if profiles:
                _save_profiles(cur, profiles)
            if quarantine:
                _insert_quarantine(cur, quarantine)
            if learning:
                _learn(cur, writes)
            if meta:
                _save_meta(cur, meta)
            changed = (OUTBOX if outbox else "") + (
                IDENTITIES if profiles or any(w.links for w in writes) else ""
            )
            if changed:  # one per commit; delivered to listeners once this one commits
                cur.execute("SELECT pg_notify(%s, %s)", (self.channel, changed))
            if quarantine_states:
                cur.executemany(
                    "UPDATE quarantine SET state = %s WHERE id = %s",
                    [(state, record_id) for record_id, state in quarantine_states],
                )
            _add_counts(cur, plan.counts())
            if claiming and (due := self.claim_sweep.due(writes)) is not None:
                cur.execute(_SWEEP, due, prepare=False)
        return plan.duplicates

    def lease(self, limit: int, now: float) -> list[OutboxRow]:
        """Claim up to ``limit`` due pending rows in seq order, keeping per-person order
        (as :meth:`SQLiteStore.lease <trackguard.store.sqlite.SQLiteStore.lease>`)."""
        if limit <= 0:
            self._check_open()
            return []
        params = {"until": now + self.lease_seconds, "now": now, "limit": limit}
        with self._transaction(_LEASE_LOCK) as cur:
            rows = cur.execute(_LEASE, params).fetchall()
        rows.sort(key=lambda r: r[0])
        return [outbox_row_from(r) for r in rows]

    def mark_delivered(self, seqs: Sequence[int], now: float) -> None:
        """Pending rows become ``delivered`` (attempts + 1); other or unknown seqs are ignored."""
        todo = list(dict.fromkeys(seqs))
        if not todo:
            self._check_open()
            return
        with self._transaction() as cur:
            n = cur.execute(_MARK_DELIVERED, {"seqs": todo, "now": now}).rowcount
            _add_counts(cur, {"pending": -n, "delivered": n})

    def mark_retry(self, seqs: Sequence[int], error: str, next_attempt_at: float) -> None:
        """Pending rows get ``attempts + 1``, ``last_error`` and their next due time."""
        todo = list(dict.fromkeys(seqs))
        if not todo:
            self._check_open()
            return
        with self._transaction() as cur:
            cur.execute(_MARK_RETRY, {"seqs": todo, "error": error, "at": next_attempt_at})

    def mark_failed(self, failures: Sequence[tuple[int, QuarantineRecord]], now: float) -> None:
        """Rows Customer.io rejected for good: mark them failed and quarantine them, atomically
        (only rows still pending; ``last_error`` becomes the record's ``upstream_error``)."""
        todo = {seq: rec for seq, rec in failures}
        if not todo:
            self._check_open()
            return
        with self._transaction() as cur:
            failed = [
                int(r[0])
                for r in cur.execute(_MARK_FAILED, {"seqs": list(todo), "now": now}).fetchall()
            ]
            errors = [(todo[s].upstream_error, s) for s in failed if todo[s].upstream_error]
            if errors:
                cur.executemany("UPDATE outbox SET last_error = %s WHERE seq = %s", errors)
            if failed:
                _insert_quarantine(cur, [quarantine_params(todo[s], s) for s in sorted(failed)])
            n = len(failed)
            _add_counts(cur, {"pending": -n, "failed": n, "quarantine": n})

    def import_identities(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Bind emails to ids; an email already bound keeps its id. How many were new."""
        with self._transaction(_COMMIT_LOCK) as cur:
            before = cur.execute("SELECT count(*) FROM identities").fetchone()
            cur.executemany(_BIND, [(email.strip().lower(), ident) for email, ident in pairs])
            after = cur.execute("SELECT count(*) FROM identities").fetchone()
            cur.execute("SELECT pg_notify(%s, %s)", (self.channel, IDENTITIES))
        return int(after[0]) - int(before[0]) if before and after else 0

    def set_meta(self, key: str, value: str) -> None:
        """Save ``value`` under ``key`` in its own transaction."""
        with self._transaction() as cur:
            _save_meta(cur, {key: value})

    @property
    def lock_key(self) -> int:
        """The first key of this schema's advisory locks (the second is their purpose)."""
        return self._lock_key

    def dedicated_connection(self) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool, for session state (a session advisory
        lock); the caller closes it. Raises StoreError when the database is unreachable."""
        self._check_open()
        return self._connect()

    def reserve_tokens(
        self, name: str, n: int, rate: float, capacity: float, member: str
    ) -> Reservation:
        """Take ``n`` tokens from the shared bucket ``name`` for deliverer ``member``
        (``ratelimit.take_shared``: the lowest rate of the deliverers reserving binds), kept
        in ``meta`` under ``ratelimit.<name>`` and refilled by the database's clock, so
        deliverers on hosts whose clocks differ share one rate."""
        key = f"ratelimit.{name}"
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (%s, '') ON CONFLICT (key) DO NOTHING",
                (key,),
            )
            row = cur.execute(_BUCKET, (key,)).fetchone()
            assert row is not None
            saved, now = _bucket_state(row[0]), float(row[1])
            state, reservation = take_shared(saved, member, now, rate, capacity, n)
            cur.execute(
                "UPDATE meta SET value = %s WHERE key = %s",
                (_encode(state).decode(), key),
            )
        return reservation

    def subscribe(self, kinds: str, callback: Callable[[], None]) -> Unsubscribe:
        """Call ``callback`` after each commit that added what ``kinds`` names (``listen.py``:
        ``o`` outbox rows, ``i`` bindings or orders) and after the listening connection came
        back; the first subscription opens that connection, on a thread of its own."""
        self._check_open()
        with self._lock:
            if self._listener is None:
                self._listener = Listener(self._connect, self.channel)
            listener = self._listener
        return listener.add(kinds, callback)

    def close(self) -> None:
        """Close every connection; idempotent. Later calls raise StoreClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for conn in idle:
            conn.close()


def _bucket_state(value: str) -> SharedState | None:
    """A saved shared bucket (one saved before deliverers' rates were kept has none); None for
    a new (or unreadable) one."""
    try:
        return _decode_bucket.decode(value)
    except msgspec.DecodeError:
        return None


def _insert_outbox(cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> None:
    """Outbox rows numbered in the order given, in one statement with their numbers taken."""
    cur.execute(_INSERT_OUTBOX, {"n": len(rows), "rows": _json(list(map(_outbox_json, rows)))})


def _outbox_json(p: tuple[Any, ...]) -> tuple[Any, ...]:
    """``_outbox_params`` as ``_INSERT_OUTBOX`` reads them (floats as repr, payload in hex)."""
    delivered = p[10]
    return (
        repr(p[0]),
        p[1],
        p[2].hex(),
        *p[3:8],
        repr(p[8]),
        p[9],
        None if delivered is None else repr(delivered),
        p[11],
        p[12],
    )


def _insert_quarantine(cur: psycopg.Cursor[Any], records: list[tuple[Any, ...]]) -> None:
    """Quarantine records numbered in the order given, in one statement."""
    rows = [(repr(q[0]), *q[1:5], q[5].hex(), *q[6:]) for q in records]
    cur.execute(_INSERT_QUARANTINE, {"n": len(rows), "rows": _json(rows)})


def _read_first(
    conn: psycopg.Connection[Any], writes: Sequence[Write]
) -> tuple[ClaimBook, dict[str, tuple[Any, ...]]]:
    """The claims of every key ``writes`` claim, for Python to decide on
    (:mod:`trackguard.store.claims`), and the profiles of every person with an order to derive
    from (a person whose order turns out a duplicate is read for nothing, which costs less than
    a statement per person): two statements, sent with the commit's BEGIN and lock.

    Both are read under the commit lock, after every earlier commit became visible, so no
    other commit takes a key or changes a profile before this one writes it. Claims are also
    deleted outside that lock (the retention's expired claims, replay's ``_release`` of a failed
    row's key), which cannot change an answer: a commit that read a claim another transaction
    deletes before this one commits acts as if it committed before the delete (the claim held
    its key; or, expired, was taken, and the upsert inserts the key afresh), and one that read
    after the delete as if it committed after it."""
    held = found = None
    keys = claiming_keys(r for w in writes for r in w.outbox)
    if keys:
        held = conn.cursor().execute(_HELD, (_json(keys),), prepare=False)
    persons = list({r.person for w in writes for r in w.outbox if r.derive is not None})
    if persons:
        found = conn.cursor().execute(_PROFILES, (_json(persons),), prepare=False)
    book = ClaimBook(held.fetchall() if held is not None else ())
    return book, {row[0]: row[1:] for row in found} if found is not None else {}


def _take_claims(cur: psycopg.Cursor[Any], taken: Mapping[str, tuple[float, str]]) -> None:
    """Write the keys a commit took, in one statement (each key once: its last taking)."""
    rows = [(key, repr(until), person) for key, (until, person) in taken.items()]
    cur.execute(_TAKE, (_json(rows),))


def _save_profiles(cur: psycopg.Cursor[Any], profiles: Mapping[str, Sequence[Any]]) -> None:
    """The changed profiles in one statement, numbered ``max(seq) + 1, + 2, ...`` in order."""
    rows = [
        (person, first, last, count, repr(value))
        for person, (first, last, count, value) in profiles.items()
    ]
    cur.execute(_SAVE_PROFILES, (_json(rows),))


def _add_counts(cur: psycopg.Cursor[Any], deltas: Mapping[str, int]) -> None:
    """Count changes in one statement, locking the rows in name order first (the same lock
    order in every transaction: commits and marks never wait on each other in a cycle)."""
    changed = sorted((name, n) for name, n in deltas.items() if n)
    if changed:
        cur.execute(_ADD_COUNTS, (_json(changed),))


def _save_meta(cur: psycopg.Cursor[Any], meta: Mapping[str, str]) -> None:
    cur.executemany(
        "INSERT INTO meta (key, value) VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        list(meta.items()),
    )


def _learn(cur: psycopg.Cursor[Any], writes: Sequence[Write]) -> None:
    """Identity bindings and anonymous activity, in the commit's transaction: one statement
    each, giving the rows the statements of one row at a time would (the first binding of an
    email and the first link of an anonymous id win)."""
    binds: dict[str, str] = {}
    seen: list[tuple[str, str, str | None]] = []
    linked: dict[str, tuple[str, str, str]] = {}
    for w in writes:
        for email, ident in w.links:
            binds.setdefault(email, ident)
        if w.anonymous or w.anonymous_links:
            at = repr(max((r.received_at for r in w.outbox), default=time.time()))
            seen.extend((anonymous_id, at, event) for anonymous_id, event in w.anonymous)
            for anonymous_id, person in w.anonymous_links:
                linked.setdefault(anonymous_id, (anonymous_id, at, person))
    if binds:
        cur.execute(_BIND_NEW, (_json(list(binds.items())),), prepare=False)  # see _HELD
    if seen:
        cur.execute(_SEEN, (_json(seen),))
    if linked:
        cur.execute(_LINK, (_json(list(linked.values())),))


def _json(rows: Sequence[Any]) -> str:
    """Rows (or values) as the JSON text a statement reads with ``json_array_elements``."""
    return _encode(rows).decode()
