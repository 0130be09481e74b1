"""Counting keyed findings (error codes, plan rules, statuses) with their first examples."""

from __future__ import annotations

from collections.abc import Hashable

from trackguard.audit.caps import CapLog
from trackguard.audit.model import Example


class Tally:
    """Counts per key, the first few examples per key, and a cap on distinct keys.

    Keys beyond the cap are counted under ``overflow`` so no occurrence goes missing.
    """

    __slots__ = ("caps", "counts", "examples", "label", "limit", "overflow", "per_key")

    def __init__(self, label: str, caps: CapLog, *, limit: int, per_key: int) -> None:
        self.label = label
        self.caps = caps
        self.limit = limit
        self.per_key = per_key
        self.counts: dict[Hashable, int] = {}
        self.examples: dict[Hashable, list[Example]] = {}
        self.overflow = 0

    def wants_example(self, key: Hashable) -> bool:
        """Whether an example for ``key`` would be kept (so callers format only those)."""
        got = self.examples.get(key)
        return got is None or len(got) < self.per_key

    def add(self, key: Hashable, where: str | None = None, detail: str = "") -> None:
        counts = self.counts
        if key in counts:
            counts[key] += 1
        elif len(counts) < self.limit:
            counts[key] = 1
        else:
            self.overflow += 1
            self.caps.hit(
                self.label,
                f"{self.label}: more than {self.limit} distinct kinds; the rest "
                f"are counted together",
            )
            return
        if where is not None:
            examples = self.examples.setdefault(key, [])
            if len(examples) < self.per_key:
                examples.append(Example(where, detail))

    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow
