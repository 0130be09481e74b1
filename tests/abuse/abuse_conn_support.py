"""Helpers for the connection-layer abuse tests: a real gateway on loopback with small limits,
and raw sockets to misbehave with."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.limits import ConnectionLimits
from trackguard.http.runner import RunningServer, start_in_thread

SITE_ID = "abuse-site"
API_KEY = "abuse-key"
AUTH = "Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
TRACK = "/api/v1/customers/42/events"
EVENT = b'{"name":"signed_up","data":{"plan":"pro"}}'

#: Limits small enough that every test trips them in well under a second.
FAST = ConnectionLimits(
    max_header_bytes=2048,
    header_timeout=0.3,
    body_gap_timeout=0.3,
    body_timeout=0.8,
    keep_alive_timeout=0.3,
    max_connections=50,
)


def gateway(tmp: Path, limits: ConnectionLimits = FAST) -> Gateway:
    options = GatewayOptions(db=tmp / "tg.db", deliver=False, limits=limits, identity_refresh=0)
    return create_gateway(options, AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))


@contextmanager
def serving(
    tmp: Path, limits: ConnectionLimits = FAST, *, admin: bool = True, grace: float = 5.0
) -> Iterator[tuple[Gateway, RunningServer]]:
    app = gateway(tmp, limits)
    server = start_in_thread(
        app,
        limits=limits,
        stats=app.parts.connections,
        admin_listen=("127.0.0.1", 0) if admin else None,
        grace=grace,
    )
    with server:
        yield app, server


def connect(server: RunningServer, timeout: float = 5.0) -> socket.socket:
    """A raw connection whose reads give up after ``timeout`` seconds (a hang guard)."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def track_request(body: bytes = EVENT, *, keep_alive: bool = True) -> bytes:
    head = (
        f"POST {TRACK} HTTP/1.1\r\nhost: gateway\r\nauthorization: {AUTH}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    )
    if not keep_alive:
        head += "connection: close\r\n"
    return (head + "\r\n").encode() + body


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


#: Bytes read past the end of a response (the next pipelined one), per socket.
_LEFTOVER: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_one(sock: socket.socket) -> tuple[int, bytes]:
    """One response on a keep-alive connection: (status, body). Bytes of the next response
    that arrived with it are kept for the next call (pipelined answers can share a read)."""
    data = _LEFTOVER.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data + body!r}"
        body += chunk
    if len(body) > length:
        _LEFTOVER[sock] = body[length:]
    return int(head[9:12]), body[:length]


def answer(status: str, message: str) -> bytes:
    """The exact bytes of a closing JSON error answer from the connection layer."""
    body = ('{\n  "meta": {\n    "errors": [\n      "' + message + '"\n    ]\n  }\n}\n').encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.005)


class MemoryTransport(asyncio.Transport):
    """A connection's transport in memory: each write the server makes, kept apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.reading = True

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 80)}.get(name, default)
