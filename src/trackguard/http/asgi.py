"""Small raw-ASGI helpers shared by the gateway and the emulator.

No web framework: the Track API is a handful of routes that ``trackguard.contract`` already
matches, so the servers only need to read a capped body, check Basic credentials and send bytes.
The two Track answers made *before* a body reaches ``evaluate`` (401 and an early 413) are here
too, built from the contract's own result type and renderer so every server answers them alike.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

import msgspec

from trackguard.contract import messages
from trackguard.contract.check import ContractError, ContractResult, evaluate
from trackguard.contract.operations import Request
from trackguard.contract.responses import render
from trackguard.contract.routes import NoRoute, RouteMatch, match
from trackguard.errors import RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"
_URLSAFE_TO_STANDARD: Final = str.maketrans("-_", "+/")
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_JSON_TYPE: Final = (b"content-type", JSON_CONTENT_TYPE.encode("latin-1"))


class BodyTooLarge(RequestError):
    """The request body is (or announces to be) larger than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit


class ClientDisconnected(RequestError):
    """The client went away before its body was read."""


#: The response header that ends a keep-alive connection after this answer (401s, 408s, 413s:
#: the rest of what the client sent is never read).
CLOSE: Final = ("connection", "close")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def header_pairs(scope: Scope) -> tuple[tuple[str, str], ...]:
    """Every request header as ``(name, value)`` text, in the order sent."""
    return tuple(
        (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
        for k, v in scope.get("headers", ())
    )


def request_target(scope: Scope) -> str:
    """Path and query exactly as sent: percent-encoding kept so ``%2F`` stays in one segment."""
    raw = scope.get("raw_path") or scope["path"].encode()
    path = bytes(raw).decode("utf-8", "replace")
    query = bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
    return f"{path}?{query}" if query else path


class BodyTimeout(RequestError):
    """The client stopped sending its body for longer than the read timeout."""


#: How long a client may pause while sending its body (a slow client must not hold a slot).
BODY_TIMEOUT: Final = 30.0

#: ``scope["extensions"]`` key a server sets when it times bodies itself; its ``seconds``: the
#: longest a client's pause between two pieces of its body lasts before the server answers 408.
BODY_GAP_EXTENSION: Final = "trackguard.body_gap"


def app_body_timeout(scope: Scope, backstop: float) -> float | None:
    """``backstop``, or None when the server answers a stalled body before it could fire.

    An app timer costs about 4 µs a request (an event-loop timer set, moved and cancelled);
    under trackguard's own server (:mod:`trackguard.http.guard`) it can never fire first.
    """
    extensions = scope.get("extensions")
    gap = extensions.get(BODY_GAP_EXTENSION) if extensions else None
    return None if gap is not None and gap["seconds"] < backstop else backstop


async def read_body(
    scope: Scope, receive: Receive, limit: int, *, timeout: float | None = BODY_TIMEOUT
) -> bytes:
    """The whole body, refusing early anything over ``limit`` bytes.

    A ``Content-Length`` over the cap is refused before a byte is read; a chunked body is
    counted as it streams, so a client can never make the server buffer more than the cap.
    A pause of more than ``timeout`` seconds between two chunks raises :class:`BodyTimeout`;
    ``None`` leaves the pauses to the server (see :func:`app_body_timeout`).
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(limit)
        except ValueError:
            pass  # the HTTP parser rejects malformed lengths before the app sees them
    if timeout is None:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # most bodies: one message, nothing to join
            if len(body) > limit:
                raise BodyTooLarge(limit)
            return body
        return await _chunks(receive, limit, None, 0.0, message)
    # One timer, moved on after each chunk: ``asyncio.wait_for`` would run every receive in a
    # task of its own, which costs more than the rest of reading a small body.
    try:
        async with asyncio.timeout(timeout) as pause:
            return await _chunks(receive, limit, pause, timeout)
    except TimeoutError:
        raise BodyTimeout from None


async def _chunks(
    receive: Receive,
    limit: int,
    pause: asyncio.Timeout | None,
    timeout: float,
    message: Message | None = None,
) -> bytes:
    """The body's chunks joined, from ``message`` (the first, when already received) on;
    ``pause`` (when timed) moves on ``timeout`` after each."""
    if message is None:
        message = await receive()
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        if pause is not None:
            pause.reschedule(asyncio.get_running_loop().time() + timeout)
        message = await receive()


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: str = JSON_CONTENT_TYPE,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Send a complete response; ``content-length`` is set except where HTTP forbids it."""
    raw: list[tuple[bytes, bytes]] = [
        _JSON_TYPE
        if content_type == JSON_CONTENT_TYPE
        else (b"content-type", content_type.encode("latin-1"))
    ]
    if status not in _NO_BODY_STATUSES:
        raw.append((b"content-length", str(len(body)).encode()))
    else:
        body = b""
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, obj: Any, *, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Send ``obj`` as compact JSON with a trailing newline."""
    await send_response(send, status, msgspec.json.encode(obj) + b"\n", headers=headers)


def parse_basic_auth(value: bytes | str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` value, or None.

    Both base64 alphabets are accepted: the Go SDK encodes with the URL-safe one (``-``/``_``)
    on purpose, every other SDK with the standard one. Missing padding is tolerated.
    """
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, token = text.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token:
        return None
    token = token.translate(_URLSAFE_TO_STANDARD)
    token += "=" * (-len(token) % 4)
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_match(given: tuple[str, str] | None, user: str, password: str) -> bool:
    """Constant-time comparison of both parts, so timing reveals neither."""
    if given is None:
        return False
    user_ok = hmac.compare_digest(given[0].encode(), user.encode())
    password_ok = hmac.compare_digest(given[1].encode(), password.encode())
    return user_ok & password_ok


def bearer_matches(value: bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = (value or b"").partition(b" ")
    ok = hmac.compare_digest(given.strip(), token.encode())
    return ok and scheme.lower() == b"bearer"


def authorized(scope: Scope, user: str, password: str) -> bool:
    """True when the request carries exactly these Basic credentials."""
    return credentials_match(parse_basic_auth(header(scope, b"authorization")), user, password)


def track_unauthorized() -> tuple[int, bytes]:
    """The 401 answer for missing or wrong Track API credentials (body shape UNVERIFIED)."""
    error = ContractError(code="unauthorized", message=messages.UNAUTHORIZED, verified=False)
    return render(ContractResult(status=401, route=None, errors=(error,)))


def allow_header(hit: RouteMatch | NoRoute) -> list[tuple[str, str]]:
    """``Allow`` with the path's methods for a 405 (RFC 9110 requires it), else nothing."""
    if isinstance(hit, NoRoute) and hit.status == 405 and hit.allowed:
        return [("allow", ", ".join(hit.allowed))]
    return []


def track_too_large(method: str, target: str) -> tuple[int, bytes]:
    """The answer to a body refused unread for its size: what ``evaluate`` says for it.

    ``evaluate`` answers an unknown path (404) or method (405) before it looks at the size, so
    those still win; a known route gets the contract's 413.
    """
    hit = match(method, target)
    if isinstance(hit, NoRoute):
        return render(evaluate(Request(method=method, path=target)))
    error = ContractError(code="body_too_large", message=messages.BODY_TOO_LARGE, verified=False)
    return render(ContractResult(status=413, route=hit.route, errors=(error,)))


async def lifespan(
    receive: Receive,
    send: Send,
    *,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer the ASGI lifespan protocol, running optional hooks at startup and shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if startup is not None:
                    await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
