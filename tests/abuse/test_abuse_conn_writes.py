"""How an answer leaves: its head and body in one write, whatever the request's shape.

uvicorn writes an answer's head and body apart, two ``send`` calls and two packets; the guard
holds the head back for the body. These tests feed the protocol directly and look at each write
the server makes, so they see what a socket test cannot: how many writes there were.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from abuse_conn_support import MemoryTransport
from uvicorn.config import Config
from uvicorn.server import ServerState

from trackguard.http.asgi import ASGIApp, Receive, Scope, Send, read_body, send_response
from trackguard.http.guard import protocol_class
from trackguard.http.limits import ConnectionLimits, ConnectionStats


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(scope, receive, 1 << 20)
    await send_response(send, 200, b"got " + body, content_type="text/plain")


async def _streamed(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(scope, receive, 1 << 20)
    headers = [(b"content-length", b"6")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await send({"type": "http.response.body", "body": b"def"})


async def _stops_halfway(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(scope, receive, 1 << 20)
    headers = [(b"content-length", b"6")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    raise RuntimeError("the app failed after its answer's head")


def _answer(body: bytes) -> bytes:
    """The exact bytes of ``_echo``'s answer to ``body`` (no date or server header)."""
    full = b"got " + body
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
        + str(len(full)).encode()
        + b"\r\n\r\n"
        + full
    )


def _post(body: bytes, *extra: str) -> bytes:
    head = f"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n"
    return (head + "".join(f"{h}\r\n" for h in extra) + "\r\n").encode() + body


async def _feed(app: ASGIApp, *pieces: bytes) -> MemoryTransport:
    """Each piece as one read of the connection; the app runs between reads."""
    config = Config(app, lifespan="off", log_config=None, server_header=False, date_header=False)
    cls = protocol_class(ConnectionLimits(), ConnectionStats())
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)
    for piece in pieces:
        protocol.data_received(piece)
        for _ in range(10):
            await asyncio.sleep(0)  # the app's task runs
    protocol.connection_lost(None)
    return transport


def test_an_answer_leaves_in_one_write() -> None:
    transport = asyncio.run(_feed(_echo, _post(b"hello")))
    assert transport.writes == [_answer(b"hello")]


def test_pipelined_answers_leave_in_one_write_each_and_in_order() -> None:
    transport = asyncio.run(_feed(_echo, _post(b"one") + _post(b"two") + _post(b"three")))
    assert transport.writes == [_answer(b"one"), _answer(b"two"), _answer(b"three")]


def test_a_head_request_is_answered_though_no_body_follows_its_head() -> None:
    # uvicorn writes no body for HEAD: a head held for one would never leave.
    transport = asyncio.run(_feed(_echo, b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n"))
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\n"
    assert transport.writes == [head]


def test_the_interim_100_continue_is_written_before_the_body_is_sent() -> None:
    # The client waits for it before sending its body: holding it back would stall both.
    request = _post(b"late", "expect: 100-continue")
    head, body = request[: -len(b"late")], b"late"
    transport = asyncio.run(_feed(_echo, head, body))
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"".join(transport.writes[1:]) == _answer(b"late")


def test_a_streamed_answer_sends_its_head_with_the_first_piece_and_the_rest_as_it_comes() -> None:
    transport = asyncio.run(_feed(_streamed, _post(b"")))
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"
    assert transport.writes == [head + b"abc", b"def"]


def test_a_head_whose_app_fails_before_its_body_still_leaves_before_the_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        transport = asyncio.run(_feed(_stops_halfway, _post(b"x")))
    # What uvicorn wrote before the guard held heads back: the head, then the connection ends
    # (the client sees an answer cut short, not a connection that said nothing).
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"]
    assert transport.closing
    assert "the app failed after its answer's head" in caplog.text
