"""The ``/_emulator/`` read and control API: routing, errors, and who may use it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from trackguard.emulator import app as emulator_module
from trackguard.emulator.app import create_emulator
from trackguard.http.asgi import Message

if TYPE_CHECKING:
    from conftest import Emu


def test_person_lookup_by_every_identifier_and_404(emu: Emu) -> None:
    emu.client.put("/api/v1/customers/a%2Fb", json={"email": "Ann@Example.com"})
    for identifier in ("a%2Fb", "ann%40example.com", "ANN@EXAMPLE.COM", "cio_00000001"):
        response = emu.client.get(f"/_emulator/people/{identifier}")
        assert (response.status_code, response.json()["id"]) == (200, "a/b")
    missing = emu.client.get("/_emulator/people/nobody")
    assert (missing.status_code, missing.json()) == (404, {"error": "no such person"})


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/_emulator", 404, None),
        ("GET", "/_emulator/", 404, None),
        ("GET", "/_emulator/nope", 404, None),
        ("GET", "/_emulator/people/a/b", 404, None),
        ("POST", "/_emulator/people", 405, "GET"),
        ("DELETE", "/_emulator/people/1", 405, "GET"),
        ("GET", "/_emulator/reset", 405, "POST"),
        ("PUT", "/_emulator/faults", 405, "GET, POST"),
    ],
)
def test_unknown_paths_and_methods(
    emu: Emu, method: str, path: str, status: int, allow: str | None
) -> None:
    response = emu.client.request(method, path)
    assert response.status_code == status
    assert response.headers.get("allow") == allow
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert emu.stats()["requests"] == 0  # control requests are not Track traffic


def test_events_filters(emu: Emu) -> None:
    c = emu.client
    c.post("/api/v1/customers/1/events", json={"name": "a"})
    c.post("/api/v1/customers/1/events", json={"name": "/p", "type": "page"})
    c.post("/api/v1/events", json={"name": "a", "anonymous_id": "x"})
    assert [e["seq"] for e in emu.events()] == [1, 2, 3]
    assert [e["seq"] for e in emu.events(name="a")] == [1, 3]
    assert [e["seq"] for e in emu.events(person="1")] == [1, 2]
    assert [e["seq"] for e in emu.events(person="1", type="page")] == [2]
    assert [e["seq"] for e in emu.events(anonymous_id="x")] == [3]
    assert emu.events(person="2") == []


def call(app: Any, path: str, *, client: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": (client, 5555),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status: int = sent[0]["status"]
    return status


def test_non_loopback_clients_need_the_credentials() -> None:
    app = create_emulator("site", "key")
    auth = [(b"authorization", b"Basic c2l0ZTprZXk=")]
    assert call(app, "/_emulator/people", client="127.0.0.1", headers=[]) == 200
    assert call(app, "/_emulator/people", client="::1", headers=[]) == 200
    assert call(app, "/_emulator/people", client="203.0.113.9", headers=[]) == 401
    assert call(app, "/_emulator/people", client="203.0.113.9", headers=auth) == 200
    assert call(app, "/_emulator/people", client="not-an-ip", headers=[]) == 401
    app.close()


def test_an_internal_error_is_answered_500_and_recorded(
    emu: Emu, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any) -> Any:
        raise TypeError("boom")

    monkeypatch.setattr(emulator_module, "evaluate", broken)
    response = emu.client.put("/api/v1/customers/1", json={})
    assert (response.status_code, response.json()) == (
        500,
        {"meta": {"error": "Internal Server Error"}},
    )
    assert [e["status"] for e in emu.client.get("/_emulator/requests").json()] == [500]
