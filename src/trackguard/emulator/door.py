"""What the emulator's two API doors (Track and Pipelines) do alike around their contracts:
read the capped body, and answer an injected fault."""

from __future__ import annotations

from collections.abc import Callable

from trackguard.emulator.faults import Decision
from trackguard.http.asgi import (
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    read_body,
    send_response,
)


async def read_capped(
    scope: Scope, receive: Receive, send: Send, limit: int
) -> tuple[bytes, bool] | None:
    """``(body, refused)``: ``refused`` when the body was over ``limit`` and left unread (the
    body is then ``b""``). None when the request is over: a 408 went out, or the client left."""
    try:
        return await read_body(scope, receive, limit), False
    except BodyTooLarge:
        return b"", True
    except BodyTimeout:
        await send_response(send, 408, b"", headers=[("connection", "close")])
    except ClientDisconnected:
        pass
    return None


def fault_answer(
    decision: Decision, body_of: Callable[[int], bytes]
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body and headers for a request a fault hit (``decision.status`` is set)."""
    status = decision.status if decision.status is not None else 500
    headers = [] if decision.retry_after is None else [("retry-after", str(decision.retry_after))]
    return status, body_of(status), headers
