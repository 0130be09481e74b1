"""Wake-ups from PostgreSQL's LISTEN/NOTIFY, so deliverers and gateways need not poll alone.

A commit that adds outbox rows, identity bindings or orders sends one ``NOTIFY`` in its own
transaction on the store's channel (:func:`channel_name`, one per schema), with what changed as
the payload: ``o`` (outbox rows), ``i`` (bindings or orders), or both. PostgreSQL delivers it
only once the transaction committed, so a woken reader always finds the rows.

Each store keeps at most one listening connection, opened by :class:`Listener` on a thread of
its own when something first subscribes (a process opens one store, so one per process). When
that connection is lost, the listener logs it, and reconnects with a backoff of up to
:data:`MAX_BACKOFF` seconds; meanwhile readers fall back to their polling interval. Once it
listens again it wakes every subscriber, since a notification may have been missed.

SQLite has no such channel: its readers keep polling (:func:`subscribe` returns None).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from trackguard.errors import first_line

if TYPE_CHECKING:  # psycopg is the `postgres` extra: SQLite-only installs never import it
    import psycopg

log = logging.getLogger("trackguard.store")

#: Payload letters: outbox rows were added; identity bindings or orders were added.
OUTBOX: Final = "o"
IDENTITIES: Final = "i"
#: Longest wait between reconnection attempts of a lost listening connection.
MAX_BACKOFF: Final = 10.0
#: Seconds without a notification after which the listening connection is checked (``SELECT
#: 1``), so a connection a network partition silently cut is noticed.
CHECK_EVERY: Final = 10.0
#: How often a waiting thread (and the listener) looks at its stop event while it waits.
STOP_CHECK: Final = 0.25

Unsubscribe = Callable[[], None]


def channel_name(schema: str) -> str:
    """The NOTIFY channel of a store's schema (identifiers are at most 63 bytes: a long schema
    name is replaced by its checksum; a shared channel would only cause spare wake-ups)."""
    name = f"trackguard.{schema}"
    if len(name.encode()) > 63:
        name = f"trackguard.{zlib.crc32(schema.encode()):08x}"
    return name


@runtime_checkable
class Notifying(Protocol):
    """A store that can wake readers when a commit lands (``PostgresStore``)."""

    def subscribe(self, kinds: str, callback: Callable[[], None]) -> Unsubscribe:
        """Call ``callback`` (on the listener's thread; it must be quick) after each commit
        whose payload holds one of ``kinds``, and once after each reconnection."""
        ...


def subscribe(store: object, kinds: str, callback: Callable[[], None]) -> Unsubscribe | None:
    """Subscribe to ``store``'s wake-ups when it has any (None: the caller polls alone)."""
    return store.subscribe(kinds, callback) if isinstance(store, Notifying) else None


class Listener:
    """One listening connection and its thread, dispatching notifications to subscribers.

    ``connect`` opens an autocommit connection (the store's); it may raise any exception,
    which counts as the database being unreachable.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        self._connect = connect
        self.channel = channel
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[str, Callable[[], None]]] = {}
        self._next = 0
        self._closed = threading.Event()
        #: Whether the connection listens now, and how many times it was lost (for tests and
        #: the log).
        self.listening = threading.Event()
        self.losses = 0
        self._thread = threading.Thread(target=self._run, name="trackguard-listen", daemon=True)
        self._thread.start()

    def add(self, kinds: str, callback: Callable[[], None]) -> Unsubscribe:
        with self._lock:
            key = self._next
            self._next += 1
            self._subscribers[key] = (kinds, callback)

        def remove() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return remove

    def close(self) -> None:
        """Stop listening; idempotent."""
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _dispatch(self, payload: str | None) -> None:
        with self._lock:
            callbacks = [
                cb
                for kinds, cb in self._subscribers.values()
                if payload is None or _any(kinds, payload)
            ]
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a subscriber's bug must not stop the others' wake-ups
                log.exception("a wake-up subscriber failed")

    def _run(self) -> None:
        backoff = 0.5
        while not self._closed.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                log.warning(
                    "cannot listen on %s (%s); readers poll meanwhile, retrying in %gs",
                    self.channel,
                    first_line(exc),
                    backoff,
                )
                self._closed.wait(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            try:
                from psycopg import sql  # only a PostgresStore ever starts a Listener

                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                if self.losses:
                    log.warning("listening on %s again", self.channel)
                self.listening.set()
                backoff = 0.5
                self._dispatch(None)  # something may have landed while not listening
                self._listen(conn)
            except Exception as exc:
                if self._closed.is_set():
                    break
                self.losses += 1
                log.warning(
                    "lost the listening connection on %s (%s); readers poll until it is back",
                    self.channel,
                    first_line(exc),
                )
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    conn.close()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        quiet_since = time.monotonic()
        while not self._closed.is_set():
            got = False
            for notify in conn.notifies(timeout=STOP_CHECK):
                got = True
                self._dispatch(notify.payload)
                if self._closed.is_set():
                    return
            now = time.monotonic()
            if got:
                quiet_since = now
            elif now - quiet_since >= CHECK_EVERY:
                conn.execute("SELECT 1")  # raises when the connection is gone
                quiet_since = now


def _any(kinds: str, payload: str) -> bool:
    return any(k in payload for k in kinds)


class Wakeup:
    """A polling loop's pause that a store notification cuts short (a plain pause on SQLite).

    ``wait(seconds)`` returns when ``seconds`` passed, ``stop`` was set, or a commit of one of
    ``kinds`` landed since the last :meth:`clear`; clear before reading, so a commit that lands
    during the read wakes the next wait at once. It never returns before ``min_wait`` (unless
    stopped), so a stream of commits wakes a reader at most ``1 / min_wait`` times a second.
    """

    def __init__(
        self, store: object, kinds: str, stop: threading.Event, min_wait: float = 0.0
    ) -> None:
        self._stop = stop
        self.min_wait = min_wait
        self._event = threading.Event()
        self._unsubscribe = subscribe(store, kinds, self._event.set)

    @property
    def notified(self) -> bool:
        """Whether the store's notifications wake this pause (False on SQLite)."""
        return self._unsubscribe is not None

    def clear(self) -> None:
        self._event.clear()

    def wait(self, seconds: float) -> None:
        if self._unsubscribe is None:
            self._stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        if self._stop.wait(min(self.min_wait, seconds)):
            return
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._event.wait(min(remaining, STOP_CHECK)):
                return

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()


async def wait_async(stop: asyncio.Event, woken: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or until ``stop`` or ``woken`` is set (the asyncio pause of
    :class:`Wakeup`; ``woken`` is set from the listener by :func:`async_waker`)."""
    waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def async_waker(store: object, kinds: str, woken: asyncio.Event) -> Unsubscribe | None:
    """Set ``woken`` on the running loop whenever ``store`` notifies one of ``kinds``."""
    loop = asyncio.get_running_loop()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(woken.set)

    return subscribe(store, kinds, wake)
