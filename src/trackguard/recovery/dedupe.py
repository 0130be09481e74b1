"""Whether a committed write was a duplicate: how replay and backfill count it."""

from __future__ import annotations

from trackguard.store.base import Write


def claimed_keys(write: Write) -> list[str]:
    """The dedupe keys the write's outbox rows claim when committed."""
    return [r.dedupe_key for r in write.outbox if r.claim_until is not None and r.dedupe_key]


def all_duplicates(write: Write, duplicates: int) -> bool:
    """True when the store left out every claiming row (``duplicates`` is the count
    ``SQLiteStore.commit`` returned for the write): nothing of it will be sent."""
    keys = claimed_keys(write)
    return bool(keys) and duplicates >= len(keys)
