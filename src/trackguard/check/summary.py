"""Counting verdicts: outcomes, violation codes and examples, for ``check`` and the demo."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from trackguard.core.verdict import OUTCOMES, Verdict

EXAMPLES_PER_CODE = 3


@dataclass
class CodeStats:
    """How often a code was seen, with what action, and the first few places."""

    count: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (where, message)


@dataclass
class Summary:
    requests: int = 0
    unreadable: int = 0
    skipped: int = 0  # HAR entries for something other than Customer.io's APIs
    outcomes: Counter[str] = field(default_factory=Counter)
    codes: dict[str, CodeStats] = field(default_factory=dict)
    operations_accepted: int = 0
    operations_rejected: int = 0
    changes: int = 0
    unreadable_examples: list[tuple[str, str]] = field(default_factory=list)

    def add(self, verdict: Verdict, where: str) -> None:
        self.requests += 1
        self.outcomes[verdict.outcome] += 1
        self.operations_accepted += len(verdict.operations)
        self.operations_rejected += len(verdict.rejected)
        self.changes += len(verdict.changes)
        for e in verdict.contract_errors:
            self._code(e.code, "invalid", where, e.message)
        for v in verdict.violations:
            self._code(v.code, v.action, where, v.message)

    def add_unreadable(self, where: str, reason: str) -> None:
        self.unreadable += 1
        if len(self.unreadable_examples) < EXAMPLES_PER_CODE:
            self.unreadable_examples.append((where, reason))

    def _code(self, code: str, action: str, where: str, message: str) -> None:
        stats = self.codes.get(code)
        if stats is None:
            stats = self.codes[code] = CodeStats()
        stats.count += 1
        stats.actions[action] += 1
        if len(stats.examples) < EXAMPLES_PER_CODE:
            stats.examples.append((where, message))

    def merge(self, later: Summary) -> None:
        """Add the counts of input read after this (``check --jobs``); examples stay the first
        by position, and ties keep their first-seen order."""
        self.requests += later.requests
        self.unreadable += later.unreadable
        self.skipped += later.skipped
        self.outcomes.update(later.outcomes)
        self.operations_accepted += later.operations_accepted
        self.operations_rejected += later.operations_rejected
        self.changes += later.changes
        for code, stats in later.codes.items():
            mine = self.codes.setdefault(code, CodeStats())
            mine.count += stats.count
            mine.actions.update(stats.actions)
            _extend(mine.examples, stats.examples)
        _extend(self.unreadable_examples, later.unreadable_examples)

    @property
    def failed(self) -> int:
        """Requests Customer.io would reject or the plan rejected."""
        return self.outcomes["invalid"] + self.outcomes["rejected"]

    def top_codes(self, n: int = 10) -> list[tuple[str, CodeStats]]:
        return sorted(self.codes.items(), key=lambda kv: (-kv[1].count, kv[0]))[:n]

    def outcome_rows(self) -> list[tuple[str, int]]:
        return [(o, self.outcomes[o]) for o in OUTCOMES]


def _extend(into: list[tuple[str, str]], more: list[tuple[str, str]]) -> None:
    into.extend(more[: max(0, EXAMPLES_PER_CODE - len(into))])
