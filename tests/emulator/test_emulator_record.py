"""The request log: the ``--record`` file, ``/_emulator/requests`` and the traffic statistics."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from trackguard.check.inputs import Located, iter_requests
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.emulator.log import EmulatorLog, _Window, record_line
from trackguard.http.runner import RunningServer, start_in_thread

if TYPE_CHECKING:
    import ssl

    from conftest import Emu

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def recording(
    tmp_path: Path, plain_context: ssl.SSLContext
) -> Iterator[tuple[Path, Emulator, RunningServer, httpx.Client]]:
    path = tmp_path / "requests.jsonl"
    emulator = create_emulator("site", "s3cret-key", record=path)
    with (
        start_in_thread(emulator) as server,
        httpx.Client(
            base_url=server.url, auth=("site", "s3cret-key"), verify=plain_context
        ) as client,
    ):
        yield path, emulator, server, client
    emulator.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_record_file_has_one_exact_line_per_track_request(
    recording: tuple[Path, Emulator, RunningServer, httpx.Client],
) -> None:
    path, emulator, server, client = recording
    client.put(
        "/api/v1/customers/42?x=1",
        content=b'{"plan":"pro"}',
        headers={"content-type": "application/json", "cookie": "c=1"},
    )
    raw = b'{"name":"caf\xe9"}'
    client.post("/api/v1/customers/42/events", content=raw)
    client.get("/_emulator/people")  # the control API is not recorded
    records = lines(path)  # readable while serving: flushed per line
    assert len(records) == 2
    first, second = records
    assert ISO.fullmatch(first.pop("time"))
    assert first == {
        "method": "PUT",
        "path": "/api/v1/customers/42?x=1",
        "headers": {
            "host": server.url.removeprefix("http://"),
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
            "user-agent": f"python-httpx/{httpx.__version__}",
            "content-type": "application/json",
            "cookie": "[redacted]",
            "content-length": "14",
            "authorization": "[redacted]",
        },
        "body": '{"plan":"pro"}',
        "status": 200,
        "response": "{}\n",
    }
    assert second["body"] == '{"name":"caf\ufffd"}'
    assert base64.b64decode(second["body_base64"]) == raw
    assert second["status"] == 400
    assert json.loads(second["response"]) == {
        "meta": {"errors": ["request body must be valid JSON"]}
    }
    assert "s3cret-key" not in path.read_text("utf-8")
    assert emulator.log.snapshot() == [json.loads(line) for line in path.read_text().splitlines()]


def test_record_file_is_appended_and_readable_by_trackguard_check(
    recording: tuple[Path, Emulator, RunningServer, httpx.Client],
) -> None:
    path, _, _, client = recording
    client.put("/api/v1/customers/42", json={"plan": "pro"})
    client.post("/api/v2/batch", json={"batch": [{"type": "person"}]})
    with httpx.Client(base_url=client.base_url) as anonymous:
        anonymous.put("/api/v1/customers/42", json={})
    second = create_emulator("site", "s3cret-key", record=path)
    with start_in_thread(second) as server, httpx.Client(auth=("site", "s3cret-key")) as c:
        c.delete(f"{server.url}/api/v1/customers/42")
    second.close()
    assert [(r["method"], r["status"]) for r in lines(path)] == [
        ("PUT", 200),
        ("POST", 207),
        ("PUT", 401),
        ("DELETE", 200),
    ]
    read = [item for item in iter_requests([path]) if isinstance(item, Located)]
    assert [(i.request.method, i.request.path, i.request.body) for i in read] == [
        ("PUT", "/api/v1/customers/42", b'{"plan":"pro"}'),
        ("POST", "/api/v2/batch", b'{"batch":[{"type":"person"}]}'),
        ("PUT", "/api/v1/customers/42", b"{}"),
        ("DELETE", "/api/v1/customers/42", b""),
    ]


def test_requests_view_and_reset(emu: Emu) -> None:
    emu.client.put("/api/v1/customers/1", json={})
    emu.client.get("/api/v1/nope")
    entries = emu.client.get("/_emulator/requests").json()
    assert [(e["method"], e["path"], e["status"], e["body"]) for e in entries] == [
        ("PUT", "/api/v1/customers/1", 200, "{}"),
        ("GET", "/api/v1/nope", 404, ""),
    ]
    assert emu.client.post("/_emulator/reset").json() == {"reset": True}
    assert emu.client.get("/_emulator/requests").json() == []
    assert emu.people() == []
    assert emu.stats() == {
        "requests": 0,
        "by_status": {},
        "max_per_second": 0,
        "max_per_100ms": 0,
        "people": 0,
        "events": 0,
        "duplicates": 0,
        "failures": 0,
        "pipelines_calls": 0,
        "pipelines_dropped": 0,
        "pipelines_duplicates": 0,
        "faults_injected": 0,
    }


def test_stats_count_statuses_and_peak_rates(emu: Emu) -> None:
    for i in range(5):
        emu.client.put(f"/api/v1/customers/{i}", json={})
    emu.client.put("/api/v1/customers/x", json={"id": "y"})
    stats = emu.stats()
    assert stats["by_status"] == {"200": 5, "400": 1}
    assert stats["requests"] == 6 and stats["people"] == 5
    assert stats["max_per_second"] == 6  # a few ms apart on loopback
    assert 1 <= stats["max_per_100ms"] <= 6


def test_sliding_windows_find_the_busiest_interval() -> None:
    second, tenth = _Window(1.0), _Window(0.1)
    for at in (0.0, 0.05, 0.09, 0.5, 1.0, 1.04, 1.06, 1.08, 2.5):
        second.add(at)
        tenth.add(at)
    assert second.best == 6  # (0.08, 1.08]: 0.09, 0.5, 1.0, 1.04, 1.06, 1.08
    assert tenth.best == 4  # (0.98, 1.08]: 1.0, 1.04, 1.06, 1.08


def test_rate_window_over_http_spaced_requests(emu: Emu) -> None:
    for _ in range(3):
        emu.client.put("/api/v1/customers/1", json={})
        time.sleep(0.12)
    assert emu.stats()["max_per_100ms"] == 1


def test_memory_log_keeps_the_newest_within_count_and_bytes() -> None:
    log = EmulatorLog(keep=3, keep_bytes=10_000)
    for i in range(5):
        log.add(record_line(0.0, "PUT", f"/p/{i}", [], b"x" * 100, 200, b"{}\n"), 200)
    assert [e["path"] for e in log.snapshot()] == ["/p/2", "/p/3", "/p/4"]
    log.add(record_line(0.0, "PUT", "/big", [], b"x" * 20_000, 200, b"{}\n"), 200)
    assert [e["path"] for e in log.snapshot()] == ["/big"]  # the newest always stays
    assert log.stats()["requests"] == 6
