"""The connection limits against misbehaving clients, on a real gateway over loopback.

Limits are small (``FAST``) so each test trips them quickly; assertions are on what the
client receives and on the counters, never on how long anything took.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from abuse_conn_support import (
    FAST,
    TRACK,
    answer,
    connect,
    read_answer,
    read_one,
    serving,
    track_request,
    wait_for,
)

from trackguard.contract.messages import UNAUTHORIZED
from trackguard.contract.responses import pretty
from trackguard.http.limits import ConnectionLimits

BAD_REQUEST = answer("400 Bad Request", "invalid HTTP request")
HEADERS_TOO_LARGE = answer("431 Request Header Fields Too Large", "request headers too large")
HEADER_TIMEOUT = answer("408 Request Timeout", "request headers not received in time")
BODY_TIMEOUT = answer("408 Request Timeout", "request body not received in time")


def _trip_counts(admin_url: str) -> dict[str, float]:
    text = httpx.get(f"{admin_url}/metrics").text
    trips = r'^trackguard_connection_limit_trips_total\{limit="(\w+)"\} (\S+)$'
    found = re.findall(trips, text, re.M)
    return {name: float(value) for name, value in found}


def test_endless_header_is_answered_431_and_closed_while_others_are_served(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as (app, server):
        attacker = connect(server)
        attacker.sendall(b"POST /api/v1/customers/42/events HTTP/1.1\r\nx-endless: ")
        attacker.sendall(b"a" * 1000)  # within the cap so far: the connection stays open
        with connect(server) as client:
            client.sendall(track_request())
            assert read_one(client) == (200, b"{}\n")
        for _ in range(100):  # far past the cap: read and dropped until the answer is out
            attacker.sendall(b"a" * 1000)
        assert read_answer(attacker) == HEADERS_TOO_LARGE
        attacker.close()
        assert app.parts.connections.trips["header_bytes"] == 1
        assert server.admin_url is not None
        assert _trip_counts(server.admin_url) == {
            "header_bytes": 1.0,
            "header_timeout": 0.0,
            "body_timeout": 0.0,
            "max_connections": 0.0,
            "bad_request": 0.0,
        }


def test_head_over_the_cap_in_one_write_gets_the_431_answer(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nx-big: " + b"b" * FAST.max_header_bytes)
        assert read_answer(sock) == HEADERS_TOO_LARGE
        assert app.parts.connections.trips["header_bytes"] == 1


def test_head_at_the_cap_with_a_body_in_the_same_write_is_served(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        request = track_request(keep_alive=False)
        head, _, body = request.partition(b"\r\n\r\n")
        pad = FAST.max_header_bytes - len(head) - len(b"\r\nx-pad: ") - 4
        head += b"\r\nx-pad: " + b"p" * pad
        assert len(head) + 4 == FAST.max_header_bytes
        sock.sendall(head + b"\r\n\r\n" + body)
        assert read_answer(sock).endswith(b"\r\n\r\n{}\n")
        assert app.parts.connections.trips["header_bytes"] == 0


def test_bytes_that_are_not_http_are_answered_400_json_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(tmp_path) as (app, server):
        for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/9.9\r\n\r\n"):
            with connect(server) as sock:
                sock.sendall(garbage)
                assert read_answer(sock) == BAD_REQUEST
        assert app.parts.connections.trips["bad_request"] == 2
        assert "Invalid HTTP request received." not in caplog.text  # no line per request


def test_slow_headers_are_answered_408_and_closed(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: gate")  # and nothing more
        assert read_answer(sock) == HEADER_TIMEOUT
        assert app.parts.connections.trips["header_timeout"] == 1


def test_headers_sent_a_byte_at_a_time_are_cut_off(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(200):  # a byte every 20 ms: each gap is short, the head never ends
                sock.sendall(b"x")
                time.sleep(0.02)
        except OSError:
            pass
        assert read_answer(sock) == HEADER_TIMEOUT
        assert app.parts.connections.trips["header_timeout"] == 1


def test_a_connection_that_never_sends_is_closed_without_an_answer(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        assert read_answer(sock) == b""
        assert app.parts.connections.trips["header_timeout"] == 1


def test_a_pause_in_the_body_is_answered_408(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        request = track_request()
        sock.sendall(request[:-5])  # the body stops five bytes short
        assert read_answer(sock) == BODY_TIMEOUT
        assert app.parts.connections.trips["body_timeout"] == 1
        assert app.parts.metrics.requests == {}  # nothing reached the core


def test_a_body_trickled_a_byte_at_a_time_is_answered_408(tmp_path: Path) -> None:
    limits = ConnectionLimits(
        header_timeout=5, body_gap_timeout=5, body_timeout=0.5, keep_alive_timeout=5
    )
    with serving(tmp_path, limits) as (app, server), connect(server) as sock:
        body = b'{"name":"x","data":{"pad":"' + b"p" * 500 + b'"}}'
        request = track_request(body)
        split = request.index(b"\r\n\r\n") + 4
        sock.sendall(request[:split])
        try:
            for byte in body:  # every gap far below body_gap_timeout
                sock.sendall(bytes([byte]))
                time.sleep(0.01)
        except OSError:
            pass
        assert read_answer(sock) == BODY_TIMEOUT
        assert app.parts.connections.trips["body_timeout"] == 1
        assert app.parts.connections.trips["header_timeout"] == 0


def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    with serving(tmp_path) as (app, server), connect(server) as sock:
        sock.sendall(track_request())
        assert read_one(sock) == (200, b"{}\n")
        assert sock.recv(1) == b""  # closed by the server once idle for keep_alive_timeout
        assert app.parts.connections.trips == {
            "header_bytes": 0,
            "header_timeout": 0,
            "body_timeout": 0,
            "max_connections": 0,
            "bad_request": 0,
        }


def test_keep_alive_requests_within_the_limits_are_all_served(tmp_path: Path) -> None:
    # The same header cap as FAST, but timeouts a busy machine cannot trip between requests.
    within = ConnectionLimits(
        max_header_bytes=2048,
        header_timeout=10,
        body_gap_timeout=10,
        body_timeout=10,
        keep_alive_timeout=10,
        max_connections=50,
    )
    with serving(tmp_path, within) as (app, server), connect(server) as sock:
        for _ in range(20):
            sock.sendall(track_request())
            assert read_one(sock) == (200, b"{}\n")
        sock.sendall(track_request() + track_request())  # pipelined
        assert read_one(sock) == (200, b"{}\n")
        assert read_one(sock) == (200, b"{}\n")
        assert sum(app.parts.connections.trips.values()) == 0


def test_connections_over_the_cap_are_refused_while_the_admin_listener_answers(
    tmp_path: Path,
) -> None:
    limits = ConnectionLimits(
        header_timeout=30, body_gap_timeout=30, body_timeout=30, max_connections=3
    )
    with serving(tmp_path, limits) as (app, server):
        stats = app.parts.connections
        held = [connect(server) for _ in range(3)]
        wait_for(lambda: stats.open_connections == 3)
        refused = []
        for _ in range(5):
            extra = connect(server)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                refused.append(extra.recv(100))
            except ConnectionResetError:
                refused.append(b"reset")
            extra.close()
        assert set(refused) <= {b"", b"reset"}  # closed at accept: no answer at all
        assert stats.trips["max_connections"] == 5
        assert server.admin_url is not None
        assert httpx.get(f"{server.admin_url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{server.admin_url}/readyz").json() == {"status": "ready"}
        metrics = httpx.get(f"{server.admin_url}/metrics").text
        assert 'trackguard_connection_limit_trips_total{limit="max_connections"} 5.0' in metrics
        assert "trackguard_open_connections 3.0" in metrics
        # The held connections still work, and a freed slot is taken again.
        held[0].sendall(track_request())
        assert read_one(held[0]) == (200, b"{}\n")
        held[1].close()
        wait_for(lambda: stats.open_connections == 2)
        with connect(server) as again:
            again.sendall(track_request())
            assert read_one(again) == (200, b"{}\n")
        for sock in held:
            sock.close()


def test_the_admin_listener_serves_only_operations_paths(tmp_path: Path) -> None:
    with serving(tmp_path) as (_, server):
        assert server.admin_url is not None
        missing = httpx.post(f"{server.admin_url}{'/api/v1/customers/42/events'}", content=b"{}")
        assert missing.status_code == 404
        assert missing.json() == {
            "meta": {"errors": ["not found: this listener serves /healthz, /readyz and /metrics"]}
        }
        # The public port keeps answering the operations paths (the compatible default).
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}


def test_the_admin_listener_keeps_its_own_ceiling(tmp_path: Path) -> None:
    limits = ConnectionLimits(max_connections=1)
    with serving(tmp_path, limits) as (_, server):
        assert server.admin_url is not None
        admin_host, admin_port = server.admin_url.removeprefix("http://").split(":")
        probes = [socket.create_connection((admin_host, int(admin_port))) for _ in range(5)]
        try:
            assert httpx.get(f"{server.admin_url}/healthz").status_code == 200
        finally:
            for sock in probes:
                sock.close()


def test_a_large_body_answered_before_it_is_read_ends_the_connection(tmp_path: Path) -> None:
    """The 401 reaches a client that is still sending: more than the server reads before it
    answers (uvicorn stops reading at 64 KiB), so the close must not reset the connection."""
    with serving(tmp_path) as (_, server), connect(server) as sock:
        head = f"POST {TRACK} HTTP/1.1\r\nhost: x\r\ncontent-length: {1 << 30}\r\n\r\n"

        def pour() -> None:  # no credentials, 1 GiB announced, 1 MiB sent
            with contextlib.suppress(OSError):  # the server stops reading, and later closes
                sock.sendall(head.encode() + b"0" * (1 << 20))

        sender = threading.Thread(target=pour)
        sender.start()
        try:
            response = read_answer(sock)  # the server ends the connection after its answer
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender
            sender.join(10)
        assert response.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        assert b"\r\nconnection: close\r\n" in response
        assert response.endswith(b"\r\n\r\n" + pretty({"meta": {"errors": [UNAUTHORIZED]}}))


def test_a_401_closes_the_connection_even_after_a_small_body(tmp_path: Path) -> None:
    """Unauthenticated traffic gets nothing more from a connection than its one answer."""
    with serving(tmp_path) as (_, server), connect(server) as sock:
        unauthenticated = track_request().replace(b"authorization", b"x-no-auth")
        sock.sendall(unauthenticated)
        assert read_one(sock)[0] == 401
        sock.settimeout(10)
        assert sock.recv(1) == b""  # closed by the server, not kept alive
