"""One Prometheus exposition from several processes' expositions (``serve --workers``).

Each worker counts only what it served, so counters, histograms and summaries add up. Gauges
mostly describe the shared store (outbox depth, oldest pending age, data health), which every
worker reads alike: those take the largest value, so the sum does not multiply them by the
number of workers. The few gauges that are per process (open connections, buffered request-log
lines, memory, open descriptors) are named in :data:`SUMMED_GAUGES` and add up; a per-process
limit (``process_max_fds``) takes the largest, as the store's gauges do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: Gauges that count something each process holds, so the host's figure is their sum.
SUMMED_GAUGES: Final = frozenset(
    {
        "trackguard_open_connections",
        "trackguard_request_log_buffered",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
    }
)
_ADDED: Final = frozenset({"counter", "histogram", "summary"})

_Key = tuple[str, tuple[tuple[str, str], ...]]


class _Family:
    def __init__(self, name: str, documentation: str, kind: str) -> None:
        self.name = name
        self.documentation = documentation
        self.kind = kind
        self.values: dict[_Key, float] = {}

    def add(self, sample: str, labels: dict[str, str], value: float) -> None:
        key = (sample, tuple(sorted(labels.items())))
        previous = self.values.get(key)
        if previous is None:
            self.values[key] = value
        elif self.kind in _ADDED or self.name in SUMMED_GAUGES:
            self.values[key] = previous + value
        else:
            self.values[key] = max(previous, value)

    def metric(self) -> Metric:
        metric = Metric(self.name, self.documentation, self.kind)
        for (sample, labels), value in self.values.items():
            metric.add_sample(sample, dict(labels), value)
        return metric


class _Metrics(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def merge(expositions: Iterable[str], extra: Iterable[Metric] = ()) -> bytes:
    """The text exposition of all ``expositions`` combined, then the ``extra`` metrics.

    Raises ValueError for text that is not a Prometheus exposition.
    """
    families: dict[str, _Family] = {}
    for text in expositions:
        for parsed in text_string_to_metric_families(text):
            family = families.get(parsed.name)
            if family is None:
                family = families[parsed.name] = _Family(
                    parsed.name, parsed.documentation, parsed.type
                )
            for sample in parsed.samples:
                family.add(sample.name, sample.labels, sample.value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Metrics([f.metric() for f in families.values()] + list(extra)))
    return generate_latest(registry)
