"""Volume, backlog, upstream_errors and health_growth rules firing and resolving end to end.

The gateway (plan, store, monitor) runs in front of the emulator, whose faults are switched
through its control API. Delivery does not run on its own thread: the test drives its rounds
(``DeliveryWorker.run_once``) on the same fake clock as the gateway and the monitor, so every
window, age and re-notify interval is exact and nothing waits for wall-clock time. Slack and
PagerDuty are local receivers; ``trackguard alerts status`` reads the states the monitor saved
in the store's SQLite file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from monitor_env import (
    API_KEY,
    PLAN,
    SITE_ID,
    T0,
    FakeClock,
    NewDB,
    Receiver,
    start_receiver,
)

from trackguard.cli.monitor import alerts_group, health_command
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryReport, DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.gateway.app import Gateway, GatewayParts
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.monitor import Monitor, build_monitor
from trackguard.monitor.monitor import saved_states
from trackguard.monitor.tally import Key
from trackguard.plan.loader import load_plan
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import open_store

ROUTING_KEY = "pd-routing-key"
CHANNELS = """
channels:
  slack: {type: slack, url: "${SLACK_WEBHOOK_URL}"}
  pagerduty:
    type: pagerduty
    routing_key: ${PAGERDUTY_ROUTING_KEY}
    url: ${PAGERDUTY_EVENTS_URL}
"""
EVENTS = "/api/v1/customers/{}/events"
ORDERS_ROUTE = "POST /api/v1/customers/{identifier}/events"
MINUTE0 = int(T0 // 60)
WEEK_MINUTES = 7 * 24 * 60


class NoJitter:
    """Backoff jitter that always draws the low end: a failed row is due again at once."""

    def uniform(self, a: float, b: float, /) -> float:
        return a


@dataclass
class Rig:
    """The gateway with its monitor, the emulator upstream, a delivery worker driven by hand,
    the receivers and the one clock all of them read."""

    gateway: RunningServer
    upstream: RunningServer
    monitor: Monitor
    worker: DeliveryWorker
    clock: FakeClock
    db: str
    rules: Path
    client: httpx.Client
    control: httpx.Client
    slack: Receiver
    pagerduty: Receiver
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def at(self, minute: int, second: int = 0) -> None:
        self.clock.now = T0 + 60 * minute + second

    def send(self, path: str, body: dict[str, Any], method: str = "POST") -> None:
        response = self.client.request(method, path, json=body)
        assert response.status_code == 200, response.text

    def cart(self, customer: int | str) -> None:
        cart = {"cart_id": f"c-{next(self._ids)}", "item_count": 2, "subtotal": 10.5}
        self.send(EVENTS.format(customer), {"name": "cart_updated", "data": cart})

    def order(self, customer: int | str) -> None:
        order = {"order_id": f"A-{next(self._ids)}", "total": 10.5, "currency": "USD"}
        self.send(EVENTS.format(customer), {"name": "order_completed", "data": order})

    def anonymous(self, anonymous_id: str, event: str) -> None:
        data = (
            {"product_id": "p-1"}
            if event == "product_viewed"
            else {"cart_id": f"c-{anonymous_id}", "item_count": 1, "subtotal": 20.0}
        )
        self.send("/api/v1/events", {"name": event, "anonymous_id": anonymous_id, "data": data})

    def faults(self, config: dict[str, Any]) -> None:
        """Set the emulator's fault injection through its control API ({} clears it)."""
        response = self.control.post("/_emulator/faults", json=config)
        assert response.status_code == 200, response.text

    def deliver(self, rounds: int) -> list[DeliveryReport]:
        return [self.worker.run_once() for _ in range(rounds)]

    def tick(self) -> tuple[list[Any], list[Any]]:
        """One monitor round at the clock's time; what Slack and PagerDuty received from it."""
        self.monitor.tick()
        assert self.monitor.wait_notified()
        return self.slack.take(), self.pagerduty.take()

    def status(self) -> tuple[list[list[str]], list[list[str]]]:
        """``trackguard alerts status`` on the store file: the rule rows (rule, severity, state,
        since, last value) and the channel rows (channel, up, sent, failed, retries, error)."""
        result = CliRunner().invoke(
            alerts_group, ["status", "--rules", str(self.rules), "--db", self.db]
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        blank = lines.index("")
        rules = [line.split(maxsplit=4) for line in lines[1:blank]]
        return rules, [line.split() for line in lines[blank + 2 :]]


@contextlib.contextmanager
def running(
    db: str, rules_path: Path, rules: str, receivers: tuple[Receiver, Receiver], lease_size: int
) -> Iterator[Rig]:
    clock = FakeClock()
    rules_path.write_text(rules)
    with start_in_thread(create_emulator(SITE_ID, API_KEY)) as upstream:
        store = open_store(db, synchronous="NORMAL")
        transport = HttpxTransport(upstream.url, SITE_ID, API_KEY)
        worker = DeliveryWorker(
            store,
            transport,
            lease_size=lease_size,
            clock=clock,
            sleep=lambda seconds: None,
            rng=NoJitter(),
        )
        monitor = build_monitor(
            db, rules_path, clock=clock, delivery_snapshot=worker.metrics.snapshot, interval=3600
        )
        metrics = GatewayMetrics()
        metrics.registry.register(monitor.collector())
        parts = GatewayParts(
            checker=Checker(load_plan(PLAN)),
            store=store,
            committer=GroupCommitter(store, max_delay=0.0),
            auth=AuthConfig(upstream=Credentials(SITE_ID, API_KEY)),
            metrics=metrics,
            monitor=monitor,
        )
        try:
            with (
                start_in_thread(Gateway(parts, clock=clock)) as gateway,
                httpx.Client(base_url=gateway.url, auth=(SITE_ID, API_KEY), timeout=10) as client,
                httpx.Client(base_url=upstream.url, timeout=10) as control,
            ):
                slack, pagerduty = receivers
                yield Rig(
                    gateway=gateway,
                    upstream=upstream,
                    monitor=monitor,
                    worker=worker,
                    clock=clock,
                    db=db,
                    rules=rules_path,
                    client=client,
                    control=control,
                    slack=slack,
                    pagerduty=pagerduty,
                )
        finally:
            transport.close()


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Receiver, Receiver]]:
    slack, pagerduty = start_receiver(), start_receiver()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("PAGERDUTY_EVENTS_URL", pagerduty.url)
    yield slack, pagerduty
    slack.close()
    pagerduty.close()


