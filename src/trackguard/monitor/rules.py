"""The alert file's model: rules, channels and how often to look.

Plain frozen dataclasses: the loader (``loader.py``) builds them, the evaluator reads them.
Secrets (webhook URLs, routing keys) live only on :class:`Channel` and never appear in its
``repr``, so they cannot leak into a log line or a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

Severity = Literal["critical", "error", "warning", "info"]
RuleKind = Literal[
    "rate",
    "count",
    "volume",
    "backlog",
    "upstream_errors",
    "health_growth",
    "request_log",
    "delivery_circuit",
]
ChannelType = Literal["slack", "pagerduty", "webhook", "log"]

SEVERITIES: Final[tuple[Severity, ...]] = ("critical", "error", "warning", "info")
RULE_KINDS: Final[tuple[RuleKind, ...]] = get_args(RuleKind)
CHANNEL_TYPES: Final[tuple[ChannelType, ...]] = ("slack", "pagerduty", "webhook", "log")
PAGERDUTY_URL: Final = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class Scope:
    """Which counter rows a rule reads. ``None`` means any.

    A request whose event is unknown (it lost its name) has no event to match, so it belongs
    to every rule whose ``routes`` name the route it came in on.
    """

    events: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    sources: frozenset[str] | None = None

    def matches(self, event: str, route: str, source: str, *, unknown: str) -> bool:
        if self.sources is not None and source not in self.sources:
            return False
        if self.events is None:
            return self.routes is None or route in self.routes
        if event in self.events:
            return True
        return event == unknown and self.routes is not None and route in self.routes


@dataclass(frozen=True)
class ActiveHours:
    """When a volume rule may fire: days (0 = Monday) and minutes of the day, in ``timezone``."""

    days: frozenset[int]
    start: int
    end: int
    timezone: str = "UTC"


@dataclass(frozen=True)
class Rule:
    """One alert rule; which fields matter depends on ``kind`` (docs/monitoring.md)."""

    name: str
    kind: RuleKind
    severity: Severity
    channels: tuple[str, ...]
    window: float
    threshold: float
    resolve: float
    description: str = ""
    min_volume: int = 0
    scope: Scope = Scope()
    outcomes: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    pending_for: float = 0.0
    resolve_after: float = 0.0
    renotify: float | None = None
    baseline: Literal["week_ago", "trailing"] | None = None
    trailing: float = 7 * 86400.0
    below: float | None = None
    metric: str = ""
    active_hours: ActiveHours | None = None


@dataclass(frozen=True)
class Channel:
    """Where notifications go. ``url`` and ``routing_key`` are secrets (hidden from repr)."""

    name: str
    type: ChannelType
    url: str = field(default="", repr=False)
    routing_key: str = field(default="", repr=False)
    timeout: float = 5.0
    max_attempts: int = 5
    backoff: float = 1.0


@dataclass(frozen=True)
class AlertConfig:
    rules: tuple[Rule, ...] = ()
    channels: dict[str, Channel] = field(default_factory=dict)
    evaluate_every: float = 30.0
    retention: float = 8 * 86400.0
    health_every: float = 900.0
