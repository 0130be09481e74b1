"""Retention: what the store deletes as it ages, so the file stays bounded under steady traffic.

Every table that grows with traffic has a rule here:

* ``outbox``: delivered and failed rows, ``outbox`` seconds after they finished (7 days by
  default). A failed row's content lives on in its ``upstream`` quarantine record.
* ``claims``: dedupe claims once expired (a claim lasts its dedupe window).
* ``anonymous``: anonymous activity first seen ``anonymous`` seconds ago (30 days).
* ``monitor_counts`` / ``monitor_hourly`` / ``monitor_health``: the monitor's buckets,
  ``monitor`` seconds (8 days, so week-ago baselines work). In a gateway the monitor prunes
  its own tables with its ``settings.retention``; ``trackguard store prune`` prunes them too.

Never deleted here: pending rows, quarantine records (``trackguard quarantine purge`` keeps
their retention), identity bindings, derived profiles, the counts and the meta table.

Each batch is one short transaction of at most ``batch`` rows that also lowers the matching
``counts`` rows, so counts stay exact and a prune never holds the write lock for long. A
:class:`Pruner` runs the rules every ``every`` seconds inside the process that delivers
(the gateway's delivery thread, ``trackguard deliver``).

The same rules run on SQLite and PostgreSQL. On PostgreSQL several processes may prune one
database at once (a deliverer on each host): a batch picks its rows with ``FOR UPDATE SKIP
LOCKED``, so two pruners never wait on each other, and lowers ``counts`` by the rows its own
``DELETE … RETURNING`` removed, so a row two pruners both chose is counted once. The cutoff
is checked again on the row being deleted: a claim a commit renewed meanwhile stays.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trackguard.store.base import Store, StoreError
from trackguard.store.prune_rules import ANONYMOUS, CLAIMS, MONITOR_TABLES, OUTBOX, Rule
from trackguard.store.sql import Session, session
from trackguard.store.sqlite import SQLiteStore

__all__ = [
    "ANONYMOUS",
    "CLAIMS",
    "DEFAULT_PRUNE_EVERY",
    "MONITOR_RETENTION",
    "MONITOR_TABLES",
    "OUTBOX",
    "Pruner",
    "Retention",
    "Rule",
    "delete_batches",
    "prune",
]

log = logging.getLogger("trackguard.store.retention")

DAY: Final = 86_400.0
#: Seconds between two scheduled prunes (10 minutes): rows outlive their retention by at most
#: this much.
DEFAULT_PRUNE_EVERY: Final = 600.0
#: How long the monitor's buckets are kept unless told otherwise (the alert file's
#: ``settings.retention`` has the same default): 8 days, so week-ago baselines work.
MONITOR_RETENTION: Final = 8 * DAY
#: Rows per prune transaction: a few milliseconds of write lock.
DEFAULT_BATCH: Final = 500


@dataclass(frozen=True)
class Retention:
    """How long each kind of row is kept, in seconds (see the module docstring).

    ``monitor=None`` leaves the monitor's tables to the running monitor.
    """

    outbox: float = 7 * DAY
    anonymous: float = 30 * DAY
    monitor: float | None = MONITOR_RETENTION

    def __post_init__(self) -> None:
        for name in ("outbox", "anonymous", "monitor"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} retention must be a number of seconds >= 0, not {value}")


#: A write transaction: a store's ``transaction`` (a SQLite connection) or a session's.
Transaction = Callable[[], AbstractContextManager[sqlite3.Connection | Session]]


def _rows(conn: sqlite3.Connection | Session, sql: str, params: tuple[float, ...]) -> list[Any]:
    if isinstance(conn, Session):
        return conn.rows(sql, params)
    return conn.execute(sql, params).fetchall()


def session_transaction(s: Session) -> Transaction:
    """``s``'s write transactions as a :data:`Transaction` (yielding ``s``)."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        with s.transaction():
            yield s

    return transaction


def delete_batches(
    transaction: Transaction,
    rule: Rule,
    cutoff: float,
    batch: int,
    pause: float = 0.0,
    stop: threading.Event | None = None,
) -> int:
    """Delete the rows ``rule`` selects below ``cutoff`` (seconds), ``batch`` per
    transaction, sleeping ``pause`` between batches so other writers get the lock; returns
    how many went. Once ``stop`` is set it returns after the batch in hand (a process shutting
    down does not wait for a long prune: the next one goes on from there)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    total = 0
    limit = rule.cutoff(cutoff)
    while True:
        with transaction() as conn:
            dialect = conn.dialect if isinstance(conn, Session) else "sqlite"
            states = _rows(conn, rule.batch_sql(dialect), (limit, batch, limit))
            if rule.counted and states:
                # in name order, as every writer of counts does (no lock cycles on PostgreSQL)
                for state, n in sorted(Counter(s for (s,) in states).items()):
                    _rows(conn, "UPDATE counts SET n = n - ? WHERE name = ?", (n, state))
        total += len(states)
        if len(states) < batch or (stop is not None and stop.is_set()):
            return total
        if pause > 0:
            time.sleep(pause)


def _cutoffs(retention: Retention, now: float) -> list[tuple[Rule, float]]:
    out = [(OUTBOX, now - retention.outbox), (CLAIMS, now), (ANONYMOUS, now - retention.anonymous)]
    if retention.monitor is not None:
        out += [(rule, now - retention.monitor) for rule in MONITOR_TABLES]
    return out


def prune(
    store: Store,
    retention: Retention,
    now: float,
    *,
    batch: int = DEFAULT_BATCH,
    pause: float = 0.0,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Apply ``retention`` at ``now``: rows deleted per table (with ``dry_run``, the rows
    that would be, and nothing is written). Tables the store does not have are skipped; once
    ``stop`` is set each table's prune ends after its current batch.

    On SQLite the batches go through the store's writer, in turn with its commits; on
    PostgreSQL through one pooled connection of the store, each batch its own transaction.
    """
    report: dict[str, int] = {}
    with _opened(store, readonly=dry_run) as (has_table, count, transaction):
        for rule, cutoff in _cutoffs(retention, now):
            if not has_table(rule.table):
                continue
            if dry_run:
                report[rule.table] = count(rule.count_sql, (rule.cutoff(cutoff),))
            else:
                report[rule.table] = delete_batches(transaction, rule, cutoff, batch, pause, stop)
    return report