@pytest.fixture
def start(
    tmp_path: Path, receivers: tuple[Receiver, Receiver], new_db: NewDB
) -> Iterator[Callable[..., Rig]]:
    """Starts a rig on one store (a SQLite file or a PostgreSQL schema); a second call in the
    same test restarts on the same store."""
    db, rules_path = new_db(), tmp_path / "alerts.yaml"
    with contextlib.ExitStack() as stack:

        def start_rig(rules: str, lease_size: int = 1000) -> Rig:
            return stack.enter_context(running(db, rules_path, rules, receivers, lease_size))

        yield start_rig


def both_sent(n: int) -> list[list[str]]:
    """The channel rows of ``alerts status`` once Slack and PagerDuty each took ``n``."""
    return [["slack", "yes", str(n), "0", "0", "-"], ["pagerduty", "yes", str(n), "0", "0", "-"]]


def stamp(minute: int, second: int = 0) -> str:
    at = dt.datetime.fromtimestamp(T0 + 60 * minute + second, dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Expect:
    """The exact bodies one rule's notifications become on Slack and PagerDuty."""

    rule: str
    severity: str
    description: str

    def slack(self, event: str, summary: str, numbers: list[tuple[str, str]], at: str) -> Any:
        title = {"firing": "FIRING", "renotify": "STILL FIRING", "resolved": "RESOLVED"}[event]
        title += f": {self.rule}"
        icon = ":white_check_mark:" if event == "resolved" else ":rotating_light:"
        footer = f"{icon} severity *{self.severity}* · {at} · trackguard"
        return {
            "text": f"[{title}] ({self.severity}) {summary}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title}},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{self.description}*\n{summary}"},
                },
                {
                    "type": "section",
                    "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in numbers],
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
            ],
        }

    def both(
        self, event: str, summary: str, numbers: list[tuple[str, str]], at: str
    ) -> tuple[list[Any], list[Any]]:
        """What Slack and PagerDuty each receive for one notification of ``event``."""
        pagerduty = self.resolve() if event == "resolved" else self.trigger(summary, numbers, at)
        return [self.slack(event, summary, numbers, at)], [pagerduty]

    def trigger(self, summary: str, numbers: list[tuple[str, str]], at: str) -> Any:
        return {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": f"trackguard/{self.rule}",
            "payload": {
                "summary": f"{self.rule}: {summary}",
                "source": "trackguard",
                "severity": self.severity,
                "timestamp": at,
                "custom_details": {
                    "description": self.description,
                    "numbers": dict(numbers),
                    "top_reasons": [],
                    "events": [],
                    "quarantine_ids": [],
                },
            },
        }

    def resolve(self) -> Any:
        return {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": f"trackguard/{self.rule}",
        }


