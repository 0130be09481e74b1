"""The delivery circuit breaker: stop sending while Customer.io rejects nearly everything.

An upstream that answers 400 to every item (a revoked workspace, a bad deploy on its side)
looks, one batch at a time, like a batch of bad rows: the worker splits it down to single
items and each single item's 400 reads as "this row is bad", so the whole backlog would be
quarantined within seconds. The breaker judges batches instead of rows: a batch of at least
``min_items`` rows of which Customer.io rejected at least ``threshold`` is *bad*; ``batches`` bad
batches in a row open the circuit. Until the streak is decided the refused rows are held (kept
pending, not quarantined); a good batch, or ``hold`` seconds without another bad batch,
quarantines them. When the circuit opens, every held
row goes back to the outbox (none is quarantined),
delivery pauses, and a *probe* of ``probe_size`` rows is sent after ``probe_base`` seconds,
doubling after each rejected probe up to ``probe_max``. A probe Customer.io mostly accepts
closes the circuit; from then on, rows it rejects are quarantined as before.

A healthy upstream that really rejects nearly every row of several batches looks the same:
the circuit opens and stays open while probes keep failing, which the log, ``/metrics``,
``trackguard outbox stats`` and the ``delivery_circuit`` alert rule all show. Nothing is lost
either way; ``trackguard deliver --no-circuit`` delivers (and quarantines) without the breaker.

:class:`Circuit` is pure: the worker passes time in, and saves :attr:`Circuit.state` in the
store (meta key :data:`STATE_KEY`) so other processes can read it.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

#: The store meta key holding the JSON of the latest :class:`CircuitState`.
STATE_KEY: Final = "delivery_circuit"

Judgement = Literal["neutral", "good", "bad", "open"]


class CircuitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When the circuit opens and how it probes (``docs/delivery.md`` lists the defaults)."""

    #: Share of a batch's rows Customer.io rejected that makes the batch bad.
    threshold: float = 0.9
    #: Bad batches in a row that open the circuit.
    batches: int = 3
    #: Batches of fewer rows are neither bad nor good (a lone bad event says nothing).
    min_items: int = 5
    #: Rows per probe.
    probe_size: int = 10
    #: Seconds before the first probe; doubled after each rejected probe…
    probe_base: float = 5.0
    #: …up to this.
    probe_max: float = 300.0
    #: Seconds a streak of bad batches may wait for the next one: past this the held rows are
    #: quarantined (no more evidence came that the upstream, not the rows, is at fault).
    hold: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("circuit threshold must be in (0, 1]")
        if self.batches < 1 or self.min_items < 1 or self.probe_size < 1:
            raise ValueError("circuit batches, min_items and probe_size must be at least 1")
        if not self.hold > 0.0:
            raise ValueError("circuit hold must be a positive number of seconds")
        if not 0.0 < self.probe_base <= self.probe_max:
            raise ValueError("circuit probe delays must satisfy 0 < probe_base <= probe_max")


class CircuitState(msgspec.Struct, frozen=True, kw_only=True):
    """What the circuit is doing; ``opened_at``/``probe_at`` are Unix times (None when
    closed), ``probes`` counts rejected probes since it opened, ``trips`` every opening
    since the worker started, ``reason`` Customer.io's last error when it opened."""

    state: Literal["closed", "open"] = "closed"
    opened_at: float | None = None
    probe_at: float | None = None
    probes: int = 0
    trips: int = 0
    reason: str = ""


def decode_state(raw: str | bytes | None) -> CircuitState | None:
    """The state saved under :data:`STATE_KEY`, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=CircuitState)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class Circuit:
    """The breaker's state machine; see the module docstring."""

    def __init__(self, policy: CircuitPolicy | None = None) -> None:
        self.policy = policy if policy is not None else CircuitPolicy()
        self.state = CircuitState()
        #: Bad batches in a row so far (while closed), and when the last of them was judged.
        self.streak = 0
        self.last_bad_at = 0.0

    @property
    def is_open(self) -> bool:
        return self.state.state == "open"

    def _bad(self, items: int, rejected: int) -> bool:
        return rejected >= self.policy.threshold * items

    def judge(self, items: int, rejected: int, now: float, reason: str) -> Judgement:
        """Judge a batch of ``items`` rows of which Customer.io rejected ``rejected``, while
        closed: ``neutral`` (too small to say), ``good`` (the streak is broken), ``bad`` (the
        streak grows) or ``open`` (this batch opened the circuit)."""
        if items < self.policy.min_items:
            return "neutral"
        if not self._bad(items, rejected):
            self.streak = 0
            return "good"
        self.last_bad_at = now
        self.streak += 1
        if self.streak < self.policy.batches:
            return "bad"
        self.streak = 0
        self.state = CircuitState(
            state="open",
            opened_at=now,
            probe_at=now + self.policy.probe_base,
            trips=self.state.trips + 1,
            reason=reason,
        )
        return "open"

    def streak_expired(self, now: float) -> bool:
        """True (and the streak is reset) when ``hold`` seconds passed since its last bad
        batch without another."""
        if self.streak and now - self.last_bad_at > self.policy.hold:
            self.streak = 0
            return True
        return False

    def probe_due(self, now: float) -> bool:
        return self.state.probe_at is None or now >= self.state.probe_at

    def probed(self, items: int, rejected: int, now: float, reason: str = "") -> bool:
        """Record a probe's outcome; True when it closed the circuit. ``items == 0`` (nothing
        to probe with) closes it too: the next batches are judged afresh."""
        if items == 0 or not self._bad(items, rejected):
            self.state = CircuitState(trips=self.state.trips)
            self.streak = 0
            return True
        probes = self.state.probes + 1
        delay = min(self.policy.probe_max, self.policy.probe_base * 2.0 ** min(probes, 62))
        self.state = msgspec.structs.replace(
            self.state, probe_at=now + delay, probes=probes, reason=reason or self.state.reason
        )
        return False

    def postpone(self, until: float) -> None:
        """The next probe waits until ``until`` (a probe met a busy or unreachable upstream,
        which says nothing either way)."""
        self.state = msgspec.structs.replace(self.state, probe_at=until)

    def encode(self) -> str:
        return msgspec.json.encode(self.state).decode()
