"""Dedupe claims as replay and backfill see them: who holds a key, which row meets another
person's claim, whether a committed write was a duplicate."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from trackguard.store.base import OutboxRow, Write
from trackguard.store.sql import Session


def claim_holder(s: Session, key: str, now: float) -> tuple[bool, str | None]:
    """Whether ``key`` has a claim unexpired at ``now``, and whose (None: a claim from before
    claims named their person). An expired claim is no claim: the next commit takes it."""
    held = s.one("SELECT person FROM claims WHERE key = ? AND expires_at > ?", (key, now))
    return (False, None) if held is None else (True, held[0])


def conflicting_row(
    rows: Iterable[OutboxRow], holder: Callable[[OutboxRow], str | None]
) -> tuple[OutboxRow, str] | None:
    """The first claiming row whose dedupe key another person holds, with that person
    (``holder(row)``: who holds the row's key, None for nobody known), or None."""
    for row in rows:
        if row.claim_until is None or row.dedupe_key is None:
            continue
        held = holder(row)
        if held is not None and held != row.person:
            return row, held
    return None


def claimed_keys(write: Write) -> list[str]:
    """The dedupe keys the write's outbox rows claim when committed."""
    return [r.dedupe_key for r in write.outbox if r.claim_until is not None and r.dedupe_key]


def all_duplicates(write: Write, duplicates: int) -> bool:
    """True when the store left out every claiming row (``duplicates`` is the count
    ``SQLiteStore.commit`` returned for the write): nothing of it will be sent."""
    keys = claimed_keys(write)
    return bool(keys) and duplicates >= len(keys)