def order_counts(minutes: range, per_minute: int) -> dict[Key, int]:
    """Counter rows as the monitor writes them for accepted orders in ``minutes`` (from T0)."""
    return {
        (MINUTE0 + m, "order_completed", ORDERS_ROUTE, "default", "outcome", "accepted"): (
            per_minute
        )
        for m in minutes
    }


# --- volume -----------------------------------------------------------------------------------

TRAILING = (
    CHANNELS
    + """
rules:
  - name: orders-drop
    kind: volume
    description: order_completed against the hour before
    events: [order_completed]
    window: 10m
    baseline: trailing
    trailing: 1h
    drop: 50%
    min_baseline: 20
    severity: error
    channels: [slack, pagerduty]
"""
)


def test_volume_drop_against_the_trailing_hour_after_a_restart(start: Callable[..., Rig]) -> None:
    rig = start(TRAILING)
    orders = Expect("orders-drop", "error", "order_completed against the hour before")
    # The monitor before this one counted 4 orders a minute up to 7 minutes before T0; the
    # deploy's 6 minutes were counted by nobody. This monitor started at T0.
    rig.monitor.db.add_counts(order_counts(range(-80, -6), 4))
    per_minute = [4] * 30 + [1] * 10 + [4] * 5  # the checkout breaks at 12:30, fixed at 12:40
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    for minute, n in enumerate(per_minute):
        rig.at(minute, 10)
        for customer in range(n):
            rig.order(customer)
        rig.at(minute, 50)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        m = rig.monitor.measurements["orders-drop"]
        if minute < 4:
            # The window still reaches into the uncounted minutes: 16 orders against a floor
            # of 20 (half of 40), yet nothing fires before the monitor watched a whole window.
            assert (m.value, m.extra["baseline"], m.breach) == (16.0, 40.0, False), minute
        if minute == 38:
            firing = rig.status()
    assert sorted(sent) == [37, 42]

    fired = "16 events over 10m against a baseline of 36"
    numbers = [("events", "16"), ("window", "10m"), ("baseline (trailing)", "36")]
    assert sent[37] == orders.both("firing", fired, numbers, stamp(37, 50))
    recovered = "19 events over 10m against a baseline of 34.5"
    numbers = [("events", "19"), ("window", "10m"), ("baseline (trailing)", "34.5")]
    assert sent[42] == orders.both("resolved", recovered, numbers, stamp(42, 50))

    summary = "13 events over 10m against a baseline of 36"
    assert firing == ([["orders-drop", "error", "firing", stamp(37, 50), summary]], both_sent(1))
    summary = "25 events over 10m against a baseline of 33.5"
    assert rig.status() == (
        [["orders-drop", "error", "resolved", stamp(42, 50), summary]],
        both_sent(2),
    )
    assert saved_states(rig.monitor.db)["orders-drop"].firings == 1


