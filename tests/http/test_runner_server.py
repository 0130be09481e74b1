"""The runner: ``parse_listen``, and serving over real loopback HTTP(S) from a thread."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.http.asgi import Receive, Scope, Send, lifespan, send_json
from trackguard.http.runner import (
    RunningServer,
    base_url,
    bind,
    parse_listen,
    start_in_thread,
)

if TYPE_CHECKING:
    import ssl

    from conftest import TLSFiles


class SlowApp:
    """Answers ``{"path": ...}`` after ``delay`` seconds; records lifespan events."""

    def __init__(self, delay: float = 0.0, *, fail_startup: bool = False) -> None:
        self.delay = delay
        self.fail_startup = fail_startup
        self.events: list[str] = []

    async def _startup(self) -> None:
        if self.fail_startup:
            raise RuntimeError("no database")
        self.events.append("startup")

    async def _shutdown(self) -> None:
        self.events.append("shutdown")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, startup=self._startup, shutdown=self._shutdown)
            return
        await asyncio.sleep(self.delay)
        await send_json(send, 200, {"path": scope["path"]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8090", ("127.0.0.1", 8090)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:443", ("::1", 443)),
        (" 0.0.0.0:65535 ", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8090", "'8090': expected HOST:PORT, e.g. 127.0.0.1:8090"),
        (":8090", "':8090': the host is missing, e.g. 127.0.0.1:8090"),
        ("host:http", "'host:http': the port must be a number from 0 to 65535"),
        ("host:70000", "'host:70000': the port must be a number from 0 to 65535"),
        ("host:-1", "'host:-1': the port must be a number from 0 to 65535"),
        ("host:", "'host:': the port must be a number from 0 to 65535"),
        ("::1:80", "'::1:80': write an IPv6 address in brackets, e.g. [::1]:8090"),
        ("[::1]80", "'[::1]80': an IPv6 address is written [ADDRESS]:PORT"),
        ("[nope]:80", "'[nope]:80': 'nope' is not an IPv6 address"),
        ("[]:80", "'[]:80': '' is not an IPv6 address"),
    ],
)
def test_parse_listen_explains_mistakes(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_listen(text)
    assert str(info.value) == message


_HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
)


@given(_HOSTS, st.integers(0, 65535))
def test_parse_listen_round_trips(host: str, port: int) -> None:
    assert parse_listen(f"{host}:{port}") == (host, port)


@given(st.ip_addresses(v=6), st.integers(0, 65535))
def test_parse_listen_round_trips_ipv6(address: Any, port: int) -> None:
    assert parse_listen(f"[{address}]:{port}") == (str(address), port)


@given(st.text(max_size=30))
def test_parse_listen_never_fails_otherwise(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ValueError as exc:
        assert str(exc).startswith(repr(text))
    else:
        assert host and 0 <= port <= 65535


def test_base_url() -> None:
    assert base_url("127.0.0.1", 80, tls=False) == "http://127.0.0.1:80"
    assert base_url("::1", 8443, tls=True) == "https://[::1]:8443"


def test_port_zero_binds_a_real_port_and_stop_closes_it(plain_context: ssl.SSLContext) -> None:
    app = SlowApp()
    with start_in_thread(app) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        with httpx.Client(verify=plain_context) as client:
            response = client.get(f"{server.url}/hello")
        assert response.json() == {"path": "/hello"}
        assert app.events == ["startup"]
    assert app.events == ["startup", "shutdown"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_explicit_port_and_port_in_use(plain_context: ssl.SSLContext) -> None:
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    with start_in_thread(SlowApp(), port=port) as server:
        assert server.port == port
        with pytest.raises(OSError):
            start_in_thread(SlowApp(), port=port)


def test_tls_serves_https_with_the_given_certificate(
    tls_files: TLSFiles, tls_context: ssl.SSLContext
) -> None:
    with start_in_thread(SlowApp(), tls_cert=tls_files.cert, tls_key=tls_files.key) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        with httpx.Client(verify=tls_context) as client:
            assert client.get(f"{server.url}/secure").json() == {"path": "/secure"}


def test_tls_needs_both_files_and_valid_ones(tls_files: TLSFiles, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="TLS needs both a certificate and a key file"):
        start_in_thread(SlowApp(), tls_cert=tls_files.cert)
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(OSError):  # ssl.SSLError, raised in the caller's thread
        start_in_thread(SlowApp(), tls_cert=bogus, tls_key=bogus)


def test_failed_startup_is_reported() -> None:
    with pytest.raises(RuntimeError, match="server failed to start"):
        start_in_thread(SlowApp(fail_startup=True))


def test_stop_lets_in_flight_requests_finish(plain_context: ssl.SSLContext) -> None:
    server = start_in_thread(SlowApp(delay=0.3))
    results: list[int] = []

    def call() -> None:
        with httpx.Client(verify=plain_context) as client:
            results.append(client.get(f"{server.url}/slow").status_code)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.1)
    server.stop()
    caller.join(5)
    assert results == [200]


def _keep_idle_connections_open(server: RunningServer) -> None:
    """uvicorn closes a keep-alive connection after 5 s idle; a test that inspects one must not
    depend on reaching it sooner, so connections accepted from now on stay open for an hour."""
    server._server.config.timeout_keep_alive = 3600


def _server_side_nodelay(server: RunningServer) -> list[int]:
    """``TCP_NODELAY`` of each connection the server holds open (read from the server side)."""
    sockets = [
        connection.transport.get_extra_info("socket")
        for connection in list(server._server.server_state.connections)
    ]
    return [sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in sockets]


def _nodelay_of_a_connection_accepted_by_asyncio(listening: socket.socket) -> int:
    """Serve ``listening`` with the standard library loop; ``TCP_NODELAY`` of what it accepts."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 10)  # a hang guard only
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(main())


