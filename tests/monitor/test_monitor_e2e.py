"""A bad release through the gateway, with the example alert file, a controllable clock and
local receivers for Slack and PagerDuty: it fires within one window, clean traffic fires
nothing, and recovery sends exactly one resolve."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from monitor_env import (
    ALERTS,
    T0,
    FakeClock,
    Monitored,
    NewDB,
    Receiver,
    run_gateway,
    start_receiver,
)

EVENTS = "/api/v1/customers/{}/events"
CART = {"cart_id": "c-1", "item_count": 2, "subtotal": 10.5, "currency": "USD"}


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Receiver, Receiver]]:
    slack, pagerduty = start_receiver(), start_receiver()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "pd-routing-key")
    monkeypatch.setenv("PAGERDUTY_EVENTS_URL", pagerduty.url)
    yield slack, pagerduty
    slack.close()
    pagerduty.close()


@pytest.fixture
def env(new_db: NewDB, receivers: tuple[Receiver, Receiver]) -> Iterator[Monitored]:
    yield from run_gateway(new_db(), ALERTS, FakeClock())


def minute_of_traffic(env: Monitored, minute: int, *, nameless: int, by_email: int) -> None:
    """20 requests: 16 cart_updated (some broken), 2 checkout_started, 2 order_completed."""
    env.clock.now = T0 + 60 * minute + 10
    cart = {**CART, "cart_id": f"c-{minute}"}  # a new cart each minute: not an SDK retry
    for i in range(16):
        if i < nameless:
            assert env.send(EVENTS.format(f"{i}"), {"data": CART}) == 400
        elif i < nameless + by_email:
            path = EVENTS.format(f"shopper{i}@example.com")
            assert env.send(path, {"name": "cart_updated", "data": cart}) == 200
        else:
            assert env.send(EVENTS.format(i), {"name": "cart_updated", "data": cart}) == 200
    for i in range(2):
        data = {"cart_id": "c-1", "checkout_id": f"k-{minute}-{i}", "total": 10.5}
        assert env.send(EVENTS.format(i), {"name": "checkout_started", "data": data}) == 200
        order = {"order_id": f"A-{minute}-{i}", "total": 10.5, "currency": "USD"}
        assert env.send(EVENTS.format(i), {"name": "order_completed", "data": order}) == 200
    env.drain()
    env.clock.now = T0 + 60 * minute + 50
    env.monitor.tick()
    assert env.monitor.wait_notified()


def _iso(minute: int) -> str:
    return f"2026-11-04T12:{minute:02d}:50Z"


def expected_slack_firing(minute: int) -> dict[str, Any]:
    return {
        "text": (
            "[FIRING: checkout-invalid-rate] (critical) "
            "1.33% of 300 requests over 15m (threshold 1%)"
        ),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "FIRING: checkout-invalid-rate"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Invalid or rejected checkout events*\n"
                    "1.33% of 300 requests over 15m (threshold 1%)",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*rate*\n1.33%"},
                    {"type": "mrkdwn", "text": "*matching*\n4"},
                    {"type": "mrkdwn", "text": "*requests*\n300"},
                    {"type": "mrkdwn", "text": "*threshold*\n1%"},
                    {"type": "mrkdwn", "text": "*window*\n15m"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Top reasons*\n• `event_name_blank` × 4"
                    "\n• `identity_not_canonical` × 4",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Events*\n• `(unknown)` × 4"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "Quarantine ids to look at: 1, 2, 3, 4"}],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f":rotating_light: severity *critical* · {_iso(minute)}"
                        " · trackguard",
                    }
                ],
            },
        ],
    }


@pytest.mark.slow  # 42 minutes of traffic, each drained through delivery (about 20 s)
def test_bad_release_fires_once_and_resolves_once(
    env: Monitored, receivers: tuple[Receiver, Receiver]
) -> None:
    slack, pagerduty = receivers
    # Clean traffic for 16 minutes: the 15-minute windows fill up with 300 requests each.
    for minute in range(16):
        minute_of_traffic(env, minute, nameless=0, by_email=0)
    assert slack.take() == [] and pagerduty.take() == []
    assert {s.state for s in env.monitor.states.values()} == {"ok"}

    # The release: 2 of 16 cart_updated lose their name, 2 switch to email (25%).
    minute_of_traffic(env, 16, nameless=2, by_email=2)
    assert slack.take() == [] and pagerduty.take() == []  # 0.67%: below 1%
    minute_of_traffic(env, 17, nameless=2, by_email=2)
    fired = slack.take()
    assert len(fired) == 2
    assert fired[0] == expected_slack_firing(17)
    assert fired[1]["text"] == (
        "[FIRING: checkout-identifier-switch] (error) 1.35% of 296 requests over 15m (threshold 1%)"
    )
    assert fired[1]["blocks"][3]["text"]["text"] == (
        "*Top reasons*\n• `identity_not_canonical` × 4"
    )
    assert fired[1]["blocks"][4]["text"]["text"] == "*Events*\n• `cart_updated` × 4"
    assert pagerduty.take() == [
        {
            "routing_key": "pd-routing-key",
            "event_action": "trigger",
            "dedup_key": "trackguard/checkout-invalid-rate",
            "payload": {
                "summary": "checkout-invalid-rate: 1.33% of 300 requests over 15m (threshold 1%)",
                "source": "trackguard",
                "severity": "critical",
                "timestamp": _iso(17),
                "custom_details": {
                    "description": "Invalid or rejected checkout events",
                    "numbers": {
                        "rate": "1.33%",
                        "matching": "4",
                        "requests": "300",
                        "threshold": "1%",
                        "window": "15m",
                    },
                    "top_reasons": [
                        {"code": "event_name_blank", "count": 4},
                        {"code": "identity_not_canonical", "count": 4},
                    ],
                    "events": [{"event": "(unknown)", "count": 4}],
                    "quarantine_ids": [1, 2, 3, 4],
                },
            },
        }
    ]

    # Still broken for a minute: still firing, never a second notification.
    minute_of_traffic(env, 18, nameless=2, by_email=2)
    assert slack.take() == [] and pagerduty.take() == []

    # Fixed. The bad minutes leave the window at minute 33; the alerts resolve 5 minutes later.
    resolved_at: dict[str, int] = {}
    for minute in range(19, 42):
        minute_of_traffic(env, minute, nameless=0, by_email=0)
        for body in slack.take():
            rule = body["blocks"][0]["text"]["text"]
            assert rule not in resolved_at, "a second notification after the resolve"
            resolved_at[rule] = minute
        if minute == 32:  # 2 of 300 left: above the 0.5% resolve level, so still firing
            assert env.monitor.states["checkout-invalid-rate"].state == "firing"
    assert resolved_at == {
        "RESOLVED: checkout-invalid-rate": 38,
        "RESOLVED: checkout-identifier-switch": 38,
    }
    assert pagerduty.take() == [
        {
            "routing_key": "pd-routing-key",
            "event_action": "resolve",
            "dedup_key": "trackguard/checkout-invalid-rate",
        }
    ]
    metrics = httpx.get(env.gateway.url + "/metrics").text
    assert 'trackguard_alert_state{rule="checkout-invalid-rate",state="resolved"} 1.0' in metrics
    assert 'trackguard_notifications_total{channel="slack",result="sent"} 4.0' in metrics
    assert 'trackguard_notifications_total{channel="pagerduty",result="sent"} 2.0' in metrics
    assert (
        'trackguard_monitor_outcomes_total{event="(unknown)",outcome="invalid",'
        'route="POST /api/v1/customers/{identifier}/events",source="default"} 6.0'
    ) in metrics
