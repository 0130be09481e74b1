"""The monitor: counts every answered request, evaluates the alert rules, sends notifications.

On the request path it only adds to in-memory per-minute counters (:class:`Tally`). A thread
of its own adds them to the store's counters (SQLite or PostgreSQL, summed across gateways)
every ``interval`` seconds, polls delivery for delivered and upstream-rejected rows, takes
data-health snapshots, prunes old buckets, evaluates the rules every ``evaluate_every`` and
hands transitions to the channel workers. Every time is read from ``clock``, so tests drive
whole windows without waiting.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import httpx
import msgspec

from trackguard.core.verdict import Verdict
from trackguard.delivery.circuit import STATE_KEY as CIRCUIT_KEY
from trackguard.delivery.circuit import CircuitState
from trackguard.delivery.circuit import decode_state as decode_circuit
from trackguard.delivery.worker import MetricsSnapshot
from trackguard.monitor.db import MonitorDB
from trackguard.monitor.evaluate import Evaluator, Measurement
from trackguard.monitor.health import HealthSource, OutboxHealth
from trackguard.monitor.loader import load_alerts
from trackguard.monitor.notify import ChannelStatus, ChannelWorker
from trackguard.monitor.payloads import Notification
from trackguard.monitor.prom import MonitorCollector
from trackguard.monitor.rules import AlertConfig, Rule
from trackguard.monitor.state import AlertState, decode_state, encode_state
from trackguard.monitor.tally import (
    DELIVERY,
    NO_SOURCE,
    REQUEST_LOG,
    UNKNOWN,
    Key,
    Tally,
    attribute,
    event_of,
)

log = logging.getLogger("trackguard.monitor")

_QUARANTINE_IDS: Final = 5
_CODES: Final = msgspec.json.Decoder(list[str])
Snapshot = Callable[[], MetricsSnapshot | None]


class Leader(Protocol):
    """Who evaluates when several processes could (``leader.Leadership``)."""

    def held(self) -> bool: ...

    def close(self) -> None: ...


#: The request log's (lines dropped so far, error while it cannot write).
RequestLogState = Callable[[], tuple[int, str | None]]


class Monitor:
    """Implements the gateway's ``RequestObserver``; see the module docstring."""

    def __init__(
        self,
        db: MonitorDB,
        config: AlertConfig,
        *,
        clock: Callable[[], float] = time.time,
        delivery_snapshot: Snapshot | None = None,
        health: HealthSource | None = None,
        interval: float = 5.0,
        client: Callable[[], httpx.Client] = httpx.Client,
        counts_only: bool = False,
        leader: Leader | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.db = db
        #: Asked before each evaluation when several processes could evaluate (PostgreSQL:
        #: ``leader.py``); only the holder evaluates and notifies.
        self.leader = leader
        #: Only flush this process's counts: with ``serve --workers`` one worker measures
        #: health, prunes and evaluates the rules for all of them (docs/operations.md).
        self.counts_only = counts_only
        self.config = config
        self.clock = clock
        self.interval = interval
        self.tally = Tally()
        self.errors = 0
        #: Whether the last round raised: the next waits a whole interval (:meth:`next_wait`).
        self._failed = False
        self.health_values: dict[str, int | None] = {}
        #: Seconds the last data-health measurement took (None: none yet). Its queries scan
        #: the outbox, so this grows with the outbox's size (``trackguard_data_health_seconds``).
        self.health_seconds: float | None = None
        self._timer = timer
        self.measurements: dict[str, Measurement] = {}
        self._snapshot = delivery_snapshot
        self._health = health if health is not None else OutboxHealth(db)
        self._request_log: RequestLogState | None = None
        self._request_log_dropped = 0
        self.request_log_error: str | None = None
        self._evaluator = Evaluator(
            db,
            self._backlog,
            watching_since=clock(),
            request_log_error=lambda: self.request_log_error,
            circuit=self._circuit_state,
        )
        self._previous: tuple[int, int, int, int] = (0, 0, 0, 0)
        saved = saved_states(db, [r.name for r in config.rules])
        self.states = {r.name: saved.get(r.name, AlertState()) for r in config.rules}
        self.channels = {
            name: ChannelWorker(channel, clock, client())
            for name, channel in config.channels.items()
        }
        self._last_eval = self._last_health = self._last_prune = -math.inf
        self._leading = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # --- the gateway's side ----------------------------------------------------------------

    def observe_request(
        self,
        verdict: Verdict | None,
        route: str,
        status: int,
        source: str | None,
        now: float,
        event_hint: str | None = None,
    ) -> None:
        """Count one answered request (O(operations), in memory, never raises)."""
        try:
            self.tally.add(attribute(verdict, route, source, int(now // 60), event_hint))
        except Exception:  # a counting bug must never fail a request
            self.errors += 1
            log.exception("could not count a request")

    def observe_duplicates(
        self, verdict: Verdict, route: str, source: str | None, count: int, now: float
    ) -> None:
        """Count events the store left out as duplicates (answered 2xx, not delivered).

        Counted as the finding ``duplicate`` (not as an outcome: the request's outcome is
        already counted, and rates must not count one request twice).
        """
        try:
            events = [event_of(op) for op in verdict.operations if op.dedupe_key is not None]
            event = events[0] if len(set(events)) == 1 else UNKNOWN
            key: Key = (int(now // 60), event, route, source or NO_SOURCE, "code", "duplicate")
            self.tally.add([key] * count)
        except Exception:  # a counting bug must never fail a request
            self.errors += 1
            log.exception("could not count duplicates")

    def start(self) -> None:
        for worker in self.channels.values():
            worker.start()
        self._worker = threading.Thread(target=self._run, name="trackguard-monitor", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Flush the last counts, save the state, let queued notifications go out, close."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(30.0)
        try:
            self.tick(evaluate=False)
        except Exception:
            log.exception("final monitor flush failed")
        for worker in self.channels.values():
            worker.stop()
        self._save_channels()
        if self.leader is not None:
            self.leader.close()  # another process takes over at once
        self.db.close()

    def watch_request_log(self, state: RequestLogState) -> None:
        """Poll the gateway's request log each round, for ``request_log`` rules."""
        self._request_log = state

    def collector(self) -> MonitorCollector:
        """A prometheus_client Collector of the monitor's figures."""
        return MonitorCollector(self)

    # --- the monitor thread ----------------------------------------------------------------

    def _run(self) -> None:
        wait = self.interval  # the first round after one interval, as every later flush
        while not self._stop.wait(wait):
            self.round()
            wait = self.next_wait()

    def next_wait(self) -> float:
        """Seconds to the next round: the flush ``interval``, or less when an evaluation falls
        due sooner, so rules are evaluated every ``evaluate_every`` whatever the interval."""
        if self.counts_only or self._failed:
            # After a failed round the evaluation is still due, so without this a store that
            # keeps failing (a dropped table, a read-only failover) would be retried, and its
            # traceback logged, thousands of times a second: once an interval is enough.
            return self.interval
        due_in = self._last_eval + self.config.evaluate_every - self.clock()
        return max(0.0, min(self.interval, due_in))

    def round(self) -> bool:
        """One round of the monitor thread; True when it evaluated the rules."""
        due = not self.counts_only and self.clock() - self._last_eval >= self.config.evaluate_every
        if due and self.leader is not None and not self._lead():
            self._last_eval = self.clock()  # ask again at the next evaluation
            due = False
        try:
            self.tick(evaluate=due)
            self._failed = False
        except Exception:
            self.errors += 1
            self._failed = True
            log.exception("monitor round failed")
        return due

    def _lead(self) -> bool:
        """Whether this process evaluates now; on taking over, it resumes the rules' states
        from what the previous evaluator saved."""
        assert self.leader is not None
        before = self._leading
        self._leading = self.leader.held()
        if self._leading and not before:
            self.states.update(saved_states(self.db, list(self.states)))
        return self._leading

    def tick(self, *, evaluate: bool = True) -> list[Notification]:
        """One round at ``clock()``: poll, flush, health, prune, and (by default) evaluate."""
        with self._lock:
            now = self.clock()
            self._poll_delivery(now)
            self._poll_request_log(now)
            self.flush()
            if self.counts_only:
                return []
            if now - self._last_health >= self.config.health_every:
                self._last_health = now
                started = self._timer()
                self.health_values = self._health.measure()
                self.health_seconds = self._timer() - started
                known = {k: v for k, v in self.health_values.items() if v is not None}
                self.db.add_health(now, known)
            if now - self._last_prune >= 3600:
                self._last_prune = now
                self.db.prune(now - self.config.retention)
            if not evaluate:
                self._save_states()
                self._save_channels()  # what the channels sent since the last evaluation
                return []
            self._last_eval = now
            sent = self._evaluate(now)
            self._save_states()
            self._save_channels()
            return sent

    def flush(self) -> None:
        """Write the counts taken since the last flush (given back if the write fails)."""
        taken = self.tally.take()
        if not taken:
            return
        try:
            self.db.add_counts(taken)
        except Exception:
            self.tally.add_counts(taken)
            raise
        self.tally.settle(taken)

    def _poll_delivery(self, now: float) -> None:
        snap = self._snapshot() if self._snapshot is not None else None
        if snap is None:
            return
        errors = sum(n for s, n in snap.requests_by_status.items() if not s.startswith("2"))
        current = (snap.rows_delivered_total, snap.rows_failed_total, snap.requests_total, errors)
        delta = [max(0, c - p) for c, p in zip(current, self._previous, strict=True)]
        self._previous = current
        minute = int(now // 60)
        counts: Counter[Key] = Counter()
        names = ("delivered", "upstream_rejected", "upstream_request", "upstream_error")
        for name, n in zip(names, delta, strict=True):
            if n:
                counts[minute, DELIVERY, DELIVERY, NO_SOURCE, "outcome", name] = n
        self.tally.add_counts(counts)

    def _poll_request_log(self, now: float) -> None:
        if self._request_log is None:
            return
        dropped, self.request_log_error = self._request_log()
        delta, self._request_log_dropped = dropped - self._request_log_dropped, dropped
        if delta > 0:
            name = "request_log_dropped"
            key: Key = (int(now // 60), REQUEST_LOG, REQUEST_LOG, NO_SOURCE, "outcome", name)
            self.tally.add_counts({key: delta})

    def _circuit_state(self) -> CircuitState | None:
        """The delivery circuit as the worker (in any process) last saved it."""
        rows = self.db.query("SELECT value FROM meta WHERE key = ?", (CIRCUIT_KEY,))
        value = rows[0][0] if rows else None
        return decode_circuit(value) if isinstance(value, str | bytes) else None

    def _backlog(self) -> tuple[int, float | None]:
        pending = self.db.query("SELECT n FROM counts WHERE name = 'pending'")
        oldest = self.db.query(
            "SELECT received_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"
        )
        n = pending[0][0] if pending else 0
        at = oldest[0][0] if oldest else None
        return (
            n if isinstance(n, int) else 0,
            float(at) if isinstance(at, (int, float)) else None,
        )

    def _evaluate(self, now: float) -> list[Notification]:
        self._evaluator.reset()
        out: list[Notification] = []
        for rule in self.config.rules:
            try:
                m = self._evaluator.evaluate(rule, now)
            except Exception:
                self.errors += 1
                log.exception("rule %s could not be evaluated", rule.name)
                continue
            self.measurements[rule.name] = m
            state = self.states[rule.name]
            transition = state.step(rule, m.breach, m.clear, now)
            state.value, state.summary = m.value, m.summary
            if transition is None:
                continue
            note = Notification(
                rule=rule.name,
                event=transition,
                severity=rule.severity,
                summary=m.summary,
                at=now,
                description=rule.description,
                value=m.value,
                numbers=m.numbers,
                reasons=m.reasons,
                events=m.events,
                quarantine_ids=self._quarantine_ids(rule, m, now)
                if transition != "resolved"
                else (),
            )
            log.info("rule %s: %s (%s)", rule.name, transition, m.summary)
            for channel in rule.channels:
                self.channels[channel].submit(note)
            out.append(note)
        return out

    def _quarantine_ids(self, rule: Rule, m: Measurement, now: float) -> tuple[int, ...]:
        """The latest quarantine records in the rule's scope, to open first."""
        if rule.kind not in ("rate", "count"):
            return ()
        rows = self.db.query(
            "SELECT id, event_name, codes FROM quarantine WHERE received_at >= ?"
            " AND kind != 'upstream' ORDER BY id DESC LIMIT 2000",
            (now - rule.window,),
        )
        events, routes = rule.scope.events, rule.scope.routes
        wanted = rule.codes or {code for code, _ in m.reasons}
        ids: list[int] = []
        for qid, event, raw_codes in rows:
            if events is not None and event not in events and not (event is None and routes):
                continue
            codes = _CODES.decode(raw_codes) if isinstance(raw_codes, (str, bytes)) else []
            if wanted and not wanted.intersection(codes):
                continue
            if isinstance(qid, int):
                ids.append(qid)
            if len(ids) == _QUARANTINE_IDS:
                break
        return tuple(sorted(ids))

    def _save_states(self) -> None:
        self.db.save_blobs(
            "monitor_alerts", [(name, encode_state(s)) for name, s in self.states.items()]
        )

    def _save_channels(self) -> None:
        self.db.save_blobs(
            "monitor_channels",
            [(name, msgspec.json.encode(w.status)) for name, w in self.channels.items()],
        )

    def wait_notified(self, timeout: float = 10.0) -> bool:
        """Block until every channel has settled its queue (tests, shutdown)."""
        return all(w.wait_idle(timeout) for w in self.channels.values())


def saved_channels(db: MonitorDB) -> dict[str, ChannelStatus]:
    """The channel health the last running monitor saved (``alerts status``)."""
    decode = msgspec.json.Decoder(ChannelStatus).decode
    return {name: decode(blob) for name, blob in db.load_blobs("monitor_channels").items()}


def saved_states(db: MonitorDB, names: Iterable[str] | None = None) -> dict[str, AlertState]:
    """The rule states the last evaluator saved (``alerts status``; a monitor starting or
    taking over evaluation resumes from them): every rule's, or only those of ``names``."""
    saved = db.load_blobs("monitor_alerts")
    wanted = saved if names is None else [name for name in names if name in saved]
    return {name: decode_state(saved[name]) for name in wanted}


def build_monitor(
    db_path_or_url: str | os.PathLike[str],
    rules_path: str | os.PathLike[str] | None,
    *,
    clock: Callable[[], float] = time.time,
    delivery_snapshot: Snapshot | None = None,
    interval: float = 5.0,
    config: AlertConfig | None = None,
    counts_only: bool = False,
) -> Monitor:
    """A monitor on the store's database (its SQLite file or PostgreSQL schema), with the
    rules of ``rules_path`` (or none).

    Raises :class:`~trackguard.monitor.loader.RuleError` for an invalid alert file, so
    ``serve`` fails at start-up with the file and place of the problem.
    """
    if config is None:
        config = load_alerts(rules_path) if rules_path is not None else AlertConfig()
    db = MonitorDB(db_path_or_url)
    return Monitor(
        db,
        config,
        clock=clock,
        delivery_snapshot=delivery_snapshot,
        interval=interval,
        counts_only=counts_only,
    )
