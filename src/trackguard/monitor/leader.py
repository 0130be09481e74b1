"""One alert evaluator at a time across every process on a PostgreSQL store.

Every gateway counts its own traffic, but only one should evaluate the rules and notify, or each
firing would be announced once per gateway. The holder is whoever has a *session-level*
advisory lock (the schema's key, purpose :data:`ALERTS`) on a connection of its own: PostgreSQL
releases it the moment that session ends, so when the holder's process dies (its socket closes)
the next contender to ask, at its next evaluation (``evaluate_every``, 60 s by default), takes
over. When the holder's host vanishes without closing the socket, PostgreSQL ends the session
once its TCP keepalive gives up (``tcp_keepalives_idle`` on the server; minutes by default).

On SQLite there is no contender to guard against: ``serve --workers`` gives evaluation to
worker 0 alone, and several ``serve`` processes on one file are told to give ``--alerts`` to one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from trackguard.errors import first_line

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("trackguard.monitor")

#: The advisory lock purpose of alert evaluation (the store's own use 1 to 3).
ALERTS: Final = 4


class Leadership:
    """Holds (or waits for) the session lock ``(key, purpose)``; :meth:`held` is asked before
    each evaluation. ``connect`` opens a connection outside the store's pool; it may raise."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        key: int,
        purpose: int = ALERTS,
        what: str = "alert evaluation",
    ) -> None:
        self._connect = connect
        self._key = key
        self._purpose = purpose
        self.what = what
        self._conn: psycopg.Connection[Any] | None = None
        self.holding = False

    def held(self) -> bool:
        """Whether this process holds the lock now: takes it when it is free, and checks that
        the session holding it is still alive. Never raises (a lost database is 'not held')."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            if self.holding:
                self._conn.execute("SELECT 1")
                return True
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (self._key, self._purpose)
            ).fetchone()
        except Exception as exc:
            if self.holding:
                log.warning(
                    "lost %s to a database error (%s); another process may take it over",
                    self.what,
                    first_line(exc),
                )
            self._drop()
            return False
        if row is not None and row[0]:
            self.holding = True
            log.warning("this process now runs %s", self.what)
        return self.holding

    def _drop(self) -> None:
        self.holding = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Release the lock (by ending the session), so another process takes over at once."""
        self._drop()


def leadership_for(store: object, what: str = "alert evaluation") -> Leadership | None:
    """The leadership of ``store``'s schema when it is a PostgreSQL store (None otherwise)."""
    from trackguard.store.postgres import PostgresStore  # psycopg is optional

    if not isinstance(store, PostgresStore):
        return None
    return Leadership(store.dedicated_connection, store.lock_key, ALERTS, what)
