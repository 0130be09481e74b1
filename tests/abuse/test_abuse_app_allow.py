"""A 405 names the methods the path takes (``Allow``), from the gateway and the emulator alike."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from app_env import API_KEY, SITE_ID, serve

from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread

METHOD_NOT_ALLOWED = b'{\n  "meta": {\n    "errors": [\n      "method not allowed"\n    ]\n  }\n}\n'
HUGE = b"x" * (1024 * 1024 + 1)


@pytest.mark.parametrize(
    ("method", "path", "body", "allow"),
    [
        ("GET", "/api/v1/customers/42/events", b"", "POST"),
        ("POST", "/api/v1/customers/42", b"{}", "DELETE, PUT"),
        ("PATCH", "/api/v1/customers/42/events", HUGE, "POST"),  # refused unread, same answer
    ],
)
def test_405_names_the_allowed_methods(
    tmp_path: Path, method: str, path: str, body: bytes, allow: str
) -> None:
    with serve(tmp_path) as gw, gw.client() as client:
        gateway = client.request(method, path, content=body)
    emulator = create_emulator(SITE_ID, API_KEY)
    with start_in_thread(emulator) as server:
        upstream = httpx.request(
            method, server.url + path, content=body, auth=(SITE_ID, API_KEY), timeout=10
        )
    for answer in (gateway, upstream):
        assert (answer.status_code, answer.headers["allow"]) == (405, allow)
        assert answer.content == METHOD_NOT_ALLOWED
