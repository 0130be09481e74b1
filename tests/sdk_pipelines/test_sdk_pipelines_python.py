"""The official Pipelines Python SDK, ``customerio-cdp-analytics`` (pinned in
``requirements.txt``), unmodified, talks to the emulator over loopback.

The SDK is installed on its own with ``pip install --target`` and driven in a subprocess
(``driver_python.py``): it ships a ``customerio/__init__.py`` of its own, which overwrites the
Track API SDK's (``customerio``, the ``demo`` extra) when both share an environment, so it cannot
join the ``test`` extra. What is asserted (``shared/reference/customerio-pipelines-api.md``
§3.4, §5.1): every call type arrives exactly as the SDK builds it, messageId and all, gzipped,
with Basic auth for a plain key and Bearer for an ``sk_us_`` key; a strict 400 with ``code``
and ``message`` makes the SDK call ``on_error`` once and drop the whole batch without a
retry; a strict 401 likewise; a permissive 200 is success while the bad call is dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.http.runner import RunningServer, start_in_thread

HERE = Path(__file__).resolve().parent
SDK_DIR = HERE / ".python-sdk"
PINNED = (HERE / "requirements.txt").read_text().strip()
VERSION = PINNED.partition("==")[2]
PLAIN_KEY = "my-legacy-write-key"
BEARER_KEY = "sk_us_" + "0123456789abcdef" * 2 + "_abcdef"
AT = "2024-06-01T12:00:00.123+00:00"
LIBRARY = {"library": {"name": "analytics-python", "version": VERSION}}
BASE = {"integrations": {}, "anonymousId": None, "timestamp": AT, "context": LIBRARY}

#: What the SDK sends for each call of driver_python.py's ``calls`` scenario, key order aside.
CALLS: list[dict[str, Any]] = [
    {**BASE, "type": "identify", "userId": "py-1", "messageId": "py-identify-1",
     "traits": {"email": "pia@example.com", "plan": "pro", "created_at": "2024-01-02T03:04:05"}},
    {**BASE, "type": "track", "userId": "py-1", "messageId": "py-track-1",
     "event": "Order Completed", "properties": {"order_id": "P-1", "total": 49.9},
     "context": {"ip": "203.0.113.9", **LIBRARY},
     "integrations": {"All": False, "Actions Customerio": True}},
    {**BASE, "type": "page", "userId": None, "anonymousId": "anon-py", "messageId": "py-page-1",
     "category": "Shop", "name": "Pricing",
     "properties": {"url": "https://shop.example.com/pricing"}},
    {**BASE, "type": "screen", "userId": "py-1", "messageId": "py-screen-1", "category": None,
     "name": "Home", "properties": {"tab": "feed"}},
    {**BASE, "type": "group", "userId": "py-1", "messageId": "py-group-1", "groupId": "acme",
     "traits": {"objectTypeId": "1", "name": "Acme"}},
    {**BASE, "type": "alias", "userId": "py-1", "messageId": "py-alias-1", "previousId": "py-old"},
]  # fmt: skip


@pytest.fixture(scope="session")
def python_sdk() -> Path:
    """``pip install --target tests/sdk_pipelines/.python-sdk`` once, unless it is there."""
    marker = SDK_DIR / f"customerio_cdp_analytics-{VERSION}.dist-info"
    if not marker.exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--upgrade", "--target", str(SDK_DIR), "-r", str(HERE / "requirements.txt")],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    assert marker.exists()
    return SDK_DIR


@pytest.fixture(scope="module", params=[PLAIN_KEY, BEARER_KEY], ids=["basic", "bearer"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Emulator, RunningServer, str]]:
    key: str = request.param
    emulator = create_emulator("site", "key", write_key=key)
    with start_in_thread(emulator) as server:
        yield emulator, server, key
    emulator.close()


@pytest.fixture
def emu(served: tuple[Emulator, RunningServer, str]) -> tuple[Emulator, RunningServer, str]:
    served[0].reset()
    return served


def drive(
    sdk: Path, server: RunningServer, key: str, scenario: str, *flags: str
) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(HERE / "driver_python.py"), str(sdk), server.url, key, scenario,
         *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1] == {"done": True}, done.stderr
    return lines[:-1]


def test_every_call_type_arrives_exactly_and_is_applied(
    python_sdk: Path, emu: tuple[Emulator, RunningServer, str]
) -> None:
    emulator, server, key = emu
    assert drive(python_sdk, server, key, "calls", "--strict") == []  # strict: the key is good
    kept = emulator.pipelines.calls_view()
    assert [c["call"] for c in kept] == CALLS
    assert all(set(c["envelope"]) == {"sentAt"} for c in kept)  # the SDK's batch-level sentAt
    assert emulator.pipelines.dropped_view() == []
    requests = emulator.log.snapshot()
    assert {r["path"] for r in requests} == {"/v1/batch"}
    assert {r["status"] for r in requests} == {200}
    assert {(r["headers"]["content-encoding"], r["headers"]["user-agent"]) for r in requests} == {
        ("gzip", f"analytics-python/{VERSION}")
    }
    person = emulator.state.person_view("py-1")
    assert person is not None
    assert (person["email"], person["attributes"]["plan"]) == ("pia@example.com", "pro")
    events = emulator.state.events_view()
    assert [(e["type"], e["name"], e["id"], e["anonymous_id"]) for e in events] == [
        ("event", "Order Completed", "py-track-1", None),
        ("page", "https://shop.example.com/pricing", "py-page-1", "anon-py"),
        ("screen", "Home", "py-screen-1", None),
    ]


def test_strict_400_drops_the_whole_batch_once_without_retry(
    python_sdk: Path, emu: tuple[Emulator, RunningServer, str]
) -> None:
    emulator, server, key = emu
    errors = drive(python_sdk, server, key, "one_bad", "--strict")
    message = "batch[1].event: event must be a non-empty string"
    assert errors == [
        {
            "error": {
                "type": "APIError",
                "status": 400,
                "code": "invalid_request",
                "message": message,
            },
            "batch": ["py-identify-2", "py-track-empty"],
        }
    ]
    assert emulator.log.stats()["by_status"] == {"400": 1}
    assert emulator.pipelines.calls_view() == []
    assert [d["batch_index"] for d in emulator.pipelines.dropped_view()] == [0, 1]


def test_strict_401_for_a_wrong_key_is_final_too(
    python_sdk: Path, emu: tuple[Emulator, RunningServer, str]
) -> None:
    emulator, server, _key = emu
    errors = drive(python_sdk, server, "sk_us_" + "f" * 32 + "_wrong", "one_bad", "--strict")
    assert [(e["error"]["status"], e["error"]["code"], e["error"]["message"]) for e in errors] == [
        (401, "unauthorized", "Unauthorized request")
    ]
    assert emulator.log.stats()["by_status"] == {"401": 1}


def test_permissive_200_is_success_while_the_bad_call_is_dropped(
    python_sdk: Path, emu: tuple[Emulator, RunningServer, str]
) -> None:
    emulator, server, key = emu
    assert drive(python_sdk, server, key, "one_bad") == []
    assert emulator.log.stats()["by_status"] == {"200": 1}
    assert [c["call"]["messageId"] for c in emulator.pipelines.calls_view()] == ["py-identify-2"]
    assert [(d["status"], d["errors"][0]["code"]) for d in emulator.pipelines.dropped_view()] == [
        (200, "event_invalid")
    ]
