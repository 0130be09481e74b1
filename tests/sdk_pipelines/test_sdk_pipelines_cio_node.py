"""customerio-node's ``PipelinesClient`` (pinned in ``package.json``), unmodified, talks to the
emulator over loopback: the one official client that posts each call type to its own endpoint
and can send ``X-Strict-Mode: 1``.

What is asserted (``shared/reference/customerio-pipelines-api.md`` §1.3, §3.4, §5.3): every call
type arrives on ``/v1/<type>`` and a batch on ``/v1/batch``, exactly as built (messageId,
timestamp, ``context.library``, a numeric ``userId`` as a JSON number); the strict answers reach
the caller as ``CustomerIORequestError`` with the status and a message composed from
``meta.errors``; the permissive client gets ``{}`` for the same bad call, which is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sdk_env import drive_node

from npm_pinned import npm_ci
from trackguard.emulator.app import Emulator
from trackguard.http.runner import RunningServer

HERE = Path(__file__).resolve().parent
PACKAGE = "customerio-node"
AT = "2024-06-01T12:00:00.000Z"


@pytest.fixture(scope="module")
def cio_node() -> str:
    return npm_ci(HERE, PACKAGE)


def _expected(version: str) -> list[tuple[str, dict[str, Any]]]:
    base = {"timestamp": AT, "context": {"library": {"name": PACKAGE, "version": version}}}
    return [
        ("/v1/identify", {**base, "type": "identify", "userId": "cn-1",
                          "traits": {"email": "cara@example.com"}, "messageId": "cn-identify-1"}),
        ("/v1/track", {**base, "type": "track", "userId": "cn-1", "event": "Order Completed",
                       "properties": {"order_id": "C-1", "total": 49.9},
                       "messageId": "cn-track-1"}),
        ("/v1/page", {**base, "type": "page", "userId": "cn-1", "name": "Pricing",
                      "properties": {"url": "https://shop.example.com/pricing"},
                      "messageId": "cn-page-1"}),
        ("/v1/screen", {**base, "type": "screen", "userId": "cn-1", "name": "Home",
                        "messageId": "cn-screen-1"}),
        ("/v1/group", {**base, "type": "group", "userId": "cn-1", "groupId": "acme",
                       "traits": {"objectTypeId": "1", "name": "Acme"},
                       "messageId": "cn-group-1"}),
        ("/v1/alias", {**base, "type": "alias", "userId": "cn-1", "previousId": "cn-old",
                       "messageId": "cn-alias-1"}),
        ("/v1/batch", {**base, "type": "track", "userId": 42, "event": "Numeric Id",
                       "messageId": "cn-batch-1"}),
        ("/v1/batch", {**base, "type": "identify", "userId": "cn-2",
                       "messageId": "cn-batch-2"}),
    ]  # fmt: skip


def test_every_endpoint_and_both_modes(
    cio_node: str, served: tuple[Emulator, RunningServer]
) -> None:
    emulator, server = served
    steps = drive_node("driver_cio_node.js", server.url)
    assert [(s["step"], s.get("response"), s.get("error")) for s in steps] == [
        *[(name, {}, None) for name in
          ("identify", "track", "page", "screen", "group", "alias", "batch")],
        ("strict bad timestamp", None, {
            "name": "CustomerIORequestError", "statusCode": 400,
            "message": "1 error:\n  - timestamp: must be an ISO-8601 date-time string"}),
        ("permissive bad timestamp", {}, None),
        ("strict wrong key", None, {
            "name": "CustomerIORequestError", "statusCode": 401,
            "message": "1 error:\n  - Unauthorized request"}),
    ]  # fmt: skip
    assert [s["ok"] for s in steps] == [True] * 7 + [False, True, False]
    kept = emulator.pipelines.calls_view()
    assert [(c["path"], c["call"]) for c in kept] == _expected(cio_node)
    dropped = emulator.pipelines.dropped_view()
    assert [(d["path"], d["status"], d["errors"][0]["code"]) for d in dropped] == [
        ("/v1/track", 400, "timestamp_invalid"),
        ("/v1/track", 200, "timestamp_invalid"),
        ("/v1/identify", 401, "unauthorized"),
    ]
    log = emulator.log.snapshot()
    assert [r["headers"].get("x-strict-mode") for r in log] == ["1"] * 8 + [None, "1"]
    assert {r["headers"]["user-agent"] for r in log} == {f"Customer.io Node Client/{cio_node}"}
