"""The emulator's read and control API under ``/_emulator/``, for tests and demos.

Open to loopback clients; anyone else must send the emulator's Basic credentials, so binding
to a public address does not publish the data. Answers are compact JSON.

=======  ===============================  ================================================
GET      /_emulator/people                every person, oldest first
GET      /_emulator/people/{identifier}   one person by id, email or ``cio_<cio_id>`` (404)
GET      /_emulator/events                ``?person=&name=&anonymous_id=&type=`` filters
GET      /_emulator/objects               objects with attributes and related people
GET      /_emulator/segments              manual segment id -> member cio_ids
GET      /_emulator/activity              form submissions, delivery metrics, failures
GET      /_emulator/requests              recent Track requests in request-log format
GET      /_emulator/pipelines/calls       accepted Pipelines calls as sent, ``?type=&userId=``
GET      /_emulator/pipelines/dropped     Pipelines calls dropped, with the reasons
GET      /_emulator/stats                 counts by status, events, duplicates, peak rates
POST     /_emulator/reset                 forget state, requests and statistics
GET      /_emulator/faults                the fault configuration and injected count
POST     /_emulator/faults                replace it (``{}`` clears); 400 if invalid
=======  ===============================  ================================================
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote

import msgspec

from trackguard.emulator.faults import FaultConfigError
from trackguard.http.asgi import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    read_body,
    send_json,
)

if TYPE_CHECKING:
    from trackguard.emulator.app import Emulator

PREFIX: Final = "/_emulator"
_MAX_CONTROL_BODY: Final = 64 * 1024
_GET_VIEWS: Final = ("people", "events", "objects", "segments", "activity", "requests", "stats")


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _error(message: str) -> dict[str, str]:
    return {"error": message}


async def _not_allowed(send: Send, allow: str) -> None:
    await send_json(send, 405, _error("method not allowed"), headers=[("allow", allow)])


async def handle(emulator: Emulator, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one ``/_emulator/…`` request."""
    if not _loopback(scope) and not emulator.authorized(scope):
        await send_json(send, 401, _error("credentials required from non-loopback clients"))
        return
    method = scope["method"]
    raw = bytes(scope.get("raw_path") or scope["path"].encode()).decode("utf-8", "replace")
    parts = raw[len(PREFIX) :].strip("/").split("/")
    name = parts[0]
    query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("utf-8", "replace")))
    if name == "people" and len(parts) == 2:
        if method != "GET":
            await _not_allowed(send, "GET")
            return
        person = emulator.state.person_view(unquote(parts[1]))
        if person is None:
            await send_json(send, 404, _error("no such person"))
        else:
            await send_json(send, 200, person)
        return
    if name == "pipelines" and len(parts) == 2 and parts[1] in ("calls", "dropped"):
        if method != "GET":
            await _not_allowed(send, "GET")
            return
        store = emulator.pipelines
        if parts[1] == "calls":
            view: Any = store.calls_view(type=query.get("type"), user_id=query.get("userId"))
        else:
            view = store.dropped_view()
        await send_json(send, 200, view)
        return
    if len(parts) != 1:
        await send_json(send, 404, _error("not found"))
        return
    if name in _GET_VIEWS:
        if method != "GET":
            await _not_allowed(send, "GET")
            return
        await send_json(send, 200, _view(emulator, name, query))
    elif name == "reset":
        if method != "POST":
            await _not_allowed(send, "POST")
            return
        emulator.reset()
        await send_json(send, 200, {"reset": True})
    elif name == "faults":
        await _faults(emulator, scope, receive, send, method)
    else:
        await send_json(send, 404, _error("not found"))


def _view(emulator: Emulator, name: str, query: dict[str, str]) -> Any:
    state = emulator.state
    if name == "people":
        return state.people_view()
    if name == "events":
        return state.events_view(
            person=query.get("person"),
            name=query.get("name"),
            anonymous_id=query.get("anonymous_id"),
            type=query.get("type"),
        )
    if name == "objects":
        return state.objects_view()
    if name == "segments":
        return state.segments_view()
    if name == "activity":
        return state.activity_view()
    if name == "requests":
        return emulator.log.snapshot()
    return emulator.stats()


async def _faults(
    emulator: Emulator, scope: Scope, receive: Receive, send: Send, method: str
) -> None:
    if method == "GET":
        await send_json(send, 200, emulator.faults.to_dict())
        return
    if method != "POST":
        await _not_allowed(send, "GET, POST")
        return
    try:
        body = await read_body(scope, receive, _MAX_CONTROL_BODY)
    except BodyTooLarge:
        await send_json(send, 413, _error("fault configuration is too large"))
        return
    except ClientDisconnected:
        return
    try:
        config = msgspec.json.decode(body) if body.strip() else {}
        emulator.faults.update(config)
    except msgspec.DecodeError:
        await send_json(send, 400, _error("the body must be a JSON object"))
        return
    except FaultConfigError as exc:
        await send_json(send, 400, _error(str(exc)))
        return
    await send_json(send, 200, emulator.faults.to_dict())
