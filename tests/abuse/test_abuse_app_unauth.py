"""Traffic without credentials costs almost nothing: 401 unread and closed, counted, summarised."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from app_env import closed_by_peer, read_response, serve

from trackguard.summary import Summary

SUMMARY = "requests without valid credentials (answered 401)"
EVENTS_ROUTE = "POST /api/v1/customers/{identifier}/events"


def test_a_huge_unauthenticated_body_is_answered_401_unread_and_the_connection_closed(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, request_log=tmp_path / "requests.jsonl") as gw:
        with socket.create_connection(("127.0.0.1", gw.server.port), timeout=5) as sock:
            # Announce 1 GiB and send none of it: the answer must come anyway.
            sock.sendall(
                b"POST /api/v1/customers/42/events HTTP/1.1\r\nhost: x\r\n"
                b"content-type: application/json\r\ncontent-length: 1073741824\r\n\r\n"
            )
            head, body = read_response(sock)
            assert closed_by_peer(sock)
        metrics = gw.metrics()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nconnection: close" in head.lower()
    assert body == b'{\n  "meta": {\n    "errors": [\n      "Unauthorized request"\n    ]\n  }\n}\n'
    assert metrics["trackguard_unauthenticated_requests_total"] == 1.0
    assert metrics["trackguard_request_body_bytes_total"] == 0.0
    assert metrics['trackguard_requests_total{route="other",status="401"}'] == 1.0
    assert (tmp_path / "requests.jsonl").read_bytes() == b""


def test_a_body_already_sent_is_not_read_either(tmp_path: Path) -> None:
    with serve(tmp_path) as gw:
        with socket.create_connection(("127.0.0.1", gw.server.port), timeout=5) as sock:
            sock.sendall(
                b"PUT /api/v1/customers/42 HTTP/1.1\r\nhost: x\r\ncontent-length: 200000\r\n"
                b"authorization: Basic d3Jvbmc6d3Jvbmc=\r\n\r\n" + b"x" * 65536
            )
            head, _ = read_response(sock)
            assert closed_by_peer(sock)
        metrics = gw.metrics()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert metrics["trackguard_request_body_bytes_total"] == 0.0


def test_unauthenticated_requests_are_summarised_not_logged_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trackguard.gateway")
    with serve(tmp_path, request_log=tmp_path / "requests.jsonl") as gw:
        with gw.client(auth=False) as client:
            answers = [client.put(f"/api/v1/customers/{i}", json={}).status_code for i in range(40)]
            answers += [client.post("/nowhere", content=b"{}").status_code for _ in range(10)]
        metrics = gw.metrics()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(SUMMARY)]
    assert answers == [401] * 50
    assert metrics["trackguard_unauthenticated_requests_total"] == 50.0
    # The first at once, the rest in one line at shutdown (the interval is a minute).
    assert lines == [
        f"{SUMMARY}: 1 (127.0.0.1 PUT /api/v1/customers/{{identifier}}: 1)",
        f"{SUMMARY}: 49 (127.0.0.1 PUT /api/v1/customers/{{identifier}}: 39,"
        " 127.0.0.1 POST (no route): 10)",
    ]
    assert (tmp_path / "requests.jsonl").read_bytes() == b""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_summary_writes_at_most_one_line_per_interval_and_bounds_its_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    summary = Summary(logging.getLogger("t.summary"), "x", interval=60, max_keys=3, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.summary"):
        for second in range(180):
            clock.now = 1000.0 + second
            for key in range(10):
                summary.add(f"10.0.0.{key}")
        summary.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert summary.total == 1800
    assert lines == [
        "x: 1 (10.0.0.0: 1)",
        # Each line counts three keys by name and the rest (10.0.0.0 included) as "other".
        "x: 600 (other: 420, 10.0.0.1: 60, 10.0.0.2: 60, 10.0.0.3: 60)",
        "x: 600 (other: 420, 10.0.0.1: 60, 10.0.0.2: 60, 10.0.0.3: 60)",
        "x: 599 (other: 419, 10.0.0.1: 60, 10.0.0.2: 60, 10.0.0.3: 60)",
    ]
