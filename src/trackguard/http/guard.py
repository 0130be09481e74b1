"""uvicorn's httptools protocol with the limits it lacks: header size and time, body time,
a connection ceiling, and JSON answers where uvicorn would answer plain text.

uvicorn enforces none of these for httptools, and the parser keeps an unfinished header value
in one growing ``bytes`` (each piece copies all before it), so one endless header line costs
the whole event loop quadratic time and memory. Here the head is counted *before* it reaches
the parser, and one sweep per server checks every connection's deadline a few times a second:
a request costs a few clock reads, not a timer each (``bench/abuse.py`` measures both).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, ClassVar, Final

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trackguard.contract.responses import pretty
from trackguard.http.asgi import BODY_GAP_EXTENSION, ASGIApp, Receive, Scope, Send
from trackguard.http.limits import ConnectionLimits, ConnectionStats

log = logging.getLogger("trackguard.http")


def _answer(status: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer in Customer.io's v1 error shape that closes the connection."""
    body = pretty({"meta": {"errors": [message]}})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


HEADER_TOO_LARGE: Final = _answer(
    "431 Request Header Fields Too Large", "request headers too large"
)
HEADER_TIMEOUT: Final = _answer("408 Request Timeout", "request headers not received in time")
BODY_TIMEOUT: Final = _answer("408 Request Timeout", "request body not received in time")
SHUTTING_DOWN: Final = _answer("503 Service Unavailable", "service unavailable, retry")
SERVER_FULL: Final = SHUTTING_DOWN
BAD_REQUEST: Final = _answer("400 Bad Request", "invalid HTTP request")
#: Customer.io's shape for the two answers an ASGI app can fail to give itself.
UNAVAILABLE_BODY: Final = pretty({"meta": {"errors": ["service unavailable, retry"]}})
INTERNAL_BODY: Final = pretty({"meta": {"errors": ["internal server error"]}})

_HEAD_END: Final = b"\r\n\r\n"
# Phases of a connection, each with its own deadline.
_HEAD: Final = 0  # waiting for (the rest of) a request's head
_BODY: Final = 1  # head complete, body still arriving
_REST: Final = 2  # nothing owed by the client: the app answers, or keep-alive idles
_CLOSING: Final = 3  # answered and half-closed: what still arrives is read and dropped
#: Seconds a connection stays half-closed after a refusal before it is closed, so the answer
#: reaches the client instead of being lost to a reset from its unread bytes. Reading is
#: paused meanwhile: a client that streams on is held by its full TCP window, not read.
LINGER: Final = 2.0
#: Bytes of an unread body still read (and dropped) after an early answer to keep the
#: connection; a larger (or chunked) body ends the connection instead.
DISCARD_LIMIT: Final = 64 * 1024


def json_errors(app: ASGIApp) -> ASGIApp:
    """``app``, answering in Customer.io's JSON shape where uvicorn would send a text 500.

    A request still in flight when the graceful shutdown runs out of time is cancelled: it is
    answered 503 (the SDK retries it). An app that raises before answering gets a 500; the
    error still reaches uvicorn's log.
    """

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            if scope["type"] != "http" or not await _try_answer(send, 503, UNAVAILABLE_BODY):
                raise
            log.warning("answered 503 to a request still in flight at shutdown")
        except Exception:
            if scope["type"] == "http":
                await _try_answer(send, 500, INTERNAL_BODY)
            raise

    return guarded


async def _try_answer(send: Send, status: int, body: bytes) -> bool:
    """Send a closing JSON answer; False when a response had already started."""
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
    except RuntimeError:  # uvicorn: a response was already started
        return False
    await send({"type": "http.response.body", "body": body})
    return True


