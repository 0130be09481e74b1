"""What the gateway has learned from earlier traffic, kept in memory for the request path.

A :class:`~trackguard.core.state.StateView` over three maps: the id behind each email, known ids
by case-folded form, and each person's latest order. Loaded from the store at start-up and
updated after each commit, so lookups cost a dict access. The store stays the source of truth:
bindings and profiles are written in the commit transaction; a second gateway on the same store
sees another's bindings after its next restart (documented in docs/identity.md).
"""

from __future__ import annotations

import msgspec

from trackguard.store.base import Store, Write

_derive = msgspec.json.Decoder()


class GatewayState:
    """The gateway's in-memory identity and purchase state (one event loop writes it)."""

    def __init__(self) -> None:
        self.emails: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        self.orders: dict[str, int] = {}

    @classmethod
    def load(cls, store: Store) -> GatewayState:
        state = cls()
        for email, ident in store.identities():
            state._bind(email, ident)
        state.orders.update(store.last_orders())
        return state

    def _bind(self, email: str, ident: str) -> None:
        self.emails.setdefault(email, ident)
        self.folded.setdefault(ident.casefold(), ident)

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

    # -- StateView ---------------------------------------------------------------------------

    def id_for_email(self, email: str) -> str | None:
        return self.emails.get(email)

    def id_for_folded(self, folded: str) -> str | None:
        return self.folded.get(folded)

    def last_order_at(self, person: str) -> int | None:
        return self.orders.get(person)
