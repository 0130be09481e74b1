"""The shared ASGI helpers (used by the gateway and the emulator), driven message by message."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract import Request, evaluate, render
from trackguard.http.asgi import (
    BODY_GAP_EXTENSION,
    BodyTooLarge,
    ClientDisconnected,
    Message,
    app_body_timeout,
    credentials_match,
    lifespan,
    parse_basic_auth,
    read_body,
    request_target,
    send_json,
    send_response,
    track_too_large,
    track_unauthorized,
)
from trackguard.http.limits import ConnectionLimits
from trackguard.http.runner import start_in_thread


def feeder(*messages: Message) -> tuple[Any, list[int]]:
    """A ``receive`` that yields ``messages`` and counts calls."""
    queue = list(messages)
    calls = [0]

    async def receive() -> Message:
        calls[0] += 1
        return queue.pop(0)

    return receive, calls


def chunk(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def read(scope: dict[str, Any], receive: Any, limit: int) -> bytes:
    return asyncio.run(read_body(scope, receive, limit))


def test_read_body_joins_chunks_up_to_the_limit() -> None:
    receive, _ = feeder(chunk(b"ab", True), chunk(b"", True), chunk(b"cd"))
    assert read({"headers": []}, receive, 4) == b"abcd"


def test_read_body_refuses_a_declared_length_without_reading() -> None:
    receive, calls = feeder(chunk(b"x"))
    with pytest.raises(BodyTooLarge):
        read({"headers": [(b"content-length", b"5")]}, receive, 4)
    assert calls == [0]


def test_read_body_counts_a_streamed_body() -> None:
    receive, calls = feeder(chunk(b"abc", True), chunk(b"de", True), chunk(b"never"))
    with pytest.raises(BodyTooLarge):
        read({"headers": [(b"transfer-encoding", b"chunked")]}, receive, 4)
    assert calls == [2]


def test_read_body_reports_a_disconnect() -> None:
    receive, _ = feeder(chunk(b"a", True), {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnected):
        read({"headers": []}, receive, 10)


def test_read_body_without_a_timer_takes_one_message_as_received() -> None:
    body = b'{"name":"order_completed"}'
    receive, calls = feeder(chunk(body))
    got = asyncio.run(read_body({"headers": []}, receive, 100, timeout=None))
    assert got is body and calls == [1]


def test_read_body_without_a_timer_counts_one_message_and_every_chunk() -> None:
    receive, calls = feeder(chunk(b"abcde"))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body({"headers": []}, receive, 4, timeout=None))
    assert calls == [1]
    receive, _ = feeder(chunk(b"ab", True), chunk(b"cd"))
    assert asyncio.run(read_body({"headers": []}, receive, 4, timeout=None)) == b"abcd"
    receive, calls = feeder(chunk(b"abc", True), chunk(b"de", True), chunk(b"never"))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body({"headers": []}, receive, 4, timeout=None))
    assert calls == [2]


def test_read_body_without_a_timer_reports_a_disconnect_first() -> None:
    receive, _ = feeder({"type": "http.disconnect"})
    with pytest.raises(ClientDisconnected):
        asyncio.run(read_body({"headers": []}, receive, 10, timeout=None))


def run_send(coro_factory: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(coro_factory(send))
    return sent


def test_send_response_sets_type_and_length() -> None:
    sent = run_send(lambda send: send_response(send, 200, b"{}\n", headers=[("X-A", "1")]))
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", b"3"),
                (b"x-a", b"1"),
            ],
        },
        {"type": "http.response.body", "body": b"{}\n"},
    ]


def test_204_has_no_length_and_no_body() -> None:
    sent = run_send(lambda send: send_response(send, 204, b"ignored"))
    assert sent[0]["headers"] == [(b"content-type", b"application/json; charset=utf-8")]
    assert sent[1]["body"] == b""


def test_send_json_is_compact_with_a_newline() -> None:
    sent = run_send(lambda send: send_json(send, 201, {"a": [1, "é"]}))
    assert sent[1]["body"] == '{"a":[1,"é"]}\n'.encode()
    assert sent[0]["status"] == 201


def test_request_target_keeps_percent_encoding_and_query() -> None:
    scope = {"path": "/a/b c", "raw_path": b"/api/v1/customers/a%2Fb", "query_string": b"x=1"}
    assert request_target(scope) == "/api/v1/customers/a%2Fb?x=1"
    assert request_target({"path": "/p", "query_string": b""}) == "/p"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Basic " + base64.b64encode(b"site:key").decode(), ("site", "key")),
        (b"basic " + base64.b64encode(b"site:k:e:y"), ("site", "k:e:y")),
        ("Basic " + base64.urlsafe_b64encode(b"s?te>>:key???").decode(), ("s?te>>", "key???")),
        ("Basic " + base64.b64encode(b"s?te>>:key???").decode(), ("s?te>>", "key???")),
        ("Basic " + base64.b64encode(b"site:key").decode().rstrip("="), ("site", "key")),
        ("Basic " + base64.b64encode(b":").decode(), ("", "")),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Basic " + base64.b64encode("é:ü".encode("latin-1")).decode(), None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic !!!", None),
        (None, None),
    ],
)
def test_parse_basic_auth(value: str | bytes | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(value) == expected


@given(st.text().filter(lambda s: ":" not in s), st.text(), st.booleans(), st.booleans())
def test_parse_basic_auth_round_trips_any_alphabet(
    user: str, password: str, urlsafe: bool, padded: bool
) -> None:
    raw = f"{user}:{password}".encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # lone surrogates are not text a client can send
    token = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    header = "Basic " + (token if padded else token.rstrip("="))
    assert parse_basic_auth(header) == (user, password)


@given(st.binary(max_size=40))
def test_parse_basic_auth_never_raises(value: bytes) -> None:
    parse_basic_auth(b"Basic " + value)


def test_credentials_match() -> None:
    assert credentials_match(("site", "key"), "site", "key")
    assert not credentials_match(("site", "key2"), "site", "key")
    assert not credentials_match(("site2", "key"), "site", "key")
    assert not credentials_match(None, "site", "key")
    assert credentials_match(("sïte", "kéy"), "sïte", "kéy")


def test_track_unauthorized() -> None:
    assert track_unauthorized() == (
        401,
        b'{\n  "meta": {\n    "errors": [\n      "Unauthorized request"\n    ]\n  }\n}\n',
    )


def test_track_too_large_is_what_evaluate_says_for_a_huge_body() -> None:
    huge = b" " * (1024 * 1024 + 1)
    for method, target in [
        ("POST", "/api/v1/customers/1/events"),
        ("POST", "/api/v2/batch"),
        ("GET", "/api/v1/customers/1"),
        ("POST", "/nowhere"),
    ]:
        want = render(evaluate(Request(method=method, path=target, body=huge)))
        assert track_too_large(method, target) == want
    assert track_too_large("POST", "/api/v2/batch")[0] == 413


def test_lifespan_reports_a_failed_startup() -> None:
    async def boom() -> None:
        raise RuntimeError("no database")

    receive, _ = feeder({"type": "lifespan.startup"})
    sent = run_send(lambda send: lifespan(receive, send, startup=boom))
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]


def test_lifespan_runs_both_hooks() -> None:
    ran: list[str] = []

    async def up() -> None:
        ran.append("up")

    async def down() -> None:
        ran.append("down")

    receive, _ = feeder({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    sent = run_send(lambda send: lifespan(receive, send, startup=up, shutdown=down))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ran == ["up", "down"]


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        (None, 30.0),  # a server without the extension: the app times the body itself
        ({}, 30.0),
        ({"http.response.trailers": {}}, 30.0),
        ({BODY_GAP_EXTENSION: {"seconds": 10.25}}, None),  # the server answers first
        ({BODY_GAP_EXTENSION: {"seconds": 30.0}}, 30.0),  # a tie: the app's timer stays
        ({BODY_GAP_EXTENSION: {"seconds": 45.0}}, 30.0),
    ],
)
def test_app_body_timeout_leaves_the_body_to_a_server_that_answers_first(
    extensions: dict[str, Any] | None, expected: float | None
) -> None:
    scope: dict[str, Any] = {"type": "http", "headers": []}
    if extensions is not None:
        scope["extensions"] = extensions
    assert app_body_timeout(scope, 30.0) == expected


def test_the_guarded_server_tells_the_app_its_body_gap() -> None:
    """Under trackguard's server the extension is there, one sweep past the gap timeout."""
    seen: list[tuple[object, float | None, float | None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        gap = scope["extensions"][BODY_GAP_EXTENSION]["seconds"]
        seen.append((gap, app_body_timeout(scope, 3.0), app_body_timeout(scope, 2.5)))
        await read_body(scope, receive, 100, timeout=None)
        await send_response(send, 204, b"")

    limits = ConnectionLimits(body_gap_timeout=2.0, header_timeout=2.0, body_timeout=4.0)
    assert limits.sweep_interval == 0.5
    with start_in_thread(app, limits=limits) as server, httpx.Client() as client:
        for body in (b"one", b"two"):  # two requests on one keep-alive connection
            assert client.post(server.url + "/", content=body).status_code == 204
    assert seen == [(2.5, None, 2.5), (2.5, None, 2.5)]  # 3 s: never first; 2.5 s: a tie