_Opened = tuple[Callable[[str], bool], Callable[[str, tuple[float, ...]], int], Transaction]


@contextmanager
def _opened(store: Store, readonly: bool) -> Iterator[_Opened]:
    """How :func:`prune` asks ``store`` whether it has a table, counts, and writes."""
    if isinstance(store, SQLiteStore):
        listed = store.read("SELECT name FROM sqlite_master WHERE type = 'table'")
        present = {name for (name,) in listed}
        yield present.__contains__, lambda sql, p: int(store.read(sql, p)[0][0]), store.transaction
        return
    from trackguard.store.postgres import PostgresStore  # psycopg is there: the store is open

    if not isinstance(store, PostgresStore):
        raise StoreError(f"{store!r}: retention works on a SQLite or PostgreSQL store")
    with session(store, readonly=readonly) as s:
        yield s.has_table, lambda sql, p: int(s.rows(sql, p)[0][0]), session_transaction(s)


class Pruner:
    """Runs :func:`prune` every ``every`` seconds on the store of a running process.

    ``run(stop)`` prunes at once (a restarted process catches up), then every ``every``
    seconds until ``stop`` is set. A failed prune is logged, counted and tried again at the
    next turn; it never stops delivery. ``clock`` is Unix time (fake it in tests).
    """

    def __init__(
        self,
        store: Store,
        retention: Retention,
        *,
        every: float = DEFAULT_PRUNE_EVERY,
        batch: int = DEFAULT_BATCH,
        pause: float = 0.005,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(every) and every > 0):
            raise ValueError(f"the prune interval must be a number of seconds > 0, not {every}")
        self.store = store
        self.retention = retention
        self.every = every
        self.batch = batch
        self.pause = pause
        self.clock = clock
        self.pruned: Counter[str] = Counter()
        self.runs = 0
        self.failures = 0
        self.last_run_at: float | None = None
        self._lock = threading.Lock()

    def prune_now(self, stop: threading.Event | None = None) -> dict[str, int] | None:
        """One prune at ``clock()`` (cut short once ``stop`` is set); None when it failed
        (logged and counted)."""
        now = self.clock()
        started = time.monotonic()
        try:
            report = prune(
                self.store, self.retention, now, batch=self.batch, pause=self.pause, stop=stop
            )
        except StoreError as exc:
            with self._lock:
                self.failures += 1
            log.error("retention prune failed, retried in %.0f s: %s", self.every, exc)
            return None
        with self._lock:
            self.runs += 1
            self.last_run_at = now
            self.pruned.update(report)
        if any(report.values()):
            done = ", ".join(f"{table} {n}" for table, n in report.items() if n)
            log.info("pruned %s in %.2f s", done, time.monotonic() - started)
        return report

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.prune_now(stop)
            except Exception:  # a bug must not end pruning silently: it is logged and counted
                with self._lock:
                    self.failures += 1
                log.exception("retention prune failed")
            stop.wait(self.every)

    def collector(self) -> Collector:
        return _PrunerCollector(self)


class _PrunerCollector(Collector):
    def __init__(self, pruner: Pruner) -> None:
        self._pruner = pruner

    def collect(self) -> Iterator[Metric]:
        p = self._pruner
        with p._lock:
            pruned = dict(p.pruned)
            failures, last = p.failures, p.last_run_at
        rows = CounterMetricFamily(
            "trackguard_store_pruned_rows", "Rows deleted by retention", labels=["table"]
        )
        for table, n in sorted(pruned.items()):
            rows.add_metric([table], n)
        yield rows
        yield CounterMetricFamily(
            "trackguard_store_prune_failures", "Retention prunes that failed", value=failures
        )
        yield GaugeMetricFamily(
            "trackguard_store_last_prune_timestamp_seconds",
            "When retention last ran (0: not yet)",
            value=last or 0.0,
        )


def alongside(
    run: Callable[[threading.Event], None], pruner: Pruner
) -> Callable[[threading.Event], None]:
    """``run(stop)`` with ``pruner`` running on a thread of its own until the same ``stop``."""

    def both(stop: threading.Event) -> None:
        thread = threading.Thread(
            target=pruner.run, args=(stop,), name="trackguard-retention", daemon=True
        )
        thread.start()
        try:
            run(stop)
        finally:
            stop.set()
            thread.join()

    return both
