"""Serve an ASGI app with uvicorn: blocking for the CLI, in a thread for tests and the demo.

The socket is bound here, not by uvicorn, so port 0 yields the real port before serving
starts and a CLI can print its URL. ``run`` stops gracefully on SIGTERM and SIGINT and then
returns normally (uvicorn alone re-raises the signal after shutting down).

Connections go through :mod:`trackguard.http.guard` (uvicorn's httptools protocol with the
header, body and connection limits of :class:`ConnectionLimits`). An optional admin listener
serves the app's operations paths on a second socket in the same event loop, with its own
connection ceiling, so health checks answer while the public one is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import resource
import signal
import socket
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from trackguard.http.admin import ops_only
from trackguard.http.asgi import ASGIApp
from trackguard.http.guard import protocol_class
from trackguard.http.limits import ConnectionLimits, ConnectionStats

log = logging.getLogger("trackguard.http")

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_GRACE_SECONDS: Final = 5
_START_TIMEOUT: Final = 10.0
#: The admin listener's own connection ceiling: scrapers and probes, not clients.
ADMIN_MAX_CONNECTIONS: Final = 100
#: Descriptors kept free beside the connections: the store, logs, upstream, the admin port.
_SPARE_FILES: Final = ADMIN_MAX_CONNECTIONS + 156

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


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one, read back with
    ``getsockname``), for the servers here and for ``serve --workers``, which binds once in the
    parent so every worker process accepts on the same socket.

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
    limits: ConnectionLimits,
    stats: ConnectionStats,
    lifespan: str = "auto",
    grace: float = _GRACE_SECONDS,
) -> uvicorn.Config:
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both a certificate and a key file")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(limits, stats),
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]  # float works
        ws="none",
        lifespan=lifespan,  # type: ignore[arg-type]
        log_level=log_level,
        log_config=LOGGING_CONFIG if own_logging else None,
        access_log=own_logging,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=grace,  # type: ignore[arg-type]  # a float works
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
    )
    config.load()  # fail here, in the caller's thread, on a bad certificate or app
    return config


class _Admin:
    """The admin listener: a second uvicorn server in the public server's event loop."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        self.server = _AdminServer(config)
        self.sock = sock
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        return self.server.started

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


class _AdminServer(uvicorn.Server):
    """The admin server leaves signals to the public one, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _freeze_startup_heap() -> None:
    """Move what start-up built (modules, the plan, the app: about 46,000 objects) out of the
    garbage collector's reach.

    A full collection walks every tracked object; with these in it, each one paused the event
    loop for 26-33 ms, and every request waiting meanwhile was answered that much later (the
    p99 at half load fell from 11.6 to 7.9 ms without them; ``bench/gateway.py``). What
    start-up built lives as long as the process, so nothing is lost by never collecting it.
    Only for a process that serves and exits: objects alive now are never collected again.
    """
    gc.collect()  # start-up's garbage goes first, so it is not kept for good
    gc.freeze()
    log.debug(
        "start-up's %d objects frozen out of the garbage collector's walks", gc.get_freeze_count()
    )


class _Server(uvicorn.Server):
    """A uvicorn server that reports readiness and returns normally after a signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        ready: Callable[[], None] | None,
        admin: _Admin | None = None,
        *,
        freeze: bool = False,
    ) -> None:
        super().__init__(config)
        self._ready = ready
        self._admin = admin
        self._freeze = freeze

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._admin is not None and not await self._admin.start():
            log.error("the admin listener did not start")
            self.should_exit = True
            return
        await super().startup(sockets)
        if not self.started and self._admin is not None:
            await self._admin.stop()
        if self.started and self._freeze:
            _freeze_startup_heap()
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
        if self._admin is not None:  # last, so /readyz answers "shutting down" meanwhile
            await self._admin.stop()

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


