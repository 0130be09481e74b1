"""What the core may know of earlier traffic: a small read-only view the shell provides.

The core stays pure: the gateway (or a test) passes a :class:`StateView` with what it has
learned (the id behind an email, the last order of a person) and the core's decisions about it
go out in the Verdict. With :data:`NO_STATE` the core judges each request on its own.
"""

from __future__ import annotations

from typing import Protocol


class StateView(Protocol):
    def id_for_email(self, email: str) -> str | None:
        """The canonical id bound to a (lower-case) email, if one is known."""

    def id_for_folded(self, folded: str) -> str | None:
        """A known id whose ``casefold()`` is ``folded``, as it was first written."""

    def last_order_at(self, person: str) -> int | None:
        """The timestamp of the person's latest order (person key ``id:42``), if known."""


class _NoState:
    def id_for_email(self, email: str) -> str | None:
        return None

    def id_for_folded(self, folded: str) -> str | None:
        return None

    def last_order_at(self, person: str) -> int | None:
        return None


NO_STATE: StateView = _NoState()
