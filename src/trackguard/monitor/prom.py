"""The monitor's figures for Prometheus, read at scrape time (in the gateway's registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from trackguard.monitor.monitor import Monitor

_STATES = ("ok", "pending", "firing", "resolved")


class MonitorCollector(Collector):
    """Counted requests and findings, rule states and values, notifier and data health."""

    def __init__(self, monitor: Monitor) -> None:
        self._m = monitor

    def collect(self) -> Iterator[Metric]:
        m = self._m
        outcomes = CounterMetricFamily(
            "trackguard_monitor_outcomes",
            "Operations by event, route, source and outcome (flushed every few seconds)",
            labels=["event", "route", "source", "outcome"],
        )
        codes = CounterMetricFamily(
            "trackguard_monitor_codes",
            "Findings by event, route, source and code (flushed every few seconds)",
            labels=["event", "route", "source", "code"],
        )
        for (kind, event, route, source, name), n in sorted(list(m.tally.totals.items())):
            (outcomes if kind == "outcome" else codes).add_metric([event, route, source, name], n)
        yield outcomes
        yield codes
        state = GaugeMetricFamily(
            "trackguard_alert_state", "1 for the state each rule is in", labels=["rule", "state"]
        )
        value = GaugeMetricFamily(
            "trackguard_alert_value", "The value each rule measured last", labels=["rule"]
        )
        for rule in m.config.rules:
            current = m.states[rule.name]
            for s in _STATES:
                state.add_metric([rule.name, s], 1.0 if current.state == s else 0.0)
            if current.value is not None:
                value.add_metric([rule.name], current.value)
        yield state
        yield value
        sent = CounterMetricFamily(
            "trackguard_notifications",
            "Notifications by channel and result",
            labels=["channel", "result"],
        )
        up = GaugeMetricFamily(
            "trackguard_notifier_up", "0 while a channel's last attempt failed", labels=["channel"]
        )
        for name, worker in sorted(m.channels.items()):
            st = worker.status
            for result, n in (
                ("sent", st.sent),
                ("failed", st.failed),
                ("retried", st.retries),
                ("dropped", st.dropped),
            ):
                sent.add_metric([name, result], n)
            up.add_metric([name], 1.0 if st.up else 0.0)
        yield sent
        yield up
        health = GaugeMetricFamily(
            "trackguard_data_health", "Data-health counts (docs/monitoring.md)", labels=["metric"]
        )
        for metric, count in sorted(m.health_values.items()):
            if count is not None:
                health.add_metric([metric], count)
        yield health
        if m.health_seconds is not None:
            yield GaugeMetricFamily(
                "trackguard_data_health_seconds",
                "Seconds the last data-health measurement took (its queries scan the outbox)",
                value=m.health_seconds,
            )
        yield CounterMetricFamily(
            "trackguard_monitor_events_folded",
            "Counts put under the event (other): more distinct event names in a minute than"
            " the monitor keeps apart (docs/monitoring.md)",
            value=m.tally.folded,
        )
        yield CounterMetricFamily(
            "trackguard_monitor_errors",
            "Monitor rounds that failed (see the log)",
            value=m.errors,
        )