WEEK_AGO = (
    CHANNELS
    + """
rules:
  - name: orders-drop
    kind: volume
    description: order_completed against the same hour a week ago
    events: [order_completed]
    window: 1h
    baseline: week_ago
    drop: 50%
    min_baseline: 60
    active_hours: {days: mon-fri, from: "14:00", to: "20:00", timezone: Europe/Berlin}
    severity: error
    channels: [slack, pagerduty]
  - name: weekend-orders-drop
    kind: volume
    events: [order_completed]
    window: 1h
    baseline: week_ago
    drop: 50%
    active_hours: {days: sat-sun, from: "14:00", to: "20:00", timezone: Europe/Berlin}
    channels: [slack, pagerduty]
  - name: orders-drop-thin-baseline
    kind: volume
    events: [order_completed]
    window: 1h
    baseline: week_ago
    drop: 50%
    min_baseline: 61
    channels: [slack, pagerduty]
"""
)


def test_volume_drop_against_a_week_ago_only_in_business_hours(
    start: Callable[..., Rig],
) -> None:
    rig = start(WEEK_AGO)
    orders = Expect("orders-drop", "error", "order_completed against the same hour a week ago")
    # A week ago: one order a minute all afternoon (the counters keep 8 days).
    rig.monitor.db.add_counts(order_counts(range(-WEEK_MINUTES - 60, -WEEK_MINUTES + 240), 1))
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    # T0 is 13:00 in Berlin, Wednesday. Orders run at a quarter of last week's rate until
    # 14:30 UTC, then at the usual rate. The rule may fire only once its whole hour lies after
    # 14:00 Berlin: at 14:00 UTC, not at 13:00 (the end of the warm-up), nor at 15:00 (UTC).
    for minute in range(176):
        rig.at(minute)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        if minute == 119:
            m = rig.monitor.measurements["orders-drop"]
            assert (m.value, m.breach, m.extra) == (
                15.0,
                False,
                {"baseline": 60.0, "active": False},
            )
        rig.at(minute, 30)
        if minute >= 150 or minute % 4 == 0:
            rig.order(minute % 7)
    assert sorted(sent) == [120, 170]

    fired = "14 events over 1h against a baseline of 60"
    numbers = [("events", "14"), ("window", "1h"), ("baseline (week_ago)", "60")]
    assert sent[120] == orders.both("firing", fired, numbers, stamp(120))
    recovered = "30 events over 1h against a baseline of 60"
    numbers = [("events", "30"), ("window", "1h"), ("baseline (week_ago)", "60")]
    assert sent[170] == orders.both("resolved", recovered, numbers, stamp(170))

    last = "34 events over 1h against a baseline of 60"
    assert rig.status() == (
        [
            ["orders-drop", "error", "resolved", stamp(170), last],
            ["weekend-orders-drop", "warning", "ok", "-", last],
            ["orders-drop-thin-baseline", "warning", "ok", "-", last],
        ],
        both_sent(2),
    )


# --- backlog ----------------------------------------------------------------------------------

LAG = (
    CHANNELS
    + """
rules:
  - name: delivery-lag
    kind: backlog
    description: Accepted events waiting for Customer.io
    metric: age
    threshold: 10m
    resolve: 2m
    renotify: 30m
    severity: critical
    channels: [slack, pagerduty]
"""
)


