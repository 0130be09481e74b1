"""Shutdown with clients still sending: every answer is in Customer.io's JSON shape."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from abuse_conn_support import answer, connect, read_answer, serving, track_request, wait_for

from trackguard.contract.responses import pretty
from trackguard.http.asgi import Receive, Scope, Send
from trackguard.http.limits import ConnectionLimits
from trackguard.http.runner import start_in_thread

#: Long enough that no limit trips during these tests: only the shutdown acts.
PATIENT = ConnectionLimits(header_timeout=30, body_gap_timeout=30, body_timeout=60)
UNAVAILABLE = pretty({"meta": {"errors": ["service unavailable, retry"]}})


def _split(response: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *headers = head.split(b"\r\n")
    return status, sorted(h for h in headers if not h.startswith(b"date:")), body


def test_a_slow_body_in_flight_at_shutdown_is_answered_503_json(tmp_path: Path) -> None:
    with serving(tmp_path, PATIENT, grace=0.3) as (app, server):
        sock = connect(server)
        sock.sendall(track_request()[:-5])  # the body stops five bytes short
        wait_for(lambda: app.parts.connections.open_connections == 1)
        server.stop()
        assert _split(read_answer(sock)) == (
            b"HTTP/1.1 503 Service Unavailable",
            [
                b"connection: close",
                b"content-length: %d" % len(UNAVAILABLE),
                b"content-type: application/json; charset=utf-8",
            ],
            UNAVAILABLE,
        )
        sock.close()


def test_a_half_sent_head_at_shutdown_is_answered_503_json(tmp_path: Path) -> None:
    with serving(tmp_path, PATIENT) as (app, server):
        sock = connect(server)
        sock.sendall(b"POST /api/v1/customers/42/events HTTP/1.1\r\nhost: gate")
        wait_for(lambda: app.parts.connections.open_connections == 1)
        server.stop()
        assert read_answer(sock) == answer("503 Service Unavailable", "service unavailable, retry")
        sock.close()


def test_requests_that_finish_in_the_grace_period_get_their_own_answer(tmp_path: Path) -> None:
    with serving(tmp_path, PATIENT) as (_, server):
        sock = connect(server)
        request = track_request()
        sock.sendall(request[:-5])
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        sock.sendall(request[-5:])  # the rest arrives during the shutdown
        response = read_answer(sock)
        stopper.join()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"\r\n\r\n{}\n")
        sock.close()


async def _crashes(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        raise RuntimeError("a bug")


def test_an_app_that_raises_is_answered_500_json_not_text() -> None:
    with start_in_thread(_crashes) as server, connect(server) as sock:
        sock.sendall(b"GET /anything HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body = _split(read_answer(sock))
        assert status == b"HTTP/1.1 500 Internal Server Error"
        assert b"content-type: application/json; charset=utf-8" in headers
        assert body == pretty({"meta": {"errors": ["internal server error"]}})


def test_an_app_that_raises_before_reading_a_large_body_still_gets_its_500_through() -> None:
    """The 500 ends the connection while the client is still sending (more than the server
    reads unasked): the close waits, so the answer is not lost to a reset."""
    with start_in_thread(_crashes) as server, connect(server) as sock:
        head = b"POST /anything HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (1 << 30)

        def pour() -> None:
            with contextlib.suppress(OSError):  # the server stops reading, and later closes
                sock.sendall(head + b"0" * (1 << 20))

        sender = threading.Thread(target=pour)
        sender.start()
        try:
            status, headers, body = _split(read_answer(sock))
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender
            sender.join(10)
        assert status == b"HTTP/1.1 500 Internal Server Error"
        assert b"connection: close" in headers
        assert body == pretty({"meta": {"errors": ["internal server error"]}})
