"""Deliver notifications: one queue and thread per channel, retried with backoff.

Nothing here runs on the request path: the monitor thread only enqueues. A channel that is
down delays only itself; its attempts, retries and last error are counted in
:class:`ChannelStatus` (``/metrics`` and ``alerts status``). Error texts never include the
URL or routing key (both are secrets): only the status or the exception's type.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

import httpx
import msgspec

from trackguard.errors import UpstreamError
from trackguard.monitor import payloads
from trackguard.monitor.payloads import Notification
from trackguard.monitor.rules import Channel

log = logging.getLogger("trackguard.alerts")

_MAX_QUEUE: Final = 1000
_MAX_DELAY: Final = 300.0


class NotifyError(UpstreamError):
    """A notification was not accepted; ``retry`` says whether trying again can help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class ChannelStatus(msgspec.Struct, kw_only=True):
    """What one channel did since start; persisted for ``alerts status``."""

    sent: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0
    up: bool = True
    last_error: str | None = None
    last_error_at: float | None = None
    last_sent_at: float | None = None


def bodies(channel: Channel, n: Notification) -> list[dict[str, object]]:
    """The JSON bodies one notification becomes on ``channel`` (none for the log)."""
    if channel.type == "slack":
        return [payloads.slack(n)]
    if channel.type == "pagerduty":
        return list(payloads.pagerduty(n, channel.routing_key))
    if channel.type == "webhook":
        return [payloads.webhook(n)]
    return []


def send(client: httpx.Client, channel: Channel, n: Notification) -> None:
    """One attempt: post every body; :class:`NotifyError` on the first that fails."""
    if channel.type == "log":
        level = logging.INFO if n.event in ("resolved", "test") else logging.WARNING
        log.log(level, payloads.log_line(n))
        return
    for body in bodies(channel, n):
        try:
            response = client.post(channel.url, json=body, timeout=channel.timeout)
        except httpx.HTTPError as exc:
            raise NotifyError(f"no response ({type(exc).__name__})", retry=True) from None
        status = response.status_code
        if not 200 <= status < 300:
            retry = status >= 500 or status in (408, 429)
            raise NotifyError(f"HTTP {status}", retry=retry)


class ChannelWorker:
    """A channel's queue and the thread that drains it."""

    def __init__(
        self,
        channel: Channel,
        clock: Callable[[], float],
        client: httpx.Client | None = None,
    ) -> None:
        self.channel = channel
        self.status = ChannelStatus()
        self._clock = clock
        self._client = client if client is not None else httpx.Client()
        self._queue: queue.Queue[Notification] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"trackguard-notify-{channel.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, n: Notification) -> None:
        if self._queue.qsize() >= _MAX_QUEUE:
            self.status.dropped += 1
            log.error(
                "channel %s: queue full, notification for %s dropped", self.channel.name, n.rule
            )
            return
        self._queue.put(n)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued notification is settled (tests, ``alerts test``)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def deliver(self, n: Notification) -> bool:
        """Send with retries (the thread's job; ``alerts test`` calls it directly)."""
        ch = self.channel
        for attempt in range(ch.max_attempts):
            try:
                send(self._client, ch, n)
            except NotifyError as exc:
                self.status.up = False
                self.status.last_error, self.status.last_error_at = str(exc), self._clock()
                last = attempt + 1 >= ch.max_attempts
                if not exc.retry or last or self._stop.is_set():
                    self.status.failed += 1
                    log.error(
                        "channel %s: %s notification for %s failed: %s",
                        ch.name,
                        n.event,
                        n.rule,
                        exc,
                    )
                    return False
                self.status.retries += 1
                log.warning("channel %s: %s; retrying", ch.name, exc)
                self._stop.wait(min(_MAX_DELAY, ch.backoff * 2**attempt))
                continue
            self.status.sent += 1
            self.status.up = True
            self.status.last_sent_at = self._clock()
            return True
        return False

    def _run(self) -> None:
        while True:
            try:
                n = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                self.deliver(n)
            except Exception:  # a bug in a payload must not kill the channel
                log.exception("channel %s: notification failed", self.channel.name)
            finally:
                self._queue.task_done()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (one attempt each), then end the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()
