"""Bounds on every structure that grows with distinct values, and the record of hitting one.

The audit promises constant memory whatever the input size, so each set or map of distinct
names, keys or identifiers has a cap. Hitting a cap never stops counting totals; it only stops
tracking new distinct values, and the report says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """How many distinct things each accumulator tracks before it stops adding new ones."""

    event_names: int = 10_000
    event_keys: int = 2_000
    properties_per_event: int = 200
    enum_values: int = 8
    identifiers: int = 200_000
    duplicate_window: int = 200_000
    anonymous_ids: int = 200_000
    series: int = 60
    buckets: int = 240
    examples: int = 3
    codes: int = 2_000


@dataclass
class CapLog:
    """Which caps were hit, each described once."""

    notes: dict[str, str] = field(default_factory=dict)

    def hit(self, name: str, message: str) -> None:
        if name not in self.notes:
            self.notes[name] = message

    def messages(self) -> tuple[str, ...]:
        return tuple(self.notes.values())
