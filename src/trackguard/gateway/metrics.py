"""Prometheus metrics of the gateway: requests, verdicts, the outbox and delivery.

Each gateway has its own registry (tests run several in one process). Outbox depth and age
are read from the store at scrape time, so they are never stale. Event names and versions
become labels only through :class:`~trackguard.gateway.labels.EventLabels`, so a scrape
never holds what a client made up and its size is bounded whatever the traffic.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from trackguard.core.verdict import Verdict
from trackguard.delivery.worker import MetricsSnapshot
from trackguard.gateway.labels import EventLabels
from trackguard.http.requestlog import RequestLog
from trackguard.store.base import OutboxStats
from trackguard.store.group import GroupCommitter
from trackguard.store.view import GatewayState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add noise to every scrape


class _StoreCollector(Collector):
    """Outbox depth and age, group-commit and delivery figures, read at scrape time."""

    def __init__(
        self,
        stats: Callable[[], OutboxStats],
        committer: GroupCommitter,
        delivery: Callable[[], MetricsSnapshot | None],
    ) -> None:
        self._stats = stats
        self._committer = committer
        self._delivery = delivery

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        depth = GaugeMetricFamily(
            "trackguard_outbox_rows", "Outbox rows by state", labels=["state"]
        )
        depth.add_metric(["pending"], stats.pending)
        depth.add_metric(["delivered"], stats.delivered)
        depth.add_metric(["failed"], stats.failed)
        yield depth
        yield CounterMetricFamily(
            "trackguard_dedupe_conflicts",
            "Events kept in the quarantine: another person held their dedupe key",
            value=stats.dedupe_conflicts,
        )
        age = 0.0 if stats.oldest_pending_at is None else time.time() - stats.oldest_pending_at
        yield GaugeMetricFamily(
            "trackguard_outbox_oldest_pending_seconds",
            "Age of the oldest undelivered operation",
            value=max(age, 0.0),
        )
        c = self._committer
        yield CounterMetricFamily("trackguard_commits", "Group commits", value=c.commits)
        yield CounterMetricFamily(
            "trackguard_commit_failures", "Group commits that failed", value=c.failed_commits
        )
        yield CounterMetricFamily(
            "trackguard_committed_rows", "Outbox and quarantine rows committed", value=c.rows
        )
        snap = self._delivery()
        if snap is None:
            return
        upstream = CounterMetricFamily(
            "trackguard_upstream_requests",
            "Requests sent to Customer.io by status (error: no response)",
            labels=["status"],
        )
        for status, count in sorted(snap.requests_by_status.items()):
            upstream.add_metric([status], count)
        yield upstream
        rows = CounterMetricFamily(
            "trackguard_delivery_rows", "Outbox rows settled by delivery", labels=["result"]
        )
        rows.add_metric(["delivered"], snap.rows_delivered_total)
        rows.add_metric(["failed"], snap.rows_failed_total)
        rows.add_metric(["retried"], snap.rows_retried_total)
        yield rows
        yield GaugeMetricFamily(
            "trackguard_delivery_circuit_open",
            "1 while delivery is paused because Customer.io refuses nearly everything",
            value=int(snap.circuit_open),
        )
        yield CounterMetricFamily(
            "trackguard_delivery_circuit_trips",
            "Times the circuit opened",
            value=snap.circuit_trips_total,
        )
        for name, doc, hist in (
            (
                "trackguard_upstream_items_per_request",
                "Operations per upstream request",
                snap.items_per_request,
            ),
            (
                "trackguard_delivery_latency_seconds",
                "From request received to delivered",
                snap.delivery_latency_seconds,
            ),
        ):
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.sum)


class _StateCollector(Collector):
    """Refreshes of the in-memory identity state and what they learned from other writers."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        s = self._state
        yield CounterMetricFamily(
            "trackguard_identity_refreshes",
            "Reads of the bindings and latest orders committed by other writers",
            value=s.refreshes,
        )
        yield CounterMetricFamily(
            "trackguard_identity_refresh_failures",
            "Identity refreshes that failed (the next one reads on from the same mark)",
            value=s.refresh_failures,
        )
        yield CounterMetricFamily(
            "trackguard_identity_bindings_learned",
            "Email bindings learned (or corrected) from the store after start-up",
            value=s.bindings_learned,
        )
        yield CounterMetricFamily(
            "trackguard_last_orders_learned",
            "Latest orders learned from the store after start-up",
            value=s.orders_learned,
        )
        # The state mirrors the store's tables, so it grows with the people the store knows
        # (about 420 bytes of memory a person, docs/operations.md): what to size memory by.
        entries = GaugeMetricFamily(
            "trackguard_identity_state_entries",
            "Entries of the in-memory identity state: emails bound to an id, ids by case-folded"
            " form, people with a latest order",
            labels=["map"],
        )
        entries.add_metric(["emails"], len(s.emails))
        entries.add_metric(["folded_ids"], len(s.folded))
        entries.add_metric(["orders"], len(s.orders))
        yield entries


