"""Dedupe claims decided in Python from the claims read first: the rule both stores share.

A commit reads the claims of all its keys in one statement, then asks :meth:`ClaimBook.claim`
for each claiming row in order, then writes :attr:`ClaimBook.taken` in one statement. The
rule is the one the row-by-row upsert applies (``ON CONFLICT DO UPDATE ... WHERE
claims.expires_at <= received_at``): a row takes its key when no claim holds it or the claim
expired by the row's ``received_at``; a later row of the same commit sees what an earlier one
took. Deciding in Python is sound only where nothing else takes a key between the read and
the write: both stores read and write inside the commit's transaction, and commits are serial
(SQLite's one writer, PostgreSQL's commit lock). Deletes of claims outside a commit (expired
claims pruned, ``replay`` freeing a failed row's key) cannot change an answer either: a commit
that read the claim acts as if it committed before the delete, one that did not as if after.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from trackguard.store.base import OutboxRow, Write

#: Every this many commits that claim keys, the commit also deletes expired claims (the
#: retention deletes them too, in batches of its own; this keeps a store whose retention does
#: not run bounded).
SWEEP_EVERY: Final = 100
#: The most expired claims one sweep deletes, oldest first, with the retention's own statement
#: (:data:`~trackguard.store.prune_rules.CLAIMS`): ordered and limited, it goes through the
#: ``expires_at`` index whatever the planner knows of the table, so a commit never waits on a
#: scan of every claim (PostgreSQL without fresh statistics chose one, 4 ms at 18,000 claims
#: and growing with the table), and a wave of expiries is cleared over several sweeps instead
#: of in one long commit. 50 a commit on average: more than traffic adds.
SWEEP_LIMIT: Final = 5_000


class ClaimSweep:
    """Which claiming commits also sweep expired claims, and how many at most (a store's)."""

    __slots__ = ("_since", "every", "limit")

    def __init__(self) -> None:
        self.every = SWEEP_EVERY
        self.limit = SWEEP_LIMIT
        self._since = 0  # claiming commits since the last sweep

    def due(self, writes: Sequence[Write]) -> tuple[float, int, float] | None:
        """For a commit of ``writes`` that claims keys: the parameters of
        ``CLAIMS.batch_sql`` (cutoff, limit, cutoff) when it is the one to sweep, else None.
        The cutoff is the commit's latest receipt time, as its own claims are judged by."""
        self._since += 1
        if self._since < self.every:
            return None
        self._since = 0
        now = max(r.received_at for w in writes for r in w.outbox)
        return now, self.limit, now


class ClaimBook:
    """The claims of one commit's keys as read, updated as its rows take keys."""

    __slots__ = ("_claims", "taken")

    def __init__(self, claims: Iterable[tuple[str, float, str | None]]) -> None:
        #: Key -> (expires_at, person): as read, then as this commit's rows took them.
        self._claims: dict[str, tuple[float, str | None]] = {
            key: (expires_at, person) for key, expires_at, person in claims
        }
        #: Key -> (expires_at, person) of every key taken, its last taking only: what the
        #: commit writes (one upsert per key, so PostgreSQL's ON CONFLICT meets each row once).
        self.taken: dict[str, tuple[float, str]] = {}

    def claim(self, r: OutboxRow) -> tuple[bool, str | None]:
        """Whether ``r`` takes its key, and who holds the key (``plan_commit``'s answer)."""
        key, until = r.dedupe_key, r.claim_until
        assert key is not None and until is not None
        found = self._claims.get(key)
        if found is not None and not found[0] <= r.received_at:  # the upsert's test, NaN alike
            return False, found[1]
        self._claims[key] = self.taken[key] = (until, r.person)
        return True, r.person


def claiming_keys(rows: Iterable[OutboxRow]) -> list[str]:
    """The dedupe keys the claiming ``rows`` ask for, in order (repeats kept)."""
    return [r.dedupe_key for r in rows if r.claim_until is not None and r.dedupe_key is not None]