def test_backlog_age_while_upstream_is_down_renotifies_and_resolves_once_drained(
    start: Callable[..., Rig],
) -> None:
    rig = start(LAG, lease_size=3)
    lag = Expect("delivery-lag", "critical", "Accepted events waiting for Customer.io")
    rig.faults({"status": 503})
    rig.at(0)
    for customer in (1, 2, 3):
        rig.cart(customer)
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    for minute in range(48):
        rig.at(minute)
        if minute == 40:
            rig.cart(4)  # a later event: still waiting when the first three are delivered
        if minute == 45:
            rig.faults({})  # Customer.io is back
        (report,) = rig.deliver(1)
        if minute < 45:
            assert (report.requests, report.delivered, report.retried) == (1, 0, 3), minute
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        m = rig.monitor.measurements["delivery-lag"]
        if minute == 10:  # exactly at the threshold: not over it
            assert (m.value, m.breach) == (600.0, False)
        if minute == 12:
            firing = rig.status()
        if minute == 45:  # 5 minutes: under the threshold, over the resolve level
            assert (report.delivered, m.value, m.breach, m.clear) == (3, 300.0, False, False)
            assert rig.monitor.states["delivery-lag"].state == "firing"
        if minute == 46:
            assert report.delivered == 1
    assert sorted(sent) == [11, 41, 46]

    fired = "oldest undelivered operation is 11m old (threshold 10m)"
    numbers = [("pending", "3"), ("age", "660")]
    assert sent[11] == lag.both("firing", fired, numbers, stamp(11))
    # 30 minutes after the first notification, once, with the same PagerDuty dedup key.
    still = "oldest undelivered operation is 41m old (threshold 10m)"
    numbers = [("pending", "4"), ("age", "2460")]
    assert sent[41] == lag.both("renotify", still, numbers, stamp(41))
    drained = "oldest undelivered operation is 0s old (threshold 10m)"
    assert sent[46] == lag.both("resolved", drained, [("pending", "0"), ("age", "0")], stamp(46))

    summary = "oldest undelivered operation is 12m old (threshold 10m)"
    assert firing == ([["delivery-lag", "critical", "firing", stamp(11), summary]], both_sent(1))
    assert rig.status() == (
        [["delivery-lag", "critical", "resolved", stamp(46), drained]],
        both_sent(3),
    )
    state = saved_states(rig.monitor.db)["delivery-lag"]
    assert (state.firings, state.fired_at, state.notified_at) == (1, T0 + 660, T0 + 41 * 60)


QUEUE = (
    CHANNELS
    + """
rules:
  - name: delivery-queue
    kind: backlog
    description: Operations waiting for delivery
    metric: pending
    threshold: 50
    resolve: 10
    channels: [slack, pagerduty]
"""
)


def test_backlog_pending_while_delivery_is_off_resolves_at_the_resolve_level(
    start: Callable[..., Rig],
) -> None:
    rig = start(QUEUE, lease_size=40)
    queue = Expect("delivery-queue", "warning", "Operations waiting for delivery")
    rig.at(0, 10)
    for customer in range(50):
        rig.cart(customer)
    rig.at(0, 50)
    assert rig.tick() == ([], [])  # 50 waiting: not over the threshold
    assert rig.monitor.measurements["delivery-queue"].value == 50.0

    rig.at(1, 10)
    rig.cart(50)
    rig.at(1, 50)
    fired = "51 operations waiting for delivery (threshold 50)"
    assert rig.tick() == (
        [queue.slack("firing", fired, [("pending", "51")], stamp(1, 50))],
        [queue.trigger(fired, [("pending", "51")], stamp(1, 50))],
    )

    # Delivery starts: 40 rows leave, 11 wait (over the resolve level of 10): still firing.
    rig.at(2, 10)
    assert [r.delivered for r in rig.deliver(1)] == [40]
    rig.at(2, 50)
    assert rig.tick() == ([], [])
    assert rig.monitor.states["delivery-queue"].state == "firing"
    summary = "11 operations waiting for delivery (threshold 50)"
    assert rig.status() == (
        [["delivery-queue", "warning", "firing", stamp(1, 50), summary]],
        both_sent(1),
    )

    rig.worker.lease_size = 1
    rig.at(3, 10)
    assert [r.delivered for r in rig.deliver(1)] == [1]
    rig.at(3, 50)
    drained = "10 operations waiting for delivery (threshold 50)"
    assert rig.tick() == (
        [queue.slack("resolved", drained, [("pending", "10")], stamp(3, 50))],
        [queue.resolve()],
    )
    rig.at(4, 10)
    rig.deliver(10)
    rig.at(4, 50)
    assert rig.tick() == ([], [])
    summary = "0 operations waiting for delivery (threshold 50)"
    assert rig.status() == (
        [["delivery-queue", "warning", "resolved", stamp(3, 50), summary]],
        both_sent(2),
    )


# --- upstream errors --------------------------------------------------------------------------

UPSTREAM = (
    CHANNELS
    + """
rules:
  - name: upstream-errors
    kind: upstream_errors
    description: Customer.io answering errors to delivery
    window: 15m
    threshold: 5%
    min_volume: 20
    severity: error
    channels: [slack, pagerduty]
"""
)


