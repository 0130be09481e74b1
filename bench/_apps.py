"""ASGI apps the gateway benchmark serves, built from environment variables (server factories).

``noop`` answers every request 200 ``{}`` without reading anything: the HTTP limit of the
server. ``gateway`` is the real gateway; ``TG_BENCH_DB``, ``TG_BENCH_PLAN``,
``TG_BENCH_UPSTREAM`` (empty: no delivery), ``TG_BENCH_SYNC`` (FULL or NORMAL) and
``TG_BENCH_STATELESS=1`` (no dedupe claims) configure it; ``TG_BENCH_DB`` may be a
``postgresql://`` URL; the Pipelines API is served with the write key ``WRITE_KEY``. ``serve``
runs an app as
``trackguard serve`` does, with the connection limits; ``TG_BENCH_MAX_CONNECTIONS``,
``TG_BENCH_ADMIN_PORT``, ``TG_BENCH_REFUSE=503`` and ``TG_BENCH_PROTOCOL=uvicorn`` (uvicorn's own
httptools protocol, without the limits: the baseline) configure it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http import guard, runner
from trackguard.http.limits import ConnectionLimits, ConnectionStats

SITE_ID = "bench-site"
API_KEY = "bench-key"
WRITE_KEY = "bench-write-key"
_OK = b"{}\n"
_HEADERS = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"3")]


async def _noop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body as any real app must
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _OK})


def noop() -> Any:
    return _noop


def gateway() -> Any:
    upstream = os.environ.get("TG_BENCH_UPSTREAM", "")
    plan = os.environ.get("TG_BENCH_PLAN")
    options = GatewayOptions(
        plan=Path(plan) if plan else None,
        db=db if "://" in (db := os.environ["TG_BENCH_DB"]) else Path(db),
        upstream=upstream or "http://127.0.0.1:9",
        deliver=bool(upstream),
        rate=float(os.environ.get("TG_BENCH_RATE", "100")),
        synchronous="NORMAL" if os.environ.get("TG_BENCH_SYNC") == "NORMAL" else "FULL",
    )
    auth = AuthConfig(upstream=Credentials(SITE_ID, API_KEY), pipelines_key=WRITE_KEY)
    app = create_gateway(options, auth)
    if os.environ.get("TG_BENCH_STATELESS") == "1":
        app.parts.dedupe = None  # no dedupe claims: the baseline for their cost
    return app


def serve(factory: str, port: int) -> None:
    """Serve ``factory``'s app on ``port`` through trackguard's runner, until SIGTERM."""
    app = globals()[factory]()
    guard.REFUSE_WITH_503 = os.environ.get("TG_BENCH_REFUSE") == "503"
    if os.environ.get("TG_BENCH_PROTOCOL") == "uvicorn":
        runner.protocol_class = lambda limits, stats: HttpToolsProtocol  # type: ignore[assignment,misc,return-value]
    admin = os.environ.get("TG_BENCH_ADMIN_PORT")
    max_connections = int(os.environ.get("TG_BENCH_MAX_CONNECTIONS", "1000"))
    runner.run(
        app,
        "127.0.0.1",
        port,
        limits=ConnectionLimits(max_connections=max_connections),
        stats=app.parts.connections if isinstance(app, Gateway) else ConnectionStats(),
        admin_listen=("127.0.0.1", int(admin)) if admin else None,
    )
