"""What each channel receives: Slack Block Kit, PagerDuty Events API v2, a generic JSON webhook.

Pure functions of a :class:`Notification`, so the tests pin the exact bodies. PagerDuty uses
one ``dedup_key`` per rule: a re-notification updates the open incident instead of opening
another, and the resolve closes it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal

from trackguard.monitor.rules import Severity

NotificationEvent = Literal["firing", "renotify", "resolved", "test"]
_TITLES: Final = {
    "firing": "FIRING",
    "renotify": "STILL FIRING",
    "resolved": "RESOLVED",
    "test": "TEST",
}
_ICONS: Final = {
    "firing": ":rotating_light:",
    "renotify": ":rotating_light:",
    "resolved": ":white_check_mark:",
    "test": ":test_tube:",
}


@dataclass(frozen=True)
class Notification:
    """One thing to tell people: a rule fired, is still firing, resolved, or a test."""

    rule: str
    event: NotificationEvent
    severity: Severity
    summary: str
    at: float
    description: str = ""
    value: float | None = None
    numbers: tuple[tuple[str, str], ...] = ()
    reasons: tuple[tuple[str, int], ...] = ()
    events: tuple[tuple[str, int], ...] = ()
    quarantine_ids: tuple[int, ...] = ()

    @property
    def dedup_key(self) -> str:
        return f"trackguard/{self.rule}"

    @property
    def title(self) -> str:
        return f"{_TITLES[self.event]}: {self.rule}"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _esc(text: str) -> str:
    """Slack mrkdwn escaping: event names and codes come from client data."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(n: Notification) -> dict[str, Any]:
    """A Block Kit message for an incoming webhook; ``text`` is the notification fallback."""
    headline = f"*{_esc(n.description or n.rule)}*\n{_esc(n.summary)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
    ]
    if n.numbers:
        fields = [{"type": "mrkdwn", "text": f"*{_esc(k)}*\n{_esc(v)}"} for k, v in n.numbers]
        blocks.append({"type": "section", "fields": fields[:10]})
    if n.reasons:
        lines = "\n".join(f"• `{_esc(code)}` × {count}" for code, count in n.reasons)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Top reasons*\n" + lines}}
        )
    if n.events:
        lines = "\n".join(f"• `{_esc(name)}` × {count}" for name, count in n.events)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Events*\n" + lines}})
    if n.quarantine_ids:
        ids = ", ".join(str(i) for i in n.quarantine_ids)
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Quarantine ids to look at: {ids}"}],
            }
        )
    footer = f"{_ICONS[n.event]} severity *{n.severity}* · {iso(n.at)} · trackguard"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": f"[{n.title}] ({n.severity}) {n.summary}", "blocks": blocks}


def pagerduty(n: Notification, routing_key: str) -> list[dict[str, Any]]:
    """Events API v2 bodies: a trigger, a resolve, or for a test a trigger and its resolve."""
    resolve = {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
    if n.event == "resolved":
        return [resolve]
    trigger = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": f"{n.rule}: {n.summary}"[:1024],
            "source": "trackguard",
            "severity": n.severity,
            "timestamp": iso(n.at),
            "custom_details": details(n),
        },
    }
    return [trigger, resolve] if n.event == "test" else [trigger]


def details(n: Notification) -> dict[str, Any]:
    """The figures of a notification as JSON (PagerDuty custom details, the webhook)."""
    return {
        "description": n.description,
        "numbers": dict(n.numbers),
        "top_reasons": [{"code": c, "count": k} for c, k in n.reasons],
        "events": [{"event": e, "count": k} for e, k in n.events],
        "quarantine_ids": list(n.quarantine_ids),
    }


def webhook(n: Notification) -> dict[str, Any]:
    """The generic JSON webhook body: everything, flat and documented (docs/monitoring.md)."""
    return {
        "version": 1,
        "source": "trackguard",
        "rule": n.rule,
        "event": n.event,
        "severity": n.severity,
        "summary": n.summary,
        "at": iso(n.at),
        "value": n.value,
        "dedup_key": n.dedup_key,
        **details(n),
    }


def log_line(n: Notification) -> str:
    return f"alert {n.event} {n.rule} ({n.severity}): {n.summary}"