def test_upstream_errors_from_the_emulator_fire_and_resolve(start: Callable[..., Rig]) -> None:
    rig = start(UPSTREAM, lease_size=1)  # one row per round: one upstream request per round
    errors = Expect("upstream-errors", "error", "Customer.io answering errors to delivery")
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    for minute in range(32):
        rig.at(minute, 10)
        n = 15 if minute == 16 else 5
        for customer in range(n):
            rig.cart(customer)
        failures: list[DeliveryReport] = []
        if minute == 0:  # 1 of 6 requests fails: 17%, but too few requests to judge
            rig.faults({"status": 503})
            failures += rig.deliver(1)
            rig.faults({})
        if minute == 15:  # 4 of 9 fail: 4 of 79 requests over the window, 5.06%
            rig.faults({"status": 503})
            failures += rig.deliver(2)
            rig.faults({"status": 429, "retry_after": 0})
            failures += rig.deliver(2)
            rig.faults({})
        assert all((r.requests, r.retried) == (1, 1) for r in failures)
        assert sum(r.delivered for r in rig.deliver(n)) == n
        rig.at(minute, 50)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        m = rig.monitor.measurements["upstream-errors"]
        if minute == 0:
            assert (m.summary, m.breach) == (
                "16.67% of 6 upstream requests failed over 15m (threshold 5%)",
                False,
            )
        if minute == 16:  # more traffic: 4 of 89, 4.49%, between resolve (4%) and threshold
            assert (m.summary, m.clear) == (
                "4.49% of 89 upstream requests failed over 15m (threshold 5%)",
                False,
            )
    assert sorted(sent) == [15, 30]

    fired = "5.06% of 79 upstream requests failed over 15m (threshold 5%)"
    numbers = [("error rate", "5.06%"), ("errors", "4"), ("sent", "79")]
    assert sent[15] == errors.both("firing", fired, numbers, stamp(15, 50))
    # The failed minute leaves the 15-minute window.
    cleared = "0% of 85 upstream requests failed over 15m (threshold 5%)"
    numbers = [("error rate", "0%"), ("errors", "0"), ("sent", "85")]
    assert sent[30] == errors.both("resolved", cleared, numbers, stamp(30, 50))
    summary = "0% of 75 upstream requests failed over 15m (threshold 5%)"
    assert rig.status() == (
        [["upstream-errors", "error", "resolved", stamp(30, 50), summary]],
        both_sent(2),
    )
    stats = rig.control.get("/_emulator/stats").json()
    assert {k: v for k, v in stats["by_status"].items() if k != "200"} == {"503": 3, "429": 2}


# --- data health ------------------------------------------------------------------------------

GROWTH = (
    CHANNELS
    + """
settings: {health_every: 15m}
rules:
  - name: unlinked-carts-growth
    kind: health_growth
    description: Anonymous carts never linked to a person
    metric: anonymous_carts_unlinked
    window: 1h
    threshold: 25%
    min_volume: 10
    severity: warning
    channels: [slack, pagerduty]
"""
)