def _admin(
    app: ASGIApp,
    listen: tuple[str, int] | None,
    limits: ConnectionLimits,
    log_level: str,
    *,
    own_logging: bool,
    sock: socket.socket | None = None,
) -> _Admin | None:
    """The admin listener for ``listen`` (or the bound ``sock``): plain HTTP, the public
    limits but its own ceiling."""
    if sock is not None:
        host, port = sock.getsockname()[:2]
    elif listen is None:
        return None
    else:
        host, port = listen
    admin_limits = dataclasses.replace(limits, max_connections=ADMIN_MAX_CONNECTIONS)
    config = _config(
        ops_only(app),
        host,
        port,
        None,
        None,
        log_level,
        own_logging=own_logging,
        limits=admin_limits,
        stats=ConnectionStats(),
        lifespan="off",
    )
    return _Admin(config, sock if sock is not None else bind(host, port))


def _ensure_files(limits: ConnectionLimits) -> None:
    """Raise the soft file limit to fit ``max_connections``, or say loudly that it does not:
    at the file limit, accept fails and every request fails with it, health checks included."""
    need = limits.max_connections + _SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning(
            "the open-file limit (%d) is below max_connections + %d (%d): raise `ulimit -n` "
            "or lower --max-connections, or clients will fail at accept",
            soft,
            _SPARE_FILES,
            need,
        )


def run(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
    limits: ConnectionLimits | None = None,
    stats: ConnectionStats | None = None,
    admin_listen: tuple[str, int] | None = None,
    sock: socket.socket | None = None,
    admin_sock: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and return.

    ``ready`` is called with the base URL (real port included) once the server accepts
    connections. ``stats`` receives the limit trips (the gateway exposes them in /metrics).
    ``sock`` and ``admin_sock`` are listening sockets bound already (``serve --workers``
    binds them once in the supervisor); they are closed on return like the ones bound here.
    """
    limits = limits or ConnectionLimits()
    stats = stats or ConnectionStats()
    config = _config(
        app, host, port, tls_cert, tls_key, log_level, own_logging=True, limits=limits, stats=stats
    )
    _ensure_files(limits)
    sock = sock if sock is not None else bind(host, port)
    try:
        admin = _admin(app, admin_listen, limits, log_level, own_logging=True, sock=admin_sock)
    except OSError:
        sock.close()
        raise
    url = base_url(host, sock.getsockname()[1], tls=tls_cert is not None)
    server = _Server(config, None if ready is None else (lambda: ready(url)), admin, freeze=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if admin is not None:
            admin.sock.close()


class RunningServer:
    """A server running in a background thread; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
        *,
        tls: bool,
        admin: _Admin | None = None,
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self._admin = admin
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]
        self.url: str = base_url(self.host, self.port, tls=tls)
        #: The admin listener's URL, when there is one.
        self.admin_url: str | None = None
        if admin is not None:
            admin_host, admin_port = admin.sock.getsockname()[:2]
            self.admin_url = base_url(admin_host, admin_port, tls=False)

    def stop(self, timeout: float = _GRACE_SECONDS + 5.0) -> None:
        """Stop accepting, let in-flight requests finish, and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()
        if self._admin is not None:
            self._admin.sock.close()

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
    limits: ConnectionLimits | None = None,
    stats: ConnectionStats | None = None,
    admin_listen: tuple[str, int] | None = None,
    grace: float = _GRACE_SECONDS,
) -> RunningServer:
    """Start serving in a daemon thread and return once connections are accepted.

    ``grace`` is how long ``stop()`` lets requests in flight finish before they are answered
    503 (JSON) and cancelled.
    """
    limits = limits or ConnectionLimits()
    stats = stats or ConnectionStats()
    config = _config(
        app,
        host,
        port,
        tls_cert,
        tls_key,
        "warning",
        own_logging=False,
        limits=limits,
        stats=stats,
        grace=grace,
    )
    sock = bind(host, port)
    try:
        admin = _admin(app, admin_listen, limits, "warning", own_logging=False)
    except OSError:
        sock.close()
        raise
    started = threading.Event()
    server = _Server(config, started.set, admin)
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
        if admin is not None:
            admin.sock.close()
        reason = repr(failure[0]) if failure else "it did not start in time"
        raise RuntimeError(f"server failed to start: {reason}")
    return RunningServer(server, thread, sock, tls=tls_cert is not None, admin=admin)
