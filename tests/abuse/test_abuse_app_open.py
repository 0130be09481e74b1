"""The routes Customer.io serves without credentials: a small body cap, a quarantine budget."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from app_env import serve

from trackguard.gateway.app import OPEN_MAX_BODY

TOO_LARGE = b'{\n  "meta": {\n    "errors": [\n      "request body is too large"\n    ]\n  }\n}\n'
DROPPED = "quarantine records dropped over the open routes' budget"


@pytest.mark.parametrize("path", ["/api/v1/metrics", "/push/events", "/unsubscribe/d-1"])
def test_an_open_route_refuses_a_body_over_its_cap(tmp_path: Path, path: str) -> None:
    with serve(tmp_path) as gw, gw.client(auth=False) as client:
        over = client.post(path, content=b" " * (OPEN_MAX_BODY + 1))
        metrics = gw.metrics()
    assert (over.status_code, over.content) == (413, TOO_LARGE)
    assert over.headers["connection"] == "close"
    assert metrics["trackguard_request_body_bytes_total"] == 0.0
    assert gw.quarantine() == []


def test_the_cap_is_configurable_and_authenticated_routes_keep_1_mib(tmp_path: Path) -> None:
    body = b'{"name": "x", "data": {"pad": "' + b"p" * 4000 + b'"}}'
    with serve(tmp_path, plan=None, open_max_body=100) as gw:
        with gw.client(auth=False) as client:
            open_answer = client.post("/api/v1/metrics", content=body)
        with gw.client() as client:
            event = client.post("/api/v1/customers/1/events", content=body)
    assert open_answer.status_code == 413
    assert event.status_code == 200


def test_quarantine_from_open_routes_is_bounded_and_the_rest_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trackguard.gateway")
    with serve(tmp_path, open_quarantine_budget=3) as gw:
        with gw.client(auth=False) as client:
            answers = [
                client.post("/api/v1/metrics", content=b'{"broken": ').status_code
                for _ in range(10)
            ]
        metrics = gw.metrics()
        kept = gw.quarantine()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(DROPPED)]
    # Customer.io's answer does not change; only what trackguard keeps is bounded.
    assert answers == [400] * 10
    assert [(r.route, r.codes) for r in kept] == [("POST /api/v1/metrics", ("invalid_json",))] * 3
    assert metrics["trackguard_open_quarantine_dropped_total"] == 7.0
    assert lines == [
        f"{DROPPED}: 1 (POST /api/v1/metrics: 1)",
        f"{DROPPED}: 6 (POST /api/v1/metrics: 6)",
    ]


def test_authenticated_quarantine_has_no_budget(tmp_path: Path) -> None:
    with serve(tmp_path, open_quarantine_budget=0) as gw:
        with gw.client() as client:
            answers = [
                client.post("/api/v1/customers/1/events", content=b"{").status_code
                for _ in range(5)
            ]
        metrics = gw.metrics()
        kept = gw.quarantine()
    assert answers == [400] * 5
    assert len(kept) == 5
    assert metrics["trackguard_open_quarantine_dropped_total"] == 0.0
