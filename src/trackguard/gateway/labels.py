"""Label values for ``/metrics`` that the operator chose, never what a client sent.

Event names and ``schema_version`` values arrive in request bodies: used as label values as
they come, they put personal data (an email sent as an event name) into every scrape and let a
client grow the scrape without bound. With a plan, only its event names and the versions it
declares for them are labels; everything else is ``unplanned``. Without a plan, the first
``limit`` names (and versions) seen are kept and the rest become ``other``, so a scrape's size
is bounded whatever the traffic; a name that does not look like an event name (an ``@``, a
space, over 64 characters: an email or a sentence) is ``other`` at once.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from trackguard.contract.routes import ROUTES
from trackguard.monitor.tally import DELIVERY, REQUEST_LOG, UNKNOWN
from trackguard.plan.model import Plan

UNPLANNED: Final = "unplanned"
OTHER: Final = "other"
#: Without a plan: how many distinct event names become labels (the rest are ``other``).
EVENT_LABELS: Final = 100
#: Without a plan: how many distinct ``schema_version`` values become labels.
VERSION_LABELS: Final = 20
#: Without a plan, only names like these may become labels.
_NAME_LIKE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Names trackguard itself gives (``@identify`` for an operation that is not an event,
#: ``(unknown)``, ``(delivery)``, ``-``): a fixed set, always kept.
OWN_NAMES: Final = frozenset(
    {"-", UNKNOWN, DELIVERY, REQUEST_LOG} | {"@" + r.action for r in ROUTES}
)


class FirstSeen:
    """The first ``limit`` distinct values seen are kept; later new ones map to ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        with self._lock:
            if len(self._kept) < self.limit:
                self._kept.add(value)
                return value
        return OTHER


class EventLabels:
    """Maps event names and versions to bounded label values (see the module docstring)."""

    def __init__(
        self, plan: Plan | None, *, events: int = EVENT_LABELS, versions: int = VERSION_LABELS
    ) -> None:
        self._planned: dict[str, frozenset[str]] | None = None
        if plan is not None:
            self._planned = {
                name: frozenset(v.version for v in spec.versions)
                for name, spec in plan.events.items()
            }
        self._events = FirstSeen(events)
        self._versions = FirstSeen(versions)

    def event(self, name: str) -> str:
        if name in OWN_NAMES:
            return name
        if self._planned is not None:
            return name if name in self._planned else UNPLANNED
        return self._events(name) if _NAME_LIKE.fullmatch(name) else OTHER

    def version(self, name: str, version: str) -> str:
        """The label of ``version`` of the event ``name`` (a raw name, not yet a label)."""
        if self._planned is not None:
            planned = self._planned.get(name)
            return version if planned is not None and version in planned else UNPLANNED
        return self._versions(version) if _NAME_LIKE.fullmatch(version) else OTHER
