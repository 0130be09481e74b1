"""Combining the workers' expositions: counters and histograms add, store gauges do not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from trackguard.http.promsum import merge


def _worker(requests: int, latencies: list[float], pending: int, connections: int) -> str:
    """One worker's exposition, made the way the gateway makes it (prometheus_client)."""
    registry = CollectorRegistry()
    counter = Counter("trackguard_requests", "Requests", ["status"], registry=registry)
    counter.labels("200").inc(requests)
    hist = Histogram("trackguard_request_seconds", "Latency", buckets=(0.1, 1.0), registry=registry)
    for seconds in latencies:
        hist.observe(seconds)
    rows = Gauge("trackguard_outbox_rows", "Outbox rows", ["state"], registry=registry)
    rows.labels("pending").set(pending)
    Gauge("trackguard_open_connections", "Open", registry=registry).set(connections)
    return generate_latest(registry).decode()


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_counter_incremented_in_two_workers_shows_the_sum() -> None:
    merged = _samples(merge([_worker(3, [0.05], 7, 2), _worker(4, [0.5, 5.0], 7, 5)]))
    assert merged[("trackguard_requests_total", (("status", "200"),))] == 7.0
    assert merged[("trackguard_request_seconds_bucket", (("le", "0.1"),))] == 1.0
    assert merged[("trackguard_request_seconds_bucket", (("le", "1.0"),))] == 2.0
    assert merged[("trackguard_request_seconds_bucket", (("le", "+Inf"),))] == 3.0
    assert merged[("trackguard_request_seconds_count", ())] == 3.0
    assert merged[("trackguard_request_seconds_sum", ())] == 5.55
    # The outbox is one store read by both: its depth is not doubled.
    assert merged[("trackguard_outbox_rows", (("state", "pending"),))] == 7.0
    # Connections are each worker's own: they add up.
    assert merged[("trackguard_open_connections", ())] == 7.0


def _process(rss: int, fds: int, cpu: float, gen2: int) -> str:
    """The process figures a worker's exposition carries, as prometheus_client names them."""
    registry = CollectorRegistry()
    Gauge("process_resident_memory_bytes", "RSS", registry=registry).set(rss)
    Gauge("process_open_fds", "Open", registry=registry).set(fds)
    Gauge("process_max_fds", "Limit", registry=registry).set(4352)
    Counter("process_cpu_seconds", "CPU", registry=registry).inc(cpu)
    gc = Counter("python_gc_collections", "Runs", ["generation"], registry=registry)
    gc.labels("2").inc(gen2)
    return generate_latest(registry).decode()


def test_the_processes_memory_and_descriptors_add_up_and_their_limit_does_not() -> None:
    merged = _samples(merge([_process(60_000_000, 40, 1.5, 3), _process(70_000_000, 50, 2.0, 4)]))
    assert merged[("process_resident_memory_bytes", ())] == 130_000_000
    assert merged[("process_open_fds", ())] == 90
    assert merged[("process_max_fds", ())] == 4352  # each worker's own limit, not twice it
    assert merged[("process_cpu_seconds_total", ())] == 3.5
    assert merged[("python_gc_collections_total", (("generation", "2"),))] == 7


def test_labels_seen_in_one_worker_only_are_kept_and_extra_metrics_follow() -> None:
    registry = CollectorRegistry()
    Counter("trackguard_requests", "Requests", ["status"], registry=registry).labels("400").inc()
    extra = CounterMetricFamily("trackguard_worker_restarts", "Restarts", value=2)
    merged = _samples(merge([_worker(1, [], 0, 0), generate_latest(registry).decode()], [extra]))
    assert merged[("trackguard_requests_total", (("status", "200"),))] == 1.0
    assert merged[("trackguard_requests_total", (("status", "400"),))] == 1.0
    assert merged[("trackguard_worker_restarts_total", ())] == 2.0


def test_no_workers_answering_is_an_empty_exposition_but_the_extras() -> None:
    extra = CounterMetricFamily("trackguard_worker_restarts", "Restarts", value=0)
    assert merge([], [extra]) == (
        b"# HELP trackguard_worker_restarts_total Restarts\n"
        b"# TYPE trackguard_worker_restarts_total counter\n"
        b"trackguard_worker_restarts_total 0.0\n"
    )


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5))
def test_counters_add_up_whatever_the_number_of_workers(counts: list[int]) -> None:
    merged = _samples(merge([_worker(n, [], 3, 1) for n in counts]))
    assert merged[("trackguard_requests_total", (("status", "200"),))] == sum(counts)
    assert merged[("trackguard_open_connections", ())] == len(counts)
    assert merged[("trackguard_outbox_rows", (("state", "pending"),))] == 3.0
