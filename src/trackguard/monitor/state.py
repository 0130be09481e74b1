"""The alert state machine: ok → pending → firing → resolved, one notification per change.

A breach starts ``pending``; it fires once it has lasted ``for`` (at once when ``for`` is 0).
A firing alert resolves only after its clear condition (below the lower ``resolve`` level) has
held for ``resolve_after``, so a value hovering at the threshold does not flap. While firing it
is re-announced every ``renotify`` at most, and otherwise never twice.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from trackguard.monitor.rules import Rule

State = Literal["ok", "pending", "firing", "resolved"]
Transition = Literal["firing", "renotify", "resolved"]


class AlertState(msgspec.Struct, kw_only=True):
    """The persisted state of one rule (``monitor_alerts``)."""

    state: State = "ok"
    since: float | None = None
    pending_since: float | None = None
    clearing_since: float | None = None
    fired_at: float | None = None
    notified_at: float | None = None
    resolved_at: float | None = None
    value: float | None = None
    summary: str = ""
    evaluated_at: float | None = None
    firings: int = 0

    def step(self, rule: Rule, breach: bool, clear: bool, now: float) -> Transition | None:
        """Advance on one evaluation; the transition to notify about, if any."""
        self.evaluated_at = now
        if self.state in ("ok", "resolved"):
            if not breach:
                return None
            self.state, self.since, self.pending_since = "pending", now, now
        if self.state == "pending":
            if not breach:
                self.state, self.since, self.pending_since = "ok", now, None
                return None
            assert self.pending_since is not None
            if now - self.pending_since < rule.pending_for:
                return None
            self.state, self.since, self.fired_at, self.notified_at = "firing", now, now, now
            self.clearing_since, self.firings = None, self.firings + 1
            return "firing"
        # firing
        if clear:
            if self.clearing_since is None:
                self.clearing_since = now
            if now - self.clearing_since >= rule.resolve_after:
                self.state, self.since, self.resolved_at = "resolved", now, now
                self.pending_since = self.clearing_since = None
                return "resolved"
            return None
        self.clearing_since = None
        due = self.notified_at is not None and rule.renotify is not None
        if due and now - (self.notified_at or 0.0) >= (rule.renotify or 0.0):
            self.notified_at = now
            return "renotify"
        return None


encode_state = msgspec.json.encode
decode_state = msgspec.json.Decoder(AlertState).decode
