"""The alert state machine and the channels: hysteresis, re-notify, retries, failures."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from monitor_env import Receiver, start_receiver

from trackguard.monitor.notify import ChannelWorker
from trackguard.monitor.payloads import Notification, webhook
from trackguard.monitor.rules import Channel, Rule
from trackguard.monitor.state import AlertState

RULE = Rule(
    name="r",
    kind="rate",
    severity="error",
    channels=(),
    window=900,
    threshold=0.01,
    resolve=0.005,
    pending_for=120,
    resolve_after=300,
    renotify=3600,
)
NOTE = Notification(rule="r", event="firing", severity="error", summary="2% of 300", at=0.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.close()


def test_state_machine_pending_firing_renotify_resolved() -> None:
    s = AlertState()
    steps = [
        (0, True, False, None, "pending"),
        (60, False, True, None, "ok"),  # a blip shorter than `for` never fires
        (120, True, False, None, "pending"),
        (240, True, False, "firing", "firing"),
        (300, True, False, None, "firing"),
        (360, False, True, None, "firing"),  # clearing, but not for resolve_after yet
        (420, False, False, None, "firing"),  # between the levels: the clearing restarts
        (480, False, True, None, "firing"),
        (3840, True, False, "renotify", "firing"),
        (3900, True, False, None, "firing"),
        (4000, False, True, None, "firing"),
        (4300, False, True, "resolved", "resolved"),
        (4360, False, True, None, "resolved"),
    ]
    for now, breach, clear, transition, state in steps:
        assert (s.step(RULE, breach, clear, now), s.state) == (transition, state), now
    assert s.firings == 1


def test_unavailable_endpoint_is_retried_with_backoff(receiver: Receiver) -> None:
    receiver.statuses[:] = [503, 429]
    worker = ChannelWorker(Channel("hook", "webhook", url=receiver.url, backoff=0.01), lambda: 7.0)
    worker.start()
    worker.submit(NOTE)
    assert worker.wait_idle()
    worker.stop()
    assert receiver.take() == [webhook(NOTE)]
    assert (worker.status.sent, worker.status.retries, worker.status.failed) == (1, 2, 0)
    assert worker.status.up
    assert worker.status.last_error == "HTTP 429"


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.statuses[:] = [400]
    worker = ChannelWorker(Channel("hook", "webhook", url=receiver.url, backoff=0.01), lambda: 7.0)
    assert not worker.deliver(NOTE)
    worker.stop()
    assert (worker.status.sent, worker.status.retries, worker.status.failed) == (0, 0, 1)


def test_unreachable_endpoint_fails_without_leaking_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = f"http://127.0.0.1:{port}/services/T000/SECRET"
    channel = Channel("slack", "slack", url=secret, max_attempts=3, backoff=0.01)
    worker = ChannelWorker(channel, lambda: 42.0)
    with caplog.at_level(logging.WARNING):
        assert not worker.deliver(NOTE)
    worker.stop()
    status = worker.status
    assert (status.sent, status.retries, status.failed, status.up) == (0, 2, 1, False)
    assert status.last_error == "no response (ConnectError)"
    assert status.last_error_at == 42.0
    assert "SECRET" not in caplog.text


def test_webhook_payload() -> None:
    note = Notification(
        rule="r",
        event="firing",
        severity="error",
        summary="2% of 300",
        at=1_790_000_000.0,
        value=0.02,
        numbers=(("rate", "2%"),),
        reasons=(("event_name_blank", 6),),
        events=(("(unknown)", 6),),
        quarantine_ids=(3, 4),
    )
    assert webhook(note) == {
        "version": 1,
        "source": "trackguard",
        "rule": "r",
        "event": "firing",
        "severity": "error",
        "summary": "2% of 300",
        "at": "2026-09-21T14:13:20Z",
        "value": 0.02,
        "dedup_key": "trackguard/r",
        "description": "",
        "numbers": {"rate": "2%"},
        "top_reasons": [{"code": "event_name_blank", "count": 6}],
        "events": [{"event": "(unknown)", "count": 6}],
        "quarantine_ids": [3, 4],
    }
