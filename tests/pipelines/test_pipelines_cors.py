"""CORS on the gateway's Pipelines door, over loopback: the exact headers a browser gets, which
answers let the page see them (and so stop the browser SDK from resending), the preflight, and
``--pipelines-origin``'s allow-list."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pipelines_env import WRITE_KEY
from test_pipelines_gateway import Door, door, track

from trackguard.cli import main
from trackguard.gateway.cors import Cors, OriginError, normalize_origin
from trackguard.store.base import StoreError

__all__ = ["door"]  # the fixture

SHOP = "https://shop.example"
#: What the browser SDK sends: text/plain, the key in the body, from the page's origin.
BROWSER = {"content-type": "text/plain", "origin": SHOP}
PREFLIGHT = [
    ("access-control-allow-methods", "POST"),
    (
        "access-control-allow-headers",
        "authorization, content-encoding, content-type, x-strict-mode",
    ),
    ("access-control-max-age", "7200"),
]
REFUSED = {
    "code": "origin_not_allowed",
    "message": "origin not allowed",
    "meta": {"errors": ["origin not allowed"]},
}


def cors(response: httpx.Response) -> list[tuple[str, str]]:
    """The answer's CORS and Vary headers, in order."""
    return [
        (k, v)
        for k, v in response.headers.items()
        if k.startswith("access-control-") or k == "vary"
    ]


def browser_call(mid: str, **extra: Any) -> bytes:
    body = {k: v for k, v in track(mid).items() if k != "type"} | {"writeKey": WRITE_KEY}
    return json.dumps(body | extra).encode()


def test_origins_are_normalised_and_anything_else_refused() -> None:
    assert normalize_origin(" HTTPS://Shop.Example:8443 ") == "https://shop.example:8443"
    for bad in ("shop.example", "ftp://shop.example", "https://", "https://shop.example/"):
        with pytest.raises(OriginError) as raised:
            normalize_origin(bad)
        assert str(raised.value) == (
            f"{bad!r} is not an origin: give scheme://host[:port], such as https://shop.example"
        )


def test_the_headers_for_any_origin_and_for_a_list() -> None:
    anyone = Cors()
    assert anyone.headers(SHOP) == anyone.headers(None) == [("access-control-allow-origin", "*")]
    assert anyone.allows("https://other.example")
    listed = Cors(["https://Shop.Example"])
    assert listed.headers(SHOP) == [("access-control-allow-origin", SHOP), ("vary", "Origin")]
    assert listed.headers("https://other.example") == listed.headers(None) == [("vary", "Origin")]
    assert (listed.allows(SHOP), listed.allows(None), listed.allows("null")) == (True, True, False)
    assert listed.preflight(SHOP) == [*listed.headers(SHOP), *PREFLIGHT]


def test_every_settling_answer_allows_any_origin(door: Callable[..., Door]) -> None:
    d = door()
    url = d.server.url
    with httpx.Client(base_url=url, timeout=10) as client:
        ok = client.post("/v1/t", content=browser_call("c-1"), headers=BROWSER)
        invalid = client.post("/v1/t", content=browser_call("c-2", event=""), headers=BROWSER)
        wrong_key = client.post(
            "/v1/t", content=browser_call("c-3", writeKey="not-the-key"), headers=BROWSER
        )
        batch = client.post(
            "/v1/batch", json={"batch": [track("c-4")]}, auth=(WRITE_KEY, ""), headers=BROWSER
        )
        unknown = client.post("/v1/x", content=b"{}", headers=BROWSER)
        method = client.get("/v1/t", headers={"origin": SHOP})
        telemetry = client.post("/v1/m", content=b'{"series":[]}', headers=BROWSER)
    answers = [ok, invalid, wrong_key, batch, unknown, method, telemetry]
    assert [(a.status_code, cors(a)) for a in answers] == [
        (status, [("access-control-allow-origin", "*")])
        for status in (200, 200, 200, 200, 404, 405, 200)
    ]
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["c-1", "c-4"]
    assert [r.codes for r in d.quarantine()] == [("event_invalid",)]


def test_a_preflight_is_answered_204_without_a_key_or_a_body(door: Callable[..., Door]) -> None:
    d = door()
    asks = {
        "origin": SHOP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-strict-mode",
    }
    answers = [httpx.options(d.server.url + path, headers=asks) for path in ("/v1/t", "/v1/batch")]
    assert [(a.status_code, a.content, cors(a)) for a in answers] == [
        (204, b"", [("access-control-allow-origin", "*"), *PREFLIGHT])
    ] * 2
    unknown = httpx.options(d.server.url + "/v1/nope", headers=asks)
    assert (unknown.status_code, cors(unknown)) == (404, [("access-control-allow-origin", "*")])
    assert d.app.parts.metrics.requests["other", 204] == 2  # counted, and in the request log
    assert d.quarantine() == []


def test_a_store_failure_is_a_503_the_page_cannot_read_so_the_sdk_resends(
    door: Callable[..., Door], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = door()
    store = d.app.parts.store
    healthy = store.commit

    def full(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, "commit", healthy)  # fails once
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "commit", full)
    url = d.server.url + "/v1/t"
    first, again = (httpx.post(url, content=browser_call("r-1"), headers=BROWSER) for _ in "12")
    assert (first.status_code, cors(first)) == (503, [])
    assert first.json()["code"] == "unavailable"
    assert (again.status_code, again.content, cors(again)) == (
        200,
        b"{}",
        [("access-control-allow-origin", "*")],
    )
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["r-1"]


def test_an_origin_list_names_the_origin_and_refuses_the_others(
    door: Callable[..., Door], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trackguard.gateway")
    d = door(pipelines_origins=("https://Shop.Example",))
    with httpx.Client(base_url=d.server.url, timeout=10) as client:
        listed = client.post("/v1/t", content=browser_call("o-1"), headers=BROWSER)
        other = client.post(
            "/v1/t",
            content=browser_call("o-2"),
            headers=BROWSER | {"origin": "https://elsewhere.example"},
        )
        preflight = client.options("/v1/t", headers={"origin": "https://elsewhere.example"})
        server = client.post("/v1/batch", json={"batch": [track("o-3")]}, auth=(WRITE_KEY, ""))
    assert (listed.status_code, cors(listed)) == (
        200,
        [("access-control-allow-origin", SHOP), ("vary", "Origin")],
    )
    for refused in (other, preflight):
        assert (refused.status_code, refused.json(), cors(refused)) == (403, REFUSED, [])
        assert refused.headers["connection"] == "close"
    assert (server.status_code, cors(server)) == (200, [("vary", "Origin")])
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["o-1", "o-3"]
    assert d.quarantine() == []
    assert d.app.guards.unauthenticated.total == 2
    assert [r.getMessage() for r in caplog.records if r.name == "trackguard.gateway"] == [
        "requests without valid credentials (answered 401): 1 "
        "(127.0.0.1 /v1/t (origin not allowed, answered 403): 1)"
    ]  # the first at once, the next summarised later
    d.server.stop()
    assert "elsewhere" not in (d.log.read_text() if d.log.exists() else "")


def test_serve_refuses_a_pipelines_origin_that_is_not_an_origin(tmp_path: Path) -> None:
    env = {"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k", "TRACKGUARD_CDP_API_KEY": "x"}
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0"]
    result = CliRunner().invoke(main, [*args, "--pipelines-origin", "shop.example"], env=env)
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: --pipelines-origin: 'shop.example' is not an origin: give scheme://host[:port], "
        "such as https://shop.example\n",
    )