class _RequestLogCollector(Collector):
    """The request log's writer: lines written and dropped, and whether it is failing."""

    def __init__(self, request_log: RequestLog) -> None:
        self._log = request_log

    def collect(self) -> Iterator[Metric]:
        st = self._log.status
        yield CounterMetricFamily(
            "trackguard_request_log_lines", "Request-log lines written", value=st.written
        )
        yield CounterMetricFamily(
            "trackguard_request_log_dropped",
            "Request-log lines dropped (buffer full while the disk was slow or failing)",
            value=st.dropped,
        )
        yield GaugeMetricFamily(
            "trackguard_request_log_buffered", "Request-log lines waiting", value=st.buffered
        )
        yield GaugeMetricFamily(
            "trackguard_request_log_failing",
            "1 while the request log cannot write (retried with backoff)",
            value=1.0 if st.failing else 0.0,
        )
        yield CounterMetricFamily(
            "trackguard_request_log_rotations", "Request-log files rotated", value=st.rotations
        )


class BoundedEvents(Collector):
    """Another collector's metrics with their ``event`` label mapped through ``labels``.

    The monitor counts by raw event name; here names the operator did not choose collapse
    into ``unplanned`` (or ``other``) and their values are summed.
    """

    def __init__(self, inner: Collector, labels: EventLabels) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            if not any("event" in sample.labels for sample in family.samples):
                yield family
                continue
            sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                labels = dict(sample.labels)
                if "event" in labels:
                    labels["event"] = self._labels.event(labels["event"])
                key = (sample.name, tuple(sorted(labels.items())))
                sums[key] = sums.get(key, 0.0) + sample.value
            out = Metric(family.name, family.documentation, family.type)
            for (name, labels_), value in sorted(sums.items()):
                out.add_sample(name, dict(labels_), value)
            yield out