def test_listening_socket_is_tcp_so_responses_are_not_held_by_nagle(
    plain_context: ssl.SSLContext,
) -> None:
    # With Nagle's algorithm on, a response body waits ~40 ms behind its headers for the
    # client's delayed ACK: every connection the server accepts must have TCP_NODELAY.
    sock = bind("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only then
    assert _nodelay_of_a_connection_accepted_by_asyncio(sock) != 0
    with start_in_thread(SlowApp()) as server, httpx.Client(verify=plain_context) as client:
        _keep_idle_connections_open(server)
        for _ in range(3):
            assert client.post(f"{server.url}/x", content=b"{}").status_code == 200
        nodelay = _server_side_nodelay(server)  # the client's pooled connection is still open
    assert len(nodelay) == 1
    assert nodelay[0] != 0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_stopping_tls_does_not_wait_for_idle_keep_alive_clients(
    tls_files: TLSFiles, tls_context: ssl.SSLContext
) -> None:
    app = SlowApp()
    uvicorn_log = logging.getLogger("uvicorn.error")
    records = _Records()
    uvicorn_log.addHandler(records)
    try:
        server = start_in_thread(app, tls_cert=tls_files.cert, tls_key=tls_files.key)
        _keep_idle_connections_open(server)
        with httpx.Client(verify=tls_context) as client:
            client.get(f"{server.url}/idle")  # the pooled connection stays open
            assert len(server._server.server_state.connections) == 1
            server.stop()
    finally:
        uvicorn_log.removeHandler(records)
    # The drain ended because the idle connection was closed, not because the grace period
    # ran out (uvicorn then logs the timeout and cancels what is left, connections stay open).
    assert server._server.server_state.connections == set()
    assert not any("timeout graceful shutdown exceeded" in m for m in records.messages)
    assert app.events == ["startup", "shutdown"]


_FROZEN_APP = """
import gc, sys
from trackguard.http.asgi import send_json
from trackguard.http.runner import run

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send_json(send, 200, {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()})

run(app, "127.0.0.1", 0, ready=lambda url: print(url, flush=True))
"""


def test_a_served_process_freezes_what_start_up_built() -> None:
    """``run`` (what ``trackguard serve`` and each worker call) takes start-up's objects out of
    the collector's walks, and leaves the collector on for what requests create."""
    command = [sys.executable, "-c", _FROZEN_APP]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            url = child.stdout.readline().strip()
            answer = httpx.get(url, timeout=10).json()
        finally:
            child.terminate()
        assert child.wait(20) == 0
    assert answer["enabled"] is True
    assert answer["frozen"] > 10_000  # the modules of trackguard, uvicorn and httpx at least


def test_a_server_in_a_thread_leaves_the_collector_alone() -> None:
    """A server started in a thread shares its process (tests, the demo): freezing there would
    keep every object alive at that moment for good."""
    before = gc.get_freeze_count()
    with start_in_thread(SlowApp()) as server:
        assert httpx.get(server.url).status_code == 200
    assert gc.get_freeze_count() == before