def test_health_growth_of_unlinked_carts_fires_and_resolves(start: Callable[..., Rig]) -> None:
    rig = start(GROWTH)
    growth = Expect("unlinked-carts-growth", "warning", "Anonymous carts never linked to a person")
    shoppers = itertools.count()

    def carts(n: int) -> None:
        """``n`` anonymous carts; every other shopper looked at a product first."""
        for _ in range(n):
            number = next(shoppers)
            anon = f"anon-{number}"
            if number % 2:
                rig.anonymous(anon, "product_viewed")
            rig.anonymous(anon, "cart_updated")

    # New unlinked carts per quarter hour (a snapshot every 15 minutes, from T0).
    added = [8, 2, 2, 2, 2, 8, 0, 0, 0, 5, 0, 0]
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    summaries: list[str] = []
    for quarter, n in enumerate(added):
        rig.at(15 * quarter)
        carts(n)
        if quarter == 0:
            for anon in ("browser-1", "browser-2", "browser-3"):
                rig.anonymous(anon, "product_viewed")  # no cart: not counted
        if quarter == 10:  # the fixed login links one of them (one who viewed a product first)
            rig.send("/api/v1/customers/cus-9", {"anonymous_id": "anon-9"}, method="PUT")
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[quarter] = (slack, pagerduty)
        summaries.append(rig.monitor.measurements["unlinked-carts-growth"].summary)
    assert sorted(sent) == [5, 10]
    figure = "anonymous_carts_unlinked"
    assert summaries == [
        *[f"{figure}: not enough history yet"] * 4,
        f"{figure} grew 100% in 1h: 8 → 16 (threshold 25%)",  # 8 more: under min_volume
        f"{figure} grew 140% in 1h: 10 → 24 (threshold 25%)",
        f"{figure} grew 100% in 1h: 12 → 24 (threshold 25%)",
        f"{figure} grew 71.43% in 1h: 14 → 24 (threshold 25%)",
        f"{figure} grew 50% in 1h: 16 → 24 (threshold 25%)",
        f"{figure} grew 20.83% in 1h: 24 → 29 (threshold 25%)",  # over the resolve level
        f"{figure} grew 16.67% in 1h: 24 → 28 (threshold 25%)",
        f"{figure} grew 16.67% in 1h: 24 → 28 (threshold 25%)",
    ]

    numbers = [("now", "24"), ("before", "10"), ("growth", "140%")]
    assert sent[5] == growth.both("firing", summaries[5], numbers, stamp(75))
    numbers = [("now", "28"), ("before", "24"), ("growth", "16.67%")]
    assert sent[10] == growth.both("resolved", summaries[10], numbers, stamp(150))

    assert rig.status() == (
        [["unlinked-carts-growth", "warning", "resolved", stamp(150), summaries[11]]],
        both_sent(2),
    )
    metrics = httpx.get(rig.gateway.url + "/metrics").text
    assert 'trackguard_data_health{metric="anonymous_carts_unlinked"} 28.0' in metrics
    assert 'trackguard_alert_state{rule="unlinked-carts-growth",state="resolved"} 1.0' in metrics
    health = CliRunner().invoke(health_command, ["--db", rig.db])
    assert health.output.splitlines()[2].split()[:2] == ["anonymous_carts_unlinked", "28"]


# --- holding a firing alert when nothing can be judged -------------------------------------------

BUSINESS_HOURS = (
    CHANNELS
    + """
rules:
  - name: orders-drop
    kind: volume
    description: order_completed against the same hour a week ago
    events: [order_completed]
    window: 1h
    baseline: week_ago
    drop: 50%
    active_hours: {days: mon-fri, from: "14:00", to: "20:00", timezone: Europe/Berlin}
    severity: error
    channels: [slack, pagerduty]
"""
)


def test_volume_alert_still_firing_at_closing_time_is_not_resolved(
    start: Callable[..., Rig],
) -> None:
    rig = start(BUSINESS_HOURS)
    orders = Expect("orders-drop", "error", "order_completed against the same hour a week ago")
    rig.monitor.db.add_counts(order_counts(range(-WEEK_MINUTES - 60, -WEEK_MINUTES + 600), 1))
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    # Orders stay at a quarter of last week's rate all afternoon and evening. Active hours end
    # at 20:00 in Berlin (minute 420): after that the drop can no longer be judged, so the
    # alert stays firing instead of resolving with the orders still missing.
    for minute in range(0, 600, 5):
        rig.at(minute)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        rig.at(minute, 30)
        rig.order(minute % 7)
    assert sorted(sent) == [120]
    fired = "11 events over 1h against a baseline of 60"
    numbers = [("events", "11"), ("window", "1h"), ("baseline (week_ago)", "60")]
    assert sent[120] == orders.both("firing", fired, numbers, stamp(120))
    m = rig.monitor.measurements["orders-drop"]
    assert (m.breach, m.clear, m.extra) == (False, False, {"baseline": 60.0, "active": False})
    rules, _ = rig.status()
    assert [row[:4] for row in rules] == [["orders-drop", "error", "firing", stamp(120)]]


