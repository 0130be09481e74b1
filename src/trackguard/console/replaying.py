"""Replay from the console: exactly ``trackguard replay``, with fix rules typed into a form.

The console calls :func:`trackguard.recovery.replay.replay` itself, so a replay started here
selects, fixes, re-checks, dedupes and commits exactly as the command does and reports the same
items. Two things differ because the rules come from a browser:

* ``rekey`` may not read a CSV file (``csv:``): a form must never make the server read a file
  of its choosing. ``using: identity_map`` works as on the command line.
* a confirmed replay is bounded to the records received before its preview (``until``), so
  records quarantined after the operator looked are not replayed unseen.

Only one replay runs at a time per console process: the store's commit would serialize them
anyway, and two overlapping replays of one filter would each report the other's work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import yaml

from trackguard.plan.model import Plan
from trackguard.recovery.fixes import Fix, FixError, parse_fixes
from trackguard.recovery.replay import ReplayReport, replay
from trackguard.store.quarantine import QuarantineFilter, count_quarantine

#: Records one console replay may touch; larger replays belong to ``trackguard replay``.
MAX_RECORDS: Final = 10_000


@dataclass(frozen=True)
class ReplayRequest:
    filter: QuarantineFilter
    fixes: str
    dry_run: bool


@dataclass(frozen=True)
class ReplayView:
    """A replay's report, with each item's body before and after as text for the diff."""

    report: ReplayReport
    items: list[dict[str, Any]]
    until: float


class ReplayService:
    def __init__(
        self, store: str, plan: Plan | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.plan = plan
        self.clock = clock
        self._lock = threading.Lock()

    def run(self, request: ReplayRequest) -> ReplayView:
        """Run (or preview) a replay; ValueError with a one-line reason when it cannot."""
        if self.plan is None:
            raise ValueError("replay needs a tracking plan: start the console with --plan")
        fixes = parse_form_fixes(request.fixes)
        now = self.clock()
        flt = request.filter
        if flt.until is None or flt.until > now:
            flt = msgspec.structs.replace(flt, until=now)
        matching = count_quarantine(self.store, flt)
        if matching > MAX_RECORDS:
            raise ValueError(
                f"{matching} records match: narrow the filter (at most {MAX_RECORDS}"
                " per console replay) or use trackguard replay"
            )
        if not self._lock.acquire(blocking=False):
            raise ValueError("another replay is running; try again when it has finished")
        try:
            report = replay(self.store, self.plan, flt, fixes, dry_run=request.dry_run, now=now)
        finally:
            self._lock.release()
        items = [
            {
                "id": i.id,
                "event_name": i.event_name,
                "outcome": i.outcome,
                "path": i.path,
                "new_path": i.new_path,
                "before": _text(i.before),
                "after": _text(i.after),
                "codes": list(i.codes),
                "reason": i.reason,
                "applied": list(i.applied),
                "late": i.late,
            }
            for i in report.items
        ]
        return ReplayView(report=report, items=items, until=flt.until or now)


def parse_form_fixes(text: str) -> tuple[Fix, ...]:
    """Fix rules typed into the console; ValueError naming the first problem."""
    if not text.strip():
        return ()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"fix rules: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    rules = raw.get("fixes") if isinstance(raw, dict) else raw
    for rule in rules if isinstance(rules, list) else []:
        rekey = rule.get("rekey") if isinstance(rule, dict) else None
        if isinstance(rekey, dict) and "csv" in rekey:
            raise ValueError(
                "fix rules: rekey from a CSV file is not available in the console;"
                " use `using: identity_map` or trackguard replay --fixes"
            )
    try:
        return parse_fixes(text, "fix rules")
    except FixError as exc:
        raise ValueError(exc.issues[0] if exc.issues else str(exc)) from None


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")
