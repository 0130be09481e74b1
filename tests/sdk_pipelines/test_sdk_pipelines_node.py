"""The official Pipelines Node SDK, ``@customerio/cdp-analytics-node`` (pinned with its lock file
in ``package.json``), unmodified, talks to the emulator over loopback.

``driver.js`` makes every call type once with fixed messageIds and timestamps and the host
changed the way the SDK documents it (``host``). What arrives is asserted exactly, including
the Node quirks of the reference (``shared/reference/customerio-pipelines-api.md`` §5.2):
everything goes to ``/v1/batch`` with Basic auth, ``_metadata`` on every call, the stale
``context.library.version``, ``category`` copied into page ``properties``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sdk_env import drive_node

from npm_pinned import npm_ci
from trackguard.emulator.app import Emulator
from trackguard.http.runner import RunningServer

HERE = Path(__file__).resolve().parent
PACKAGE = "@customerio/cdp-analytics-node"
AT = "2024-06-01T12:00:00.000Z"


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """``npm ci`` into ``tests/sdk_pipelines/node_modules`` once, unless the pinned SDK is there;
    the Node version, as the SDK reports it in ``_metadata``."""
    npm_ci(HERE, PACKAGE)
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    return version.stdout.strip().removeprefix("v")


def _expected(node_version: str) -> list[dict[str, Any]]:
    library = {"library": {"name": PACKAGE, "version": "1.0.0-beta.22"}}
    meta = {"_metadata": {"nodeVersion": node_version, "jsRuntime": "node"}}
    base = {"timestamp": AT, "integrations": {}, "context": library, **meta}
    return [
        {**base, "type": "identify", "userId": "node-1", "messageId": "node-identify-1",
         "traits": {"email": "nora@example.com", "plan": "pro"},
         "context": {"ip": "203.0.113.7", "locale": "en-US", **library}},
        {**base, "type": "track", "userId": "node-1", "messageId": "node-track-1",
         "event": "Order Completed", "properties": {"order_id": "N-1", "total": 49.9},
         "integrations": {"All": False, "Actions Customerio": True}},
        {**base, "type": "track", "anonymousId": "anon-node", "messageId": "node-track-anon-1",
         "event": "Product Viewed", "properties": {"product_id": "P-9"}},
        {**base, "type": "page", "userId": "node-1", "messageId": "node-page-1",
         "category": "Shop", "name": "Pricing",
         "properties": {"url": "https://shop.example.com/pricing", "path": "/pricing",
                        "category": "Shop"}},
        {**base, "type": "screen", "userId": "node-1", "messageId": "node-screen-1",
         "name": "Home", "properties": {"tab": "feed"}},
        {**base, "type": "group", "userId": "node-1", "messageId": "node-group-1",
         "groupId": "acme", "traits": {"objectTypeId": "1", "name": "Acme"}},
        {**base, "type": "alias", "userId": "node-1", "messageId": "node-alias-1",
         "previousId": "node-old"},
    ]  # fmt: skip


def test_every_call_type_arrives_exactly(
    node_sdk: str, served: tuple[Emulator, RunningServer]
) -> None:
    emulator, server = served
    lines = drive_node("driver.js", server.url)
    assert lines[-1] == {"done": True}
    assert [line for line in lines if "error" in line] == []
    assert {line["request"]["url"] for line in lines[:-1]} == {f"{server.url}/v1/batch"}
    assert [c["call"] for c in emulator.pipelines.calls_view()] == _expected(node_sdk)
    assert emulator.pipelines.dropped_view() == []
    requests = emulator.log.snapshot()
    assert len(requests) == len(lines) - 1
    assert {(r["path"], r["status"], r["headers"]["user-agent"]) for r in requests} == {
        ("/v1/batch", 200, "cdp-analytics-node/latest")
    }
    person = emulator.state.person_view("node-1")
    assert person is not None
    assert (person["email"], person["attributes"]) == ("nora@example.com", {"plan": "pro"})
    events = emulator.state.events_view()
    assert [(e["type"], e["name"], e["id"], e["person"] is not None) for e in events] == [
        ("event", "Order Completed", "node-track-1", True),
        ("event", "Product Viewed", "node-track-anon-1", False),
        ("page", "https://shop.example.com/pricing", "node-page-1", True),
        ("screen", "Home", "node-screen-1", True),
    ]
    (obj,) = emulator.state.objects_view()
    assert (obj["object_id"], obj["attributes"], len(obj["people"])) == (
        "acme",
        {"name": "Acme"},
        1,
    )
    # alias: nobody is node-old, so Journeys has nothing to merge (kept as a failure)
    failures = emulator.state.activity_view()["failures"]
    assert [(f["action"], f["reason"]) for f in failures] == [
        ("merge", "the secondary person does not exist")
    ]