class _Sweeper:
    """One periodic check of every connection's deadline, per server (its connection set);
    it stops while a server has no connection and restarts with the next one."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._running: list[set[Any]] = []  # held, so no other set can reuse an id

    def ensure(self, protocol: GuardedHttpToolsProtocol) -> None:
        connections = protocol.connections
        if not any(running is connections for running in self._running):
            self._running.append(connections)
            protocol.loop.call_later(self.interval, self._sweep, protocol.loop, connections)

    def _sweep(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for connection in list(connections):
            if connection.deadline <= now:
                connection.expire()
        if connections:
            loop.call_later(self.interval, self._sweep, loop, connections)
        else:
            self._running = [running for running in self._running if running is not connections]


class _Refused(asyncio.Protocol):
    """A connection over the ceiling: closed at accept, before uvicorn builds a parser for
    it (``bench/abuse.py`` measured this against a 503 answer: docs/gateway.md, *Limits*)."""

    def __init__(self, stats: ConnectionStats, loop: asyncio.AbstractEventLoop) -> None:
        self._stats = stats
        self._loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if REFUSE_WITH_503:
            transport.write(SERVER_FULL)  # type: ignore[attr-defined]
            transport.close()
        else:
            transport.abort()  # type: ignore[attr-defined]
        self._stats.trip("max_connections", self._loop)


#: Answer connections over the ceiling ``503`` instead of closing them (for the benchmark).
REFUSE_WITH_503 = False


class _CycleTransport:
    """The connection's transport as one request's cycle sees it: the same methods, except
    that the answer's head and first body piece leave in one write, and the cycle's
    ``close()`` goes through the guard.

    uvicorn writes an answer's head and its body separately: two ``send`` system calls and two
    packets for every answer, where the gateway's answers are one small JSON body each. Held
    back until the body comes, the head goes out with it. (Not for ``HEAD``, whose body
    uvicorn never writes, nor for a request that expects ``100 Continue``, whose interim
    answer is that cycle's first write.)

    uvicorn closes the transport the moment an answer that ends the connection is written
    (``connection: close``, such as a 401). With the request's body still arriving, the
    unread bytes turn that close into a reset, and a reset that reaches the client first
    destroys the answer: an SDK would see "connection reset" for what was a 401.
    """

    __slots__ = (
        "_direct",
        "_held",
        "_protocol",
        "_transport",
        "get_extra_info",
        "is_closing",
        "write",
    )

    def __init__(
        self, protocol: GuardedHttpToolsProtocol, transport: asyncio.Transport, coalesce: bool
    ) -> None:
        self._protocol = protocol
        self._transport = transport
        self._held = b""
        # Bound once: the cycle's writes cost what they cost on the transport itself.
        self._direct = transport.write
        self.write: Any = self._hold if coalesce else self._direct
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def _hold(self, data: bytes) -> None:
        """The answer's head: kept for the next write."""
        self._held = bytes(data)
        self.write = self._release

    def _release(self, data: bytes) -> None:
        """The body's first piece: written with the head; later pieces go straight out."""
        self.write = self._direct
        held, self._held = self._held, b""
        self._direct(held + data)

    def close(self) -> None:
        if self._held:  # a head without its body (an app that stopped halfway): out first
            self._release(b"")
        self._protocol.close_after_answer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection, with ``limits`` enforced and each trip counted in ``stats``.

    Use :func:`protocol_class` for a server's own limits and counters; this class itself
    carries the defaults, so ``uvicorn --http trackguard.http.guard:GuardedHttpToolsProtocol``
    works too.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    stats: ClassVar[ConnectionStats] = ConnectionStats()
    sweeper: ClassVar[_Sweeper] = _Sweeper(ConnectionLimits().sweep_interval)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        server_state = kwargs["server_state"] if "server_state" in kwargs else args[1]
        if len(server_state.connections) >= cls.limits.max_connections:
            return _Refused(cls.stats, kwargs.get("_loop") or asyncio.get_event_loop())
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = json_errors(self.app)
        self.deadline = math.inf
        self._phase = _HEAD
        self._stopping = False
        self._head_bytes = 0
        self._tail = b""
        self._body_deadline = math.inf
        # A sweep may fire up to one interval after the deadline.
        # Safe to share among the connection's requests: one value for all, apps only read it.
        self._body_gap: dict[object, object] = {
            "seconds": self.limits.body_gap_timeout + self.limits.sweep_interval
        }

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.stats.open_connections = len(self.connections)
        self.deadline = self.loop.time() + self.limits.header_timeout
        self.sweeper.ensure(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.stats.open_connections = len(self.connections)

    def data_received(self, data: bytes) -> None:
        if self._phase == _CLOSING:
            return
        if self._phase == _HEAD:
            if self.deadline == math.inf:  # the first byte of a request after keep-alive
                self.deadline = self.loop.time() + self.limits.header_timeout
            if not self._head_fits(data):
                self._close_with(HEADER_TOO_LARGE, "header_bytes")
                return
        # uvicorn's data_received, without its log line per malformed request
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.send_400_response("")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            # else: no WebSocket here; the request goes on as plain HTTP

    def _head_fits(self, data: bytes) -> bool:
        """Whether the head stays within the cap with ``data`` added (counted before parsing:
        the parser itself would buffer an endless header line)."""
        total = self._head_bytes + len(data)
        if total <= self.limits.max_header_bytes:
            self._head_bytes = total
            # The last 3 bytes of the head so far, across pieces: a piece shorter than 3 bytes
            # keeps the earlier ones, or a blank line split over three pieces goes unseen.
            self._tail = (self._tail + data)[-3:]
            return True
        room = self.limits.max_header_bytes - self._head_bytes
        return _HEAD_END in self._tail + data[: max(room, 0)]  # the rest is body

    def _close_with(self, answer: bytes, limit: str) -> None:
        self._answer_and_close(answer)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app reads a disconnect and stops
            self.cycle.message_event.set()
        self.stats.trip(limit, self.loop)

    def send_400_response(self, msg: str) -> None:
        """Bytes that are not HTTP: answered in the JSON shape and counted, where uvicorn
        answers plain text and logs a warning per request (a log flood for garbage)."""
        self._close_with(BAD_REQUEST, "bad_request")

    def _answer_and_close(self, answer: bytes) -> None:
        """Send ``answer``, end our side, stop reading, and close after :data:`LINGER` s.

        Closing at once with the client's bytes unread would reset the connection, and the
        reset can destroy the answer before the client reads it; reading on would let a
        client make us copy all it sends. Paused, the kernel's buffers hold what it sends.
        """
        self._phase = _CLOSING
        self.deadline = math.inf
        transport = self.transport
        if transport.is_closing():
            return
        if answer:
            transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            transport.pause_reading()
            self.loop.call_later(LINGER, transport.close)
        else:  # TLS: no half-close
            transport.close()

    def close_after_answer(self) -> None:
        """The request's cycle ends the connection: at once, unless the request's body is
        still arriving; then the answer is given :data:`LINGER` s to reach the client. Not
        at shutdown: the event loop would stop with the connection still open."""
        if self._phase == _BODY and not self._stopping:
            self._answer_and_close(b"")
        else:
            self.transport.close()

    def _large_body(self) -> bool:
        """Whether the request's body is chunked or declared over :data:`DISCARD_LIMIT`."""
        for name, value in self.headers:
            if name == b"content-length":
                return not value.isdigit() or int(value) > DISCARD_LIMIT
        return True

    def expire(self) -> None:
        """The current phase's deadline passed."""
        if self._phase == _HEAD:
            if self._head_bytes:
                self._close_with(HEADER_TIMEOUT, "header_timeout")
            else:  # a connection that never sent a byte: nothing to answer
                self.deadline = math.inf
                self.transport.close()
                self.stats.trip("header_timeout", self.loop)
        elif self._phase == _BODY:
            if self.cycle is not None and self.cycle.response_started:
                # Answered already (a 401 before its body): stop reading the rest.
                self.deadline = math.inf
                self.transport.close()
                self.stats.trip("body_timeout", self.loop)
            else:
                self._close_with(BODY_TIMEOUT, "body_timeout")

    def shutdown(self) -> None:
        """Graceful shutdown: a client halfway through a request head is answered 503."""
        self._stopping = True
        if self._phase == _HEAD and self._head_bytes:
            self._answer_and_close(SHUTTING_DOWN)
            return
        if self._phase == _CLOSING:  # answered already: no need to wait for the linger
            self.transport.close()
            return
        super().shutdown()

    # Parser callbacks: each moves the connection to its next phase and deadline.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        if self.deadline == math.inf:  # pipelined behind a request the app is answering
            self.deadline = self.loop.time() + self.limits.header_timeout

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._head_bytes = 0
        self._tail = b""
        now = self.loop.time()
        self._body_deadline = now + self.limits.body_timeout
        self.deadline = min(now + self.limits.body_gap_timeout, self._body_deadline)
        # Tell the app the longest pause this connection allows, so it can skip a body timer
        # of its own that could never fire first.
        self.scope.setdefault("extensions", {})[BODY_GAP_EXTENSION] = self._body_gap
        super().on_headers_complete()
        cycle = self.cycle
        # A view of its own per cycle: a pipelined request's cycle is made while the one
        # before it may still be writing its answer.
        coalesce = cycle.scope["method"] != "HEAD" and not cycle.waiting_for_100_continue
        cycle.transport = _CycleTransport(self, self.transport, coalesce)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        self.deadline = min(self.loop.time() + self.limits.body_gap_timeout, self._body_deadline)
        super().on_body(body)

    def on_message_complete(self) -> None:
        # The rest of a body answered early (a small one: see on_response_complete) ends
        # with the answer already out: the next request's head is next.
        answered = self.cycle is not None and self.cycle.response_complete
        self._phase = _HEAD if answered else _REST
        self.deadline = math.inf
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._phase == _BODY and self._large_body():
            # Answered before a large body arrived (a 401, an early 413): uvicorn would read
            # the rest only to drop it, and a client can send a gigabyte. End the connection.
            self._answer_and_close(b"")
        if self._phase == _CLOSING:  # the answer ended the connection (or close_after_answer)
            self.server_state.total_requests += 1
            return
        # uvicorn's keep-alive timer takes over; the next request's first byte arms ours.
        if self._phase == _REST:
            self._phase = _HEAD
        super().on_response_complete()


def protocol_class(
    limits: ConnectionLimits, stats: ConnectionStats
) -> type[GuardedHttpToolsProtocol]:
    """The protocol for one server: its own limits, counters and deadline sweep."""
    attrs = {"limits": limits, "stats": stats, "sweeper": _Sweeper(limits.sweep_interval)}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attrs)