_LATENCY_BOUNDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _RequestCollector(Collector):
    """The per-request counters, kept as plain dicts on the hot path and exported here."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        labelled: tuple[
            tuple[str, str, list[str], Counter[tuple[str, int]] | Counter[tuple[str, str]]], ...
        ] = (
            (
                "trackguard_requests",
                "Requests answered, by route and status",
                ["route", "status"],
                m.requests,
            ),
            (
                "trackguard_verdicts",
                "Verdict outcomes by event name",
                ["event", "outcome"],
                m.outcomes,
            ),
            (
                "trackguard_findings",
                "Contract errors and plan violations by code and action",
                ["code", "action"],
                m.codes,
            ),
            (
                "trackguard_event_versions",
                "Events by data.schema_version, to see when an old version can be retired",
                ["event", "version"],
                m.versions,
            ),
        )
        for name, doc, labels, counter in labelled:
            family = CounterMetricFamily(name, doc, labels=labels)
            for (first, second), n in sorted(list(counter.items())):
                family.add_metric([first, str(second)], n)
            yield family
        yield CounterMetricFamily(
            "trackguard_duplicates",
            "Events answered 2xx but not delivered again (their dedupe key was seen)",
            value=m.duplicates,
        )
        yield CounterMetricFamily(
            "trackguard_unauthenticated_requests",
            "Requests without valid credentials, answered 401 without reading their body",
            value=m.unauthenticated,
        )
        yield CounterMetricFamily(
            "trackguard_request_body_bytes",
            "Request body bytes read (bodies of unauthenticated requests are never read)",
            value=m.body_bytes,
        )
        yield CounterMetricFamily(
            "trackguard_open_quarantine_dropped",
            "Quarantine records of the unauthenticated routes dropped over their budget",
            value=m.open_quarantine_dropped,
        )
        counts = list(m.latency_counts)
        buckets, running = [], 0
        for bound, count in zip((*_LATENCY_BOUNDS, float("inf")), counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
        yield HistogramMetricFamily(
            "trackguard_request_seconds",
            "Time from request received to response sent (includes the durable commit)",
            buckets=buckets,
            sum_value=m.latency_sum,
        )


class GatewayMetrics:
    """The gateway's counters; ``observe`` is called once per request, on the event loop.

    Plain dict increments cost a fraction of a labelled prometheus counter; the registry reads
    them at scrape time.
    """

    def __init__(self, labels: EventLabels | None = None) -> None:
        self.labels = labels if labels is not None else EventLabels(None)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: Counter[tuple[str, int]] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.codes: Counter[tuple[str, str]] = Counter()
        self.latency_counts = [0] * (len(_LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.duplicates = 0
        self.versions: Counter[tuple[str, str]] = Counter()
        self.unauthenticated = 0
        self.body_bytes = 0
        self.open_quarantine_dropped = 0
        self.registry.register(_RequestCollector(self))
        # The process's own figures, named as every Prometheus client names them: resident
        # memory and open descriptors to alert on before a limit is reached (the identity
        # state grows with the people the store knows), CPU seconds, the collector's runs.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def bind_store(
        self,
        stats: Callable[[], OutboxStats],
        committer: GroupCommitter,
        delivery: Callable[[], MetricsSnapshot | None],
    ) -> None:
        """Expose outbox, commit and delivery figures, read at scrape time."""
        self.registry.register(_StoreCollector(stats, committer, delivery))

    def bind_state(self, state: GatewayState) -> None:
        """Expose the identity refresh counters, read at scrape time."""
        self.registry.register(_StateCollector(state))

    def bind_request_log(self, request_log: RequestLog) -> None:
        """Expose the request log's written, dropped and failing figures."""
        self.registry.register(_RequestLogCollector(request_log))

    def bind_events(self, collector: Collector) -> None:
        """Expose a collector whose ``event`` labels are raw names (the monitor's), bounded."""
        self.registry.register(BoundedEvents(collector, self.labels))

    def observe(self, route: str, status: int, verdict: Verdict | None, seconds: float) -> None:
        self.requests[route, status] += 1
        self.latency_counts[bisect_left(_LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds
        if verdict is None:
            return
        outcome, outcomes = verdict.outcome, self.outcomes
        ops = verdict.operations
        if verdict.rejected:
            ops = (*ops, *verdict.rejected)
        elif not ops:
            outcomes["-", outcome] += 1
        labels = self.labels
        for op in ops:
            name = op.name if op.is_event else None
            if not isinstance(name, str):  # not an event, or a name the contract refused
                outcomes["@" + op.action, outcome] += 1
                continue
            event = labels.event(name)
            outcomes[event, outcome] += 1
            data = op.data
            if isinstance(data, dict) and "schema_version" in data:
                version = labels.version(name, str(data["schema_version"])[:100])
                self.versions[event, version] += 1
        if verdict.contract_errors:
            for e in verdict.contract_errors:
                self.codes[e.code, "invalid"] += 1
        if verdict.violations:
            for v in verdict.violations:
                self.codes[v.code, v.action] += 1

    def render(self) -> bytes:
        return generate_latest(self.registry)
