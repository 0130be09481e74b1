"""The delivery worker: lease outbox rows, pack them, send them at a fair rate, settle each row.

Every leased row ends a round in exactly one state, so nothing acknowledged is lost:

* **delivered**: a 2xx, or a 207 that named other items;
* **failed** (quarantined, kind ``upstream``) only when Customer.io refused the row itself: its
  item in a 207, or a 400/413/422 for a request carrying that row alone (a batch refused as a
  whole is split in halves and resent until the bad item stands alone), an item too large to
  ever send, or ``max_attempts`` rounds used up;
* **retry** for everything that says nothing about the row: 429, 5xx, timeouts, connection
  errors, and also 401/403 and unexpected statuses (credentials or configuration, logged
  loudly: good data is never quarantined for them). The delay is exponential backoff with full
  jitter, or the ``Retry-After`` upstream asked for.

Pipelines API rows (``{"pipelines": call}``) go through their own transport (the Pipelines
host, the write key, ``X-Strict-Mode: 1`` so refusals are visible) at their own rate; a strict
400 is settled like a Track API 400: the batch is split until the refused call stands alone.

After a retryable failure the round stops and the rows not yet sent are rescheduled with the
same delay: upstream is struggling, and sending a person's later rows while an earlier one
waits would break per-person order.

Rows Customer.io refuses are judged batch by batch by the circuit breaker (``circuit.py``):
while a batch's refusals could still be part of an upstream that refuses everything, its refused
rows are *held* (kept pending, not due) instead of quarantined; several bad batches in a row open
the circuit and every held row goes back to the outbox, a good batch quarantines them.
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import msgspec

from trackguard.delivery.batching import (
    DEFAULT_MAX_BATCH_BYTES,
    Rejected,
    UpstreamRequest,
    alone,
    pack,
    split,
)
from trackguard.delivery.circuit import (
    STATE_KEY,
    Circuit,
    CircuitPolicy,
    CircuitState,
    decode_state,
)
from trackguard.delivery.ratelimit import Bucket, bucket_for
from trackguard.delivery.transport import Transport, TransportError, retry_after_seconds
from trackguard.store.base import (
    OutboxRow,
    OutboxStats,
    QuarantineRecord,
    Store,
    StoreClosed,
    StoreError,
)
from trackguard.store.listen import OUTBOX, Wakeup

log = logging.getLogger("trackguard.delivery")

#: Statuses that mean "this request's content is wrong": the rows are at fault.
PERMANENT: Final = frozenset({400, 413, 422})
#: Customer.io's documented soft limit for the Pipelines API: 3000 requests per 3 seconds.
PIPELINES_RATE: Final = 1000.0
#: Statuses expected while upstream is busy or down; anything else retryable is logged loudly.
TRANSIENT: Final = frozenset({408, 425, 429})
#: The shortest idle pause a notification cuts: a stream of commits wakes a worker at most
#: 20 times a second.
WAKE_GAP: Final = 0.05
ITEMS_BOUNDS: Final = (1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
LATENCY_BOUNDS: Final = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)
_encode: Final = msgspec.json.encode
_decode: Final = msgspec.json.Decoder().decode


class Uniform(Protocol):
    """What the worker needs from a random source (``random.Random`` has it)."""

    def uniform(self, a: float, b: float, /) -> float: ...


# --- what Customer.io said -----------------------------------------------------------------------


class UpstreamError(msgspec.Struct, frozen=True, kw_only=True):
    """One error Customer.io reported; ``batch_index`` is set in a 207."""

    message: str
    reason: str = ""
    field: str = ""
    batch_index: int | None = None


def upstream_errors(body: bytes) -> list[UpstreamError]:
    """Errors in a response body: v2 ``{"errors": [...]}``, v1 ``{"meta": {"errors": [...]}}``
    or ``{"meta": {"error": "..."}}`` (merge). Empty when the body says nothing readable."""
    try:
        doc = _decode(body)
    except (msgspec.DecodeError, RecursionError):
        return []
    if not isinstance(doc, dict):
        return []
    out: list[UpstreamError] = []
    errors = doc.get("errors")
    if isinstance(errors, list):
        for e in errors:
            if not isinstance(e, dict):
                continue
            index = e.get("batch_index")
            if isinstance(index, bool) or not isinstance(index, int):
                index = None
            out.append(
                UpstreamError(
                    message=_text(e.get("message") or e.get("reason") or e),
                    reason=_text(e.get("reason", "")),
                    field=_text(e.get("field", "")),
                    batch_index=index,
                )
            )
    meta = doc.get("meta")
    if isinstance(meta, dict):
        v1 = meta.get("errors")
        if isinstance(v1, list):
            out.extend(UpstreamError(message=_text(m)) for m in v1)
        if meta.get("error"):
            out.append(UpstreamError(message=_text(meta["error"])))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _encode(value).decode()


def _describe(status: int, body: bytes) -> str:
    errors = upstream_errors(body)
    if errors:
        return "; ".join(e.message for e in errors)
    snippet = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {snippet}" if snippet else "")


# --- counters ------------------------------------------------------------------------------------


class HistogramSnapshot(msgspec.Struct, frozen=True):
    """``counts[i]`` observations fell in ``(bounds[i-1], bounds[i]]``; the last count is the
    ``+Inf`` bucket (``len(counts) == len(bounds) + 1``). Prometheus-ready with ``sum``."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int


class MetricsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    requests_total: int
    requests_by_status: dict[str, int]
    rows_delivered_total: int
    rows_failed_total: int
    rows_retried_total: int
    items_per_request: HistogramSnapshot
    delivery_latency_seconds: HistogramSnapshot
    last_error: str | None
    last_error_at: float | None
    #: The circuit breaker: open (delivery paused, probing), trips since start, next probe.
    circuit_open: bool = False
    circuit_trips_total: int = 0
    circuit_probe_at: float | None = None


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.sum, self.count)


class DeliveryMetrics:
    """What delivery did since the worker started, for ``/metrics``; read from any thread.

    ``requests_by_status`` keys are upstream statuses (``"200"``, ``"429"``…) or ``"error"``
    when no response came back. Latency is ``delivered_at - received_at``: from the client's
    request to Customer.io's 2xx, outage time included.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests_total = 0
        self.rows_delivered_total = 0
        self.rows_failed_total = 0
        self.rows_retried_total = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._by_status: dict[str, int] = {}
        self._items = _Histogram(ITEMS_BOUNDS)
        self._latency = _Histogram(LATENCY_BOUNDS)
        self._circuit = CircuitState()

    def circuit(self, state: CircuitState) -> None:
        with self._lock:
            self._circuit = state

    def request(self, status: str, items: int) -> None:
        with self._lock:
            self.requests_total += 1
            self._by_status[status] = self._by_status.get(status, 0) + 1
            self._items.observe(items)

    def delivered(self, latencies: Sequence[float]) -> None:
        with self._lock:
            self.rows_delivered_total += len(latencies)
            for seconds in latencies:
                self._latency.observe(seconds)

    def failed(self, rows: int) -> None:
        with self._lock:
            self.rows_failed_total += rows

    def retried(self, rows: int) -> None:
        with self._lock:
            self.rows_retried_total += rows

    def error(self, message: str, at: float) -> None:
        with self._lock:
            self.last_error, self.last_error_at = message, at

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                requests_total=self.requests_total,
                requests_by_status=dict(self._by_status),
                rows_delivered_total=self.rows_delivered_total,
                rows_failed_total=self.rows_failed_total,
                rows_retried_total=self.rows_retried_total,
                items_per_request=self._items.snapshot(),
                delivery_latency_seconds=self._latency.snapshot(),
                last_error=self.last_error,
                last_error_at=self.last_error_at,
                circuit_open=self._circuit.state == "open",
                circuit_trips_total=self._circuit.trips,
                circuit_probe_at=self._circuit.probe_at,
            )


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    """One :meth:`DeliveryWorker.run_once`: rows leased and how each ended.

    ``retry_at`` is set when upstream failed and the round stopped: the time the rescheduled
    rows are due again.
    """

    leased: int = 0
    requests: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    retry_at: float | None = None
    last_error: str | None = None


class _Round:
    """Tallies of one round (mutable; becomes a DeliveryReport)."""

    __slots__ = ("delivered", "failed", "last_error", "requests", "retried", "retry_at")

    def __init__(self) -> None:
        self.requests = self.delivered = self.failed = self.retried = 0
        self.retry_at: float | None = None
        self.last_error: str | None = None


# --- the worker ----------------------------------------------------------------------------------


class DeliveryWorker:
    """Sends the outbox of ``store`` through ``transport``, at most ``rate`` requests per
    second (``burst`` at once), ``lease_size`` rows per round. On a PostgreSQL store the rate
    is shared with every other worker on it (``ratelimit.SharedBucket``).

    ``clock`` is Unix time (the store's timestamps are); ``sleep`` waits for rate-limit tokens;
    ``rng`` draws backoff jitter. Inject fakes of the three for deterministic tests.
    ``max_attempts`` (None: retry forever) quarantines a row after that many failed rounds.
    ``circuit`` is the breaker's policy (None: no breaker, every refused row is quarantined
    at once).
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        rate: float = 100.0,
        burst: int | None = None,
        lease_size: int = 1000,
        max_attempts: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        retry_after_max: float = 600.0,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        idle_sleep: float = 0.5,
        linger: float = 1.0,
        batch_target: int = 500,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rng: Uniform | None = None,
        circuit: CircuitPolicy | None = CircuitPolicy(),  # noqa: B008 - frozen, shared safely
        pipelines: Transport | None = None,
        pipelines_rate: float = PIPELINES_RATE,
    ) -> None:
        if lease_size < 1:
            raise ValueError("lease_size must be at least 1")
        self.store = store
        self.transport = transport
        # On a PostgreSQL store the buckets are shared by every deliverer (ratelimit.py).
        self.bucket: Bucket = bucket_for(
            store, "track", rate, burst if burst is not None else max(1, int(rate / 10)), clock
        )
        self.lease_size = lease_size
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.max_batch_bytes = max_batch_bytes
        self.idle_sleep = idle_sleep
        self.linger = linger
        self.batch_target = batch_target
        self.clock = clock
        self.sleep = sleep
        self.rng: Uniform = rng if rng is not None else random.Random()
        self.metrics = DeliveryMetrics()
        #: The Pipelines API's transport and token bucket (None: Pipelines rows wait, logged).
        self.pipelines = pipelines
        self.pipelines_bucket: Bucket = bucket_for(
            store, "pipelines", pipelines_rate, max(1, int(pipelines_rate / 10)), clock
        )
        self._failures = 0  # consecutive failed requests: the backoff exponent
        self.circuit = Circuit(circuit) if circuit is not None else None
        #: Refused rows of the current streak of bad batches, by seq: quarantined when a good
        #: batch ends the streak, back to the outbox when the circuit opens.
        self._held: dict[int, tuple[OutboxRow, QuarantineRecord]] = {}
        self._circuit_loaded = False

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set: sleeps ``idle_sleep`` when nothing is due (cut short
        by a PostgreSQL store's notification of new outbox rows), and until the retry time
        after upstream failed."""
        log.info("delivery started (%.1f req/s, burst %d)", self.bucket.rate, self.bucket.burst)
        wake = Wakeup(self.store, OUTBOX, stop, min_wait=min(WAKE_GAP, self.idle_sleep))
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    stats = self.store.outbox_stats() if self.linger > 0 else None
                    wait = 0.0 if stats is None else self.linger_wait(stats, self.clock())
                    if stats is not None and wait > 0:
                        # Only an empty outbox waits for news; a lingering batch waits its time.
                        (wake.wait if stats.pending == 0 else stop.wait)(wait)
                        continue
                    report = self.run_once()
                except StoreClosed:
                    break
                except StoreError as exc:
                    log.error("store error, delivery pauses: %s", exc)
                    stop.wait(self.idle_sleep)
                    continue
                if report.leased:
                    log.debug(
                        "round: %d rows leased, %d requests, %d delivered, %d quarantined,"
                        " %d retried",
                        report.leased,
                        report.requests,
                        report.delivered,
                        report.failed,
                        report.retried,
                    )
                if report.retry_at is not None:
                    stop.wait(max(0.0, report.retry_at - self.clock()))
                elif report.leased == 0:
                    wake.wait(self.idle_sleep)
        finally:
            wake.close()
        log.info("delivery stopped")

    def linger_wait(self, stats: OutboxStats, now: float) -> float:
        """How long to wait for a fuller batch before the next round (0: go now).

        Every upstream request spends one of the few the rate limit allows, so a round waits
        until ``batch_target`` rows are pending or the oldest has waited ``linger`` seconds:
        under load batches fill up; a lone event still leaves within ``linger``. An empty
        outbox waits ``idle_sleep``. ``run`` asks only when ``linger`` is positive.
        """
        if stats.pending == 0:
            return self.idle_sleep
        if stats.pending >= self.batch_target or stats.oldest_pending_at is None:
            return 0.0
        return max(0.0, min(self.linger - (now - stats.oldest_pending_at), self.idle_sleep))

    def run_once(self, now: float | None = None) -> DeliveryReport:
        """One round: lease due rows, pack them, send each request, settle every row.

        While the circuit is open, a round is a probe of ``probe_size`` rows once it is due
        (before that, nothing is leased and ``retry_at`` is the probe time).
        """
        at = self.clock() if now is None else now
        circuit = self._loaded_circuit()
        probing = circuit is not None and circuit.is_open
        if circuit is not None and probing and not circuit.probe_due(at):
            return DeliveryReport(retry_at=circuit.state.probe_at, last_error=circuit.state.reason)
        tally = _Round()
        if circuit is not None and circuit.streak_expired(at):
            self._fail(self._release(), tally)
        limit = circuit.policy.probe_size if circuit is not None and probing else self.lease_size
        rows = self.store.lease(limit, at)
        if not rows:
            if circuit is not None and probing:
                circuit.probed(0, 0, at)
                log.warning("delivery circuit closed: nothing left to probe with")
                self._circuit_changed()
            return DeliveryReport(failed=tally.failed)
        for row in rows:
            self._held.pop(row.seq, None)  # due again (this worker restarted?): judged afresh
        requests, rejected = pack(rows, max_batch_bytes=self.max_batch_bytes)
        if rejected:
            self._fail([(r.row, _rejected_record(r)) for r in rejected], tally)
        if probing:
            self._probe(deque(requests), tally)
        else:
            self._deliver(deque(requests), tally)
        return DeliveryReport(
            leased=len(rows),
            requests=tally.requests,
            delivered=tally.delivered,
            failed=tally.failed,
            retried=tally.retried,
            retry_at=tally.retry_at,
            last_error=tally.last_error,
        )

    def _deliver(self, pending: deque[UpstreamRequest], tally: _Round) -> None:
        """Send each packed request (a batch); judge its refusals once it is settled."""
        while pending:
            request = pending.popleft()
            held, unsent = self._send(request, tally)
            if tally.retry_at is not None:
                self._reschedule_unsent(unsent + pending, tally, held)
                return
            self._judge(len(request.rows), held, tally)
            if tally.retry_at is not None:  # the circuit opened: the rest waits for the probe
                self._reschedule_unsent(pending, tally)
                return

    def _send(
        self, request: UpstreamRequest, tally: _Round
    ) -> tuple[list[tuple[OutboxRow, QuarantineRecord]], deque[UpstreamRequest]]:
        """Send a batch, splitting it while Customer.io refuses it whole: the rows it refused
        (not yet settled), and the requests left unsent when a retryable failure stopped it."""
        held: list[tuple[OutboxRow, QuarantineRecord]] = []
        queue = deque([request])
        while queue:
            halves = self._attempt(queue.popleft(), tally, held)
            if tally.retry_at is not None:
                break
            queue.extendleft(reversed(halves))
        return held, queue

    # -- the circuit breaker -----------------------------------------------------------------

    def _loaded_circuit(self) -> Circuit | None:
        """The breaker, resumed once from the state a previous worker saved in the store (a
        restart must not hammer an upstream that refuses everything)."""
        circuit = self.circuit
        if circuit is not None and not self._circuit_loaded:
            self._circuit_loaded = True
            saved = decode_state(self.store.meta_value(STATE_KEY))
            if saved is not None and saved.state == "open":
                circuit.state = saved
                log.warning("delivery circuit is open (saved state): probing at %s", saved.probe_at)
            self.metrics.circuit(circuit.state)
        return circuit

    def _circuit_changed(self) -> None:
        assert self.circuit is not None
        self.metrics.circuit(self.circuit.state)
        self.store.set_meta(STATE_KEY, self.circuit.encode())

    def _judge(
        self, items: int, held: list[tuple[OutboxRow, QuarantineRecord]], tally: _Round
    ) -> None:
        """Settle a batch's refused rows: quarantine, hold, or (circuit opened) put back."""
        circuit = self.circuit
        if circuit is None:
            if held:
                self._fail(held, tally)
            return
        now = self.clock()
        reason = (held[-1][1].upstream_error or "") if held else ""
        judgement = circuit.judge(items, len(held), now, reason)
        if judgement == "good" or (judgement == "neutral" and not circuit.streak):
            self._fail([*self._release(), *held], tally)
        elif judgement in ("bad", "neutral"):
            self._hold(held, now, tally)
        else:
            rows = [row for row, _ in [*self._release(), *held]]
            state = circuit.state
            assert state.probe_at is not None
            log.error(
                "delivery circuit open: Customer.io refused %.0f%% or more of %d batches in a"
                " row (last: %s); %d refused rows are kept in the outbox, delivery pauses and"
                " probes with %d rows at %s",
                circuit.policy.threshold * 100,
                circuit.policy.batches,
                reason,
                len(rows),
                circuit.policy.probe_size,
                _iso(state.probe_at),
            )
            self._put_back(rows, f"circuit open: {reason}", state.probe_at, tally)
            self._circuit_changed()

    def _probe(self, pending: deque[UpstreamRequest], tally: _Round) -> None:
        """Send the probe's rows; close the circuit if Customer.io mostly accepted them."""
        circuit = self.circuit
        assert circuit is not None
        held: list[tuple[OutboxRow, QuarantineRecord]] = []
        items = 0
        while pending:
            request = pending.popleft()
            refused, unsent = self._send(request, tally)
            held += refused
            items += len(request.rows)
            if tally.retry_at is not None:  # busy or down: the next probe comes after that
                self._reschedule_unsent(unsent + pending, tally, held)
                circuit.postpone(tally.retry_at)
                self._circuit_changed()
                return
        now = self.clock()
        reason = (held[-1][1].upstream_error or "") if held else ""
        if circuit.probed(items, len(held), now, reason):
            log.warning(
                "delivery circuit closed: Customer.io accepted %d of %d probe rows",
                items - len(held),
                items,
            )
            if held:
                self._fail(held, tally)
        else:
            probe_at = circuit.state.probe_at
            assert probe_at is not None
            log.warning(
                "delivery circuit stays open: Customer.io refused %d of %d probe rows (%s);"
                " next probe at %s",
                len(held),
                items,
                reason,
                _iso(probe_at),
            )
            self._put_back([row for row, _ in held], f"circuit open: {reason}", probe_at, tally)
        self._circuit_changed()

    def _hold(
        self, held: list[tuple[OutboxRow, QuarantineRecord]], now: float, tally: _Round
    ) -> None:
        """Keep refused rows pending, not due, until the streak is decided (within ``hold``
        seconds; should this worker stop meanwhile, they are due again after twice that)."""
        if not held:
            return
        assert self.circuit is not None
        for row, record in held:
            self._held[row.seq] = (row, record)
        until = now + 2 * self.circuit.policy.hold
        error = "held: Customer.io refused most of the batch; quarantined unless more batches fail"
        self.store.mark_retry([row.seq for row, _ in held], error, until)
        tally.retried += len(held)

    def _release(self) -> list[tuple[OutboxRow, QuarantineRecord]]:
        held = list(self._held.values())
        self._held.clear()
        return held

    def _put_back(self, rows: Sequence[OutboxRow], error: str, until: float, tally: _Round) -> None:
        """Refused rows back to the outbox, due at ``until`` (never quarantined for it)."""
        if rows:
            self.store.mark_retry([row.seq for row in rows], error, until)
            self.metrics.retried(len(rows))
            tally.retried += len(rows)
        tally.retry_at = until
        tally.last_error = error

    # -- one request -------------------------------------------------------------------------

    def _attempt(
        self,
        request: UpstreamRequest,
        tally: _Round,
        held: list[tuple[OutboxRow, QuarantineRecord]],
    ) -> tuple[UpstreamRequest, ...]:
        """Send ``request`` and settle its rows, except those Customer.io refused, which go to
        ``held`` (the batch's judge settles them); returns the halves to send next when
        Customer.io refused a whole batch."""
        transport, bucket = self.transport, self.bucket
        if request.api == "pipelines":
            if self.pipelines is None:
                error = "no Pipelines upstream: set TRACKGUARD_CDP_API_KEY"
                log.error("%s; %d Pipelines rows are kept and retried", error, len(request.rows))
                self._retry(request, error, None, tally)
                return ()
            transport, bucket = self.pipelines, self.pipelines_bucket
        bucket.acquire(self.sleep)
        tally.requests += 1
        try:
            response = transport.send(request.method, request.path, request.body)
        except TransportError as exc:
            self.metrics.request("error", len(request.rows))
            self._retry(request, f"{type(exc).__name__}: {exc}", None, tally)
            return ()
        status = response.status
        self.metrics.request(str(status), len(request.rows))
        if status == 207 and request.is_batch:
            self._partial(request, response.body, tally, held)
        elif 200 <= status < 300:
            self._delivered(request.rows, tally)
        elif status in PERMANENT and len(request.rows) > 1:
            log.info("HTTP %d for a batch of %d items: splitting it", status, len(request.rows))
            return split(request)
        elif status in PERMANENT:
            record = _record(
                request.rows[0],
                alone(request, 0),
                status=status,
                code="upstream_rejected",
                message=_describe(status, response.body),
                errors=upstream_errors(response.body),
            )
            held.append((request.rows[0], record))
        else:
            error = _describe(status, response.body)
            if status in (401, 403):
                log.error(
                    "Customer.io refused the credentials (HTTP %d): check %s; %d rows are kept"
                    " and retried",
                    status,
                    "TRACKGUARD_CDP_API_KEY"
                    if request.api == "pipelines"
                    else "TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY",
                    len(request.rows),
                )
            elif status not in TRANSIENT and status < 500:
                log.error(
                    "unexpected HTTP %d for %s %s (is the upstream URL right?); rows are retried",
                    status,
                    request.method,
                    request.path,
                )
            wait = retry_after_seconds(response.header("retry-after"), self.clock())
            self._retry(request, error, wait, tally)
        return ()

    def _partial(
        self,
        request: UpstreamRequest,
        body: bytes,
        tally: _Round,
        held: list[tuple[OutboxRow, QuarantineRecord]],
    ) -> None:
        """A 207: the items it names failed for good, the rest were accepted."""
        by_index: dict[int, list[UpstreamError]] = {}
        for error in upstream_errors(body):
            if error.batch_index is not None and 0 <= error.batch_index < len(request.rows):
                by_index.setdefault(error.batch_index, []).append(error)
        failures = []
        for index in sorted(by_index):
            row, errors = request.rows[index], by_index[index]
            record = _record(
                row,
                alone(request, index),
                status=207,
                code="upstream_rejected",
                message="; ".join(e.message for e in errors),
                errors=errors,
            )
            failures.append((row, record))
        held.extend(failures)
        if not by_index:
            log.warning("HTTP 207 naming no item of the batch: counted as delivered")
        self._delivered([r for i, r in enumerate(request.rows) if i not in by_index], tally)

    # -- settling rows -----------------------------------------------------------------------

    def _delivered(self, rows: Sequence[OutboxRow], tally: _Round) -> None:
        self._failures = 0
        if not rows:
            return
        now = self.clock()
        self.store.mark_delivered([r.seq for r in rows], now)
        self.metrics.delivered([now - r.received_at for r in rows])
        tally.delivered += len(rows)

    def _fail(self, failures: Sequence[tuple[OutboxRow, QuarantineRecord]], tally: _Round) -> None:
        now = self.clock()
        self.store.mark_failed([(row.seq, record) for row, record in failures], now)
        for row, record in failures:
            log.warning("row %d quarantined: %s", row.seq, record.upstream_error)
            self.metrics.error(record.upstream_error or "", now)
        self.metrics.failed(len(failures))
        tally.failed += len(failures)

    def _retry(
        self, request: UpstreamRequest, error: str, wait: float | None, tally: _Round
    ) -> None:
        rows = request.rows
        now = self.clock()
        delay = min(wait, self.retry_after_max) if wait is not None else self._backoff()
        self._failures += 1
        tally.retry_at = now + delay
        tally.last_error = error
        self.metrics.error(error, now)
        log.warning("upstream failed (%s): %d rows retried in %.2fs", error, len(rows), delay)
        limit = self.max_attempts
        spent = [i for i, r in enumerate(rows) if limit is not None and r.attempts + 1 >= limit]
        if spent:
            message = f"gave up after {limit} attempts: {error}"
            self._fail(
                [
                    (
                        rows[i],
                        _record(
                            rows[i],
                            alone(request, i),
                            status=0,
                            code="upstream_gave_up",
                            message=message,
                        ),
                    )
                    for i in spent
                ],
                tally,
            )
        again = [r.seq for i, r in enumerate(rows) if i not in spent]
        if again:
            self.store.mark_retry(again, error, tally.retry_at)
            self.metrics.retried(len(again))
            tally.retried += len(again)

    def _reschedule_unsent(
        self,
        queue: deque[UpstreamRequest],
        tally: _Round,
        held: Sequence[tuple[OutboxRow, QuarantineRecord]] = (),
    ) -> None:
        """Rows not sent (and ``held`` rows refused earlier in the interrupted batch, which
        are simply sent again) are due again with the failed request's retry."""
        assert tally.retry_at is not None
        seqs = [row.seq for request in queue for row in request.rows]
        seqs += [row.seq for row, _ in held]
        if seqs:
            error = f"not sent: an earlier request failed ({tally.last_error})"
            self.store.mark_retry(seqs, error, tally.retry_at)
            self.metrics.retried(len(seqs))
            tally.retried += len(seqs)

    def _backoff(self) -> float:
        """Full jitter: uniform in ``[0, min(backoff_max, backoff_base × 2^failures)]``."""
        cap = min(self.backoff_max, self.backoff_base * 2.0 ** min(self._failures, 62))
        return self.rng.uniform(0.0, cap)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# --- quarantine records --------------------------------------------------------------------------


def _record(
    row: OutboxRow,
    request: UpstreamRequest,
    *,
    status: int,
    code: str,
    message: str,
    errors: Sequence[UpstreamError] = (),
) -> QuarantineRecord:
    """The quarantine record of a row, kept as the single request that would resend it.

    It carries the row's source, and the route key and plan version of the check that
    accepted it (None and ``""`` for rows stored before schema v5). Headers stay empty: the
    outbox never holds the client's request headers (nor its credentials), and what delivery
    sent carries trackguard's own, so there are none worth keeping.
    """
    findings = [{"reason": e.reason, "field": e.field, "message": e.message} for e in errors]
    return QuarantineRecord(
        received_at=row.received_at,
        kind="upstream",
        method=request.method,
        path=request.path,
        body=request.body or b"",
        source=row.source,
        plan_version=row.plan_version or "",
        route=row.route,
        status=status,
        findings=_encode(findings or [{"reason": code, "field": "", "message": message}]),
        event_name=row.event_name,
        codes=(code,),
        upstream_error=message,
    )


def _rejected_record(rejected: Rejected) -> QuarantineRecord:
    request = UpstreamRequest(
        method=rejected.method, path=rejected.path, body=rejected.body, rows=(rejected.row,)
    )
    return _record(rejected.row, request, status=0, code=rejected.code, message=rejected.reason)