def test_upstream_errors_stay_firing_while_too_few_requests_to_judge(
    start: Callable[..., Rig],
) -> None:
    rig = start(UPSTREAM, lease_size=1)  # one row per round: one upstream request per round
    errors = Expect("upstream-errors", "error", "Customer.io answering errors to delivery")
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    for minute in range(60):
        rig.at(minute, 10)
        if 16 <= minute < 40:
            # Customer.io is down: one cart a minute, and delivery's one attempt fails.
            rig.faults({"status": 503})
            rig.cart(0)
            assert [(r.requests, r.retried) for r in rig.deliver(1)] == [(1, 1)]
            rig.faults({})
        else:
            for customer in range(5):
                rig.cart(customer)
            if minute == 15:  # 4 of 79 requests in the window fail: the alert fires
                rig.faults({"status": 503})
                rig.deliver(4)
                rig.faults({})
            rig.deliver(40)  # drains whatever is pending
        rig.at(minute, 50)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        m = rig.monitor.measurements["upstream-errors"]
        if minute == 39:  # every request of the outage failed, but only 15 were sent
            assert (m.summary, m.breach, m.clear) == (
                "100% of 15 upstream requests failed over 15m (threshold 5%)",
                False,
                False,
            )
    assert sorted(sent) == [15, 51]
    assert sent[15][1] == [
        errors.trigger(
            "5.06% of 79 upstream requests failed over 15m (threshold 5%)",
            [("error rate", "5.06%"), ("errors", "4"), ("sent", "79")],
            stamp(15, 50),
        )
    ]
    assert sent[51][1] == [errors.resolve()]


INVALID_RATE = (
    CHANNELS
    + """
rules:
  - name: invalid-rate
    kind: rate
    description: Requests Customer.io would reject
    window: 5m
    threshold: 10%
    min_volume: 20
    severity: error
    channels: [slack, pagerduty]
"""
)


def test_rate_alert_stays_firing_while_too_few_requests_to_judge(
    start: Callable[..., Rig],
) -> None:
    rig = start(INVALID_RATE)
    invalid = Expect("invalid-rate", "error", "Requests Customer.io would reject")
    sent: dict[int, tuple[list[Any], list[Any]]] = {}
    for minute in range(24):
        rig.at(minute, 10)
        if minute < 6 or minute >= 16:  # minutes 6 to 15: the broken app sends nothing
            for customer in range(10):
                rig.cart(customer)
        if minute == 5:  # a broken release: 10 bodies that are not JSON
            for _ in range(10):
                response = rig.client.post(EVENTS.format(1), content=b'{"name": "cart_upd')
                assert response.status_code == 400
        rig.at(minute, 50)
        slack, pagerduty = rig.tick()
        if slack or pagerduty:
            sent[minute] = (slack, pagerduty)
        if minute == 12:
            m = rig.monitor.measurements["invalid-rate"]
            assert (m.summary, m.breach, m.clear) == (
                "0% of 0 requests over 5m (threshold 10%)",
                False,
                False,
            )
    assert sorted(sent) == [5, 17]
    fired = sent[5][1][0]["payload"]["summary"]
    assert fired == "invalid-rate: 16.67% of 60 requests over 5m (threshold 10%)"
    assert sent[17][1] == [invalid.resolve()]
    rules, _ = rig.status()
    assert [row[:3] for row in rules] == [["invalid-rate", "error", "resolved"]]


def test_alerts_status_shows_what_channels_sent_after_the_next_round(
    start: Callable[..., Rig],
) -> None:
    rig = start(INVALID_RATE)
    for minute in range(6):
        rig.at(minute, 10)
        for customer in range(10):
            rig.cart(customer)
        if minute == 5:
            for _ in range(10):
                assert rig.client.post(EVENTS.format(1), content=b"{").status_code == 400
    rig.at(5, 50)
    slack, pagerduty = rig.tick()
    assert (len(slack), len(pagerduty)) == (1, 1)
    # The notifications went out after the evaluating round saved the channels; the next
    # round (every few seconds, evaluating or not) records them.
    rig.at(5, 55)
    rig.monitor.tick(evaluate=False)
    _, channels = rig.status()
    assert channels == both_sent(1)
