"""What the store tests share: the store types (and, from ``pg_server``, the PostgreSQL URL)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeAlias

from pg_server import pg_url
from trackguard.store import OutboxRow, SQLiteStore, Write
from trackguard.store.postgres import PostgresStore

__all__ = ["AnyStore", "Opener", "lease_case", "pg_url"]

AnyStore: TypeAlias = SQLiteStore | PostgresStore
Opener: TypeAlias = Callable[..., AnyStore]


def lease_case(store: AnyStore, rnd: random.Random) -> tuple[list[int], list[int], object]:
    """A random queue committed to an empty ``store``, a fifth of it delivered, then one
    lease: the seqs it returned, those a brute-force reading of the protocol expects, and
    the case (for the failure message)."""
    n = rnd.randint(1, 60)
    people = [f"p{rnd.randint(0, 5)}" for _ in range(n)]
    due = [rnd.choice([0.0, 0.0, 5.0, 10.0, 20.0]) for _ in range(n)]
    payload = b'{"v2":{"type":"person","action":"event"}}'
    store.commit(
        [
            Write(
                outbox=(OutboxRow(received_at=1.0, person=p, payload=payload, next_attempt_at=d),)
            )
            for p, d in zip(people, due, strict=True)
        ]
    )
    done = {i + 1 for i in range(n) if rnd.random() < 0.2}
    store.mark_delivered(sorted(done), now=1.0)
    now, limit = rnd.choice([0.0, 5.0, 10.0, 15.0]), rnd.randint(1, 20)
    expected: list[int] = []
    blocked: set[str] = set()
    for seq, (p, d) in enumerate(zip(people, due, strict=True), start=1):
        if seq in done:
            continue
        if d > now:
            blocked.add(p)
        elif p not in blocked and len(expected) < limit:
            expected.append(seq)
    leased = [r.seq for r in store.lease(limit, now)]
    return leased, expected, (people, due, done, now, limit)
