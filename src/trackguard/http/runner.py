"""Serve an ASGI app with uvicorn: blocking for the CLI, in a thread for tests and the demo.

The socket is bound here, not by uvicorn, so port 0 yields the real port before serving
starts and a CLI can print its URL. ``run`` stops gracefully on SIGTERM and SIGINT and then
returns normally (uvicorn alone re-raises the signal after shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from trackguard.http.asgi import ASGIApp

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_GRACE_SECONDS: Final = 5
_START_TIMEOUT: Final = 10.0

PathLike = str | Path


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (IPv6 as ``"[::1]:PORT"``) as ``(host, port)``; ValueError if malformed."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{value!r}: an IPv6 address is written [ADDRESS]:PORT")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8090")
        if ":" in host:
            raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. [::1]:8090")
    if not host:
        raise ValueError(f"{value!r}: the host is missing, e.g. 127.0.0.1:8090")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{value!r}: the port must be a number from 0 to 65535")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{value!r}: the port must be a number from 0 to 65535")
    return host, port


def base_url(host: str, port: int, *, tls: bool) -> str:
    """The URL clients use for a bound address."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket.

    It is created with ``proto=IPPROTO_TCP`` on purpose: asyncio sets ``TCP_NODELAY`` only on
    connections whose socket says TCP, and without it Nagle's algorithm holds every response
    body back ~40 ms behind its headers (``socket.create_server`` leaves ``proto`` at 0).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _config(
    app: ASGIApp,
    host: str,
    port: int,
    tls_cert: PathLike | None,
    tls_key: PathLike | None,
    log_level: str,
    *,
    own_logging: bool,
) -> uvicorn.Config:
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both a certificate and a key file")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="none",
        lifespan="auto",
        log_level=log_level,
        log_config=LOGGING_CONFIG if own_logging else None,
        access_log=own_logging,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=_GRACE_SECONDS,
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    )
    config.load()  # fail here, in the caller's thread, on a bad certificate or app
    return config


class _Server(uvicorn.Server):
    """A uvicorn server that reports readiness and returns normally after a signal."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready is not None:
            self._ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown, without waiting on idle TLS clients.

        Closing a TLS connection waits for the client's ``close_notify``, which an idle
        keep-alive client (every SDK's pool) never sends, so each stop would last the whole
        grace period. Connections that uvicorn is already closing and that have nothing left
        to write are aborted instead; in-flight requests still finish.
        """
        closing = asyncio.ensure_future(super().shutdown(sockets))
        while self.config.is_ssl and not closing.done():
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if (  # duck-typed: uvloop's transports are not asyncio.Transport subclasses
                    transport is not None
                    and transport.is_closing()
                    and transport.get_write_buffer_size() == 0
                ):
                    transport.abort()
            await asyncio.wait({closing}, timeout=0.05)
        await closing

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def handle(sig: int, frame: FrameType | None) -> None:
            self.handle_exit(sig, frame)

        for sig in _SIGNALS:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and return.

    ``ready`` is called with the base URL (real port included) once the server accepts
    connections.
    """
    config = _config(app, host, port, tls_cert, tls_key, log_level, own_logging=True)
    sock = _bind(host, port)
    url = base_url(host, sock.getsockname()[1], tls=tls_cert is not None)
    server = _Server(config, None if ready is None else (lambda: ready(url)))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class RunningServer:
    """A server running in a background thread; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, *, tls: bool
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]
        self.url: str = base_url(self.host, self.port, tls=tls)

    def stop(self, timeout: float = _GRACE_SECONDS + 5.0) -> None:
        """Stop accepting, let in-flight requests finish, and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
) -> RunningServer:
    """Start serving in a daemon thread and return once connections are accepted."""
    config = _config(app, host, port, tls_cert, tls_key, "warning", own_logging=False)
    sock = _bind(host, port)
    started = threading.Event()
    server = _Server(config, started.set)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            failure.append(exc)
        finally:
            started.set()

    name = f"trackguard-server-{sock.getsockname()[1]}"
    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    if not started.wait(_START_TIMEOUT) or failure or not server.started:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        sock.close()
        reason = repr(failure[0]) if failure else "it did not start in time"
        raise RuntimeError(f"server failed to start: {reason}")
    return RunningServer(server, thread, sock, tls=tls_cert is not None)
