"""What the gateway has learned from earlier traffic, kept in memory for the request path.

A :class:`~trackguard.core.state.StateView` over three maps: the id behind each email, known ids
by case-folded form, and each person's latest order, so lookups cost a dict access. The store
stays the source of truth: bindings and profiles are written in the commit transaction.

The maps are loaded from the store at start-up, updated after each of this gateway's commits
(:meth:`GatewayState.learn`), and brought up to date with what *other* writers committed (other
gateway replicas on the same store, ``trackguard identity import``) by :meth:`refresh`, which
reads only the rows committed since it last looked: the store numbers bindings and profile
changes in commit order, and the state keeps the highest number it has applied (a high-water
mark per table). The gateway runs :func:`keep_fresh` every ``identity_refresh`` seconds (1 s by
default), and at once when a PostgreSQL store notifies new bindings or orders, off the request
path: reads run in a worker thread, and only the dict updates run on the event loop.

Races between replicas are settled by the store: the first committed binding of an email stays
(``INSERT OR IGNORE``). A binding this gateway learned from its own write is provisional until
the store's row is read; the store's row then wins, so replicas that bound one email to
different ids at the same moment all agree on the store's id after their next refresh. Ids by
case-folded form follow the store's commit order the same way, and latest orders take the
maximum, so every replica converges to the same maps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final

import msgspec

from trackguard.store.base import Store, StoreClosed, Write
from trackguard.store.listen import IDENTITIES, async_waker, wait_async

log = logging.getLogger("trackguard.gateway")

_derive = msgspec.json.Decoder()

#: Rows read per store call; a larger backlog is read in several calls, applied page by page.
PAGE: Final = 10_000


def _folded(ident: str) -> str:
    """``ident`` case-folded, as the same object when folding changes nothing (most ids): the
    map then holds one string for both its key and its value, 60-odd bytes less a person."""
    folded = ident.casefold()
    return ident if folded == ident else folded


class GatewayState:
    """The gateway's in-memory identity and purchase state (one event loop writes it)."""

    def __init__(self) -> None:
        self.emails: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        self.orders: dict[str, int] = {}
        #: High-water marks: the highest change number applied from the identities table and
        #: from the profiles table (0: nothing read yet; the store numbers from 1).
        self.identity_mark = 0
        self.order_mark = 0
        #: Case-folded ids set by this gateway's own writes and not yet confirmed by the store.
        self._provisional: set[str] = set()
        # Counters for /metrics.
        self.refreshes = 0
        self.refresh_failures = 0
        self.bindings_learned = 0
        self.orders_learned = 0

    @classmethod
    def load(cls, store: Store) -> GatewayState:
        """Everything the store knows now (and the marks to read on from)."""
        state = cls()
        state.refresh(store)
        state.refreshes = state.bindings_learned = state.orders_learned = 0
        return state

    def _bind(self, email: str, ident: str) -> None:
        """A binding from this gateway's own commit: provisional, the first one stays."""
        self.emails.setdefault(email, ident)
        folded = _folded(ident)
        if folded not in self.folded:
            self.folded[folded] = ident
            self._provisional.add(folded)

    def learn(self, write: Write) -> None:
        """Take in what a committed write taught."""
        for email, ident in write.links:
            self._bind(email, ident)
        for row in write.outbox:
            if row.derive is None:
                continue
            try:
                ts = int(_derive.decode(row.derive)["ts"])
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                continue
            if ts > self.orders.get(row.person, -1):
                self.orders[row.person] = ts

    # -- reading what the store committed ----------------------------------------------------

    def apply_identities(self, rows: Sequence[tuple[int, str, str]]) -> int:
        """Apply ``(seq, email, id)`` rows read from the store in commit order; returns how
        many changed the map (bindings this gateway did not know, or had provisionally
        bound otherwise). The store's binding is final, so it replaces a provisional one."""
        changed = 0
        for seq, email, ident in rows:
            if self.emails.get(email) != ident:
                self.emails[email] = ident
                changed += 1
            folded = _folded(ident)
            if folded in self._provisional or folded not in self.folded:
                self.folded[folded] = ident  # the store's first id of this form
                self._provisional.discard(folded)
            if seq > self.identity_mark:
                self.identity_mark = seq
        self.bindings_learned += changed
        return changed

    def apply_orders(self, rows: Sequence[tuple[int, str, int]]) -> int:
        """Apply ``(seq, person, last_order_date)`` rows; returns how many moved a latest
        order forward (a latest order only ever grows)."""
        changed = 0
        for seq, person, ts in rows:
            if ts > self.orders.get(person, -1):
                self.orders[person] = ts
                changed += 1
            if seq > self.order_mark:
                self.order_mark = seq
        self.orders_learned += changed
        return changed

    def refresh(self, store: Store, page: int = PAGE) -> int:
        """Read and apply everything committed since the marks, blocking (start-up, tests,
        the CLI); returns how many entries changed. The gateway uses :meth:`refresh_async`."""
        changed = 0
        while True:
            rows = store.identities_since(self.identity_mark, page)
            changed += self.apply_identities(rows)
            if len(rows) < page:
                break
        while True:
            orders = store.last_orders_since(self.order_mark, page)
            changed += self.apply_orders(orders)
            if len(orders) < page:
                break
        self.refreshes += 1
        return changed

    async def refresh_async(self, store: Store, page: int = PAGE) -> int:
        """:meth:`refresh` with the reads in a worker thread, so the event loop never waits on
        the store; each page is applied on the loop (the only writer of the maps)."""
        changed = 0
        while True:
            rows = await asyncio.to_thread(store.identities_since, self.identity_mark, page)
            changed += self.apply_identities(rows)
            if len(rows) < page:
                break
        while True:
            orders = await asyncio.to_thread(store.last_orders_since, self.order_mark, page)
            changed += self.apply_orders(orders)
            if len(orders) < page:
                break
        self.refreshes += 1
        return changed

    # -- StateView ---------------------------------------------------------------------------

    def id_for_email(self, email: str) -> str | None:
        return self.emails.get(email)

    def id_for_folded(self, folded: str) -> str | None:
        return self.folded.get(folded)

    def last_order_at(self, person: str) -> int | None:
        return self.orders.get(person)


async def keep_fresh(
    state: GatewayState, store: Store, interval: float, stop: asyncio.Event
) -> None:
    """Refresh ``state`` at once, then every ``interval`` seconds, and on a PostgreSQL store
    also as soon as another writer commits bindings or orders (``listen.py``), until ``stop``
    is set or the store closes. A failed refresh is logged and counted; the next one reads on
    from the same marks, so nothing is lost."""
    woken = asyncio.Event()
    unsubscribe = async_waker(store, IDENTITIES, woken)
    try:
        while not stop.is_set():
            woken.clear()  # a commit landing during the read wakes the next wait at once
            try:
                await state.refresh_async(store)
            except StoreClosed:
                return
            except Exception:  # the loop must outlive a bad read; the next one retries
                state.refresh_failures += 1
                log.warning("identity refresh failed; retrying in %gs", interval, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                continue
            await wait_async(stop, woken, interval)
    finally:
        if unsubscribe is not None:
            unsubscribe()
