"""The dedupe claims of one SQLite commit, made the cheaper of two equivalent ways.

A claiming row takes its key when no claim holds it or the claim expired by the row's
``received_at``; a later row of the same commit sees what an earlier one took. For each row the
commit needs whether it took the key and who holds it. Both ways below give exactly those
answers and leave exactly the same ``claims`` rows; they differ in what they cost:

* **row by row**: one conditional upsert per row (its rowcount says whether the row took the
  key) and, for a key it did not take, one more statement for the holder. Cheapest when keys
  are new, as they are in ordinary traffic.
* **read first**: one statement reads the claims of every key of the commit, Python decides
  row by row (:class:`~trackguard.store.claims.ClaimBook`), and one ``executemany`` writes the
  keys taken (each key once, as its last row took it). A held key then costs no statement
  of its own, so this is cheapest when many keys are held: SDK retries after a timeout, a
  client re-sending a batch.

Each commit uses the way that would have been cheaper for the previous one: read first once at
least a fifth of its keys were held. (Commit worker of ``bench/instructions.py``, 18 writes a
commit: new keys cost about 94,500 instructions a request row by row and 97,800 read first;
the same writes again, every key held, 49,000 row by row and 38,900 read first.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

import msgspec

from trackguard.store.base import OutboxRow, Write
from trackguard.store.claims import ClaimBook, claiming_keys

# Takes a key that read-first found free or expired.
_TAKE: Final = (
    "INSERT INTO claims (key, expires_at, person) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
    " SET expires_at = excluded.expires_at, person = excluded.person"
)
# Claims a key unless an unexpired claim holds it (then nothing changes: a duplicate).
_CLAIM: Final = _TAKE + " WHERE claims.expires_at <= ?"
_CLAIMER: Final = "SELECT person FROM claims WHERE key = ?"
# The claims of a commit's keys (given as one JSON array), read in its write transaction.
_HELD: Final = (
    "SELECT c.key, c.expires_at, c.person FROM json_each(?) AS j"
    " JOIN claims AS c ON c.key = j.value"
)
#: Read first after a commit where at least 1 / READ_FIRST_SHARE of the claims were held.
READ_FIRST_SHARE: Final = 5

_encode: Final = msgspec.json.encode


class CommitClaims:
    """The claims of one commit, on its cursor, inside its write transaction: :meth:`claim`
    for each claiming row in order (``plan_commit``'s callback), then :meth:`finish`. Read
    first, the decisions are :class:`~trackguard.store.claims.ClaimBook`'s (PostgreSQL's too)."""

    __slots__ = ("_book", "_cur", "held", "made")

    def __init__(self, cur: sqlite3.Cursor, writes: Sequence[Write], *, read_first: bool) -> None:
        self._cur = cur
        #: Claims asked for, and how many of them found their key held.
        self.made = self.held = 0
        self._book: ClaimBook | None = None
        if read_first:
            keys = claiming_keys([r for w in writes for r in w.outbox])
            self._book = ClaimBook(cur.execute(_HELD, (_encode(keys).decode(),)))

    def claim(self, r: OutboxRow) -> tuple[bool, str | None]:
        """Whether ``r`` takes its key, and who holds the key."""
        self.made += 1
        if self._book is not None:
            taken, holder = self._book.claim(r)
        else:
            key, until = r.dedupe_key, r.claim_until
            assert key is not None and until is not None
            taken = bool(self._cur.execute(_CLAIM, (key, until, r.person, r.received_at)).rowcount)
            holder = r.person if taken else self._cur.execute(_CLAIMER, (key,)).fetchone()[0]
        if not taken:
            self.held += 1
        return taken, holder

    def finish(self) -> None:
        """Write the keys taken (read first: :meth:`claim` only decided)."""
        if self._book is not None and self._book.taken:
            self._cur.executemany(
                _TAKE, [(key, until, person) for key, (until, person) in self._book.taken.items()]
            )

    @property
    def next_read_first(self) -> bool:
        """Whether reading first would have been the cheaper way for these claims."""
        return self.held * READ_FIRST_SHARE >= self.made > 0
