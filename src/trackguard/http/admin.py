"""The admin listener's app: the operations paths of an app, and nothing else.

Health checks and scrapes get a socket of their own (``serve --admin-listen``), so a flood on
the public port, or the public connection ceiling, never makes a healthy gateway look dead.
"""

from __future__ import annotations

from typing import Final

from trackguard.contract.responses import pretty
from trackguard.http.asgi import ASGIApp, Receive, Scope, Send, send_response

OPS_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_NOT_FOUND: Final = pretty(
    {"meta": {"errors": ["not found: this listener serves /healthz, /readyz and /metrics"]}}
)


def ops_only(app: ASGIApp) -> ASGIApp:
    """``app`` restricted to :data:`OPS_PATHS` (any other path is 404); no lifespan, because
    the public server runs the app's startup and shutdown."""

    async def admin(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] in OPS_PATHS:
            await app(scope, receive, send)
        else:
            await send_response(send, 404, _NOT_FOUND)

    return admin
