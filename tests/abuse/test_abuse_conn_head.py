"""The header cap, however a client splits its bytes: the protocol fed directly, no sockets.

TCP delivers a request in pieces of any size, so the cap must hold for every split: a head of
exactly the cap passes with any body after it, one byte more is refused.
"""

from __future__ import annotations

import asyncio
import itertools

from abuse_conn_support import MemoryTransport
from hypothesis import example, given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState

from trackguard.http.asgi import Receive, Scope, Send, read_body, send_response
from trackguard.http.guard import HEADER_TOO_LARGE, protocol_class
from trackguard.http.limits import ConnectionLimits, ConnectionStats

CAP = 300
LIMITS = ConnectionLimits(max_header_bytes=CAP)


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(scope, receive, 1 << 20)
    await send_response(send, 200, str(len(body)).encode(), content_type="text/plain")


def _request(head_size: int, body: bytes) -> bytes:
    """A POST whose head (request line, headers, blank line) is exactly ``head_size`` bytes."""
    start = f"POST /x HTTP/1.1\r\ncontent-length: {len(body)}\r\nx-pad: ".encode()
    pad = head_size - len(start) - 4
    assert pad >= 0
    return start + b"p" * pad + b"\r\n\r\n" + body


async def _feed(pieces: list[bytes]) -> tuple[bytes, ConnectionStats]:
    stats = ConnectionStats()
    config = Config(_echo_length, lifespan="off", log_config=None)
    cls = protocol_class(LIMITS, stats)
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)
    for piece in pieces:
        if transport.closing or not transport.reading:
            break
        protocol.data_received(piece)
        for _ in range(5):
            await asyncio.sleep(0)  # the app's task runs
    for _ in range(5):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return bytes(transport.written), stats


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=150)
@given(
    head_size=st.integers(min_value=60, max_value=CAP),
    body=st.binary(max_size=2 * CAP),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * CAP), max_size=8),
)
# A head of exactly the cap whose blank line arrives over three pieces, one of them a single
# byte: the guard kept only that byte of the head's end and answered 431.
@example(head_size=CAP, body=b"\x00", cuts=[CAP - 3, CAP - 2])
def test_a_head_within_the_cap_is_served_however_it_is_split(
    head_size: int, body: bytes, cuts: list[int]
) -> None:
    written, stats = asyncio.run(_feed(_split(_request(head_size, body), cuts)))
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"\r\n\r\n" + str(len(body)).encode())
    assert stats.trips["header_bytes"] == 0


@settings(max_examples=150)
@given(
    head_size=st.integers(min_value=CAP + 1, max_value=3 * CAP),
    body=st.binary(max_size=2 * CAP),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * CAP), max_size=8),
)
def test_a_head_over_the_cap_is_refused_however_it_is_split(
    head_size: int, body: bytes, cuts: list[int]
) -> None:
    written, stats = asyncio.run(_feed(_split(_request(head_size, body), cuts)))
    assert written == HEADER_TOO_LARGE
    assert stats.trips["header_bytes"] == 1


def test_an_endless_head_is_refused_once_without_growing() -> None:
    pieces = [b"GET / HTTP/1.1\r\nx-endless: "] + [b"a" * 100] * 50
    written, stats = asyncio.run(_feed(pieces))
    assert written == HEADER_TOO_LARGE
    assert stats.trips == {
        "header_bytes": 1,
        "header_timeout": 0,
        "body_timeout": 0,
        "max_connections": 0,
        "bad_request": 0,
    }
