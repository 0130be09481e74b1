"""``check`` and ``audit`` read the request log the real gateway writes for Pipelines requests:
gzip bodies (logged inflated), the browser's text/plain bodies (write key redacted), SDK
retries and strict answers, all over loopback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from pipelines_env import WRITE_KEY

from trackguard.audit import audit
from trackguard.cli.check import check_command
from trackguard.emulator.app import Emulator
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread

AT = "2024-06-01T12:00:00.123+00:00"
NOW = 1_717_243_200 + 3600


def _call(kind: str, mid: str, **fields: Any) -> dict[str, Any]:
    library = {"name": "analytics-python", "version": "1.1.0"}
    return {
        "type": kind,
        "messageId": mid,
        "timestamp": AT,
        "context": {"library": library},
        **fields,
    }


SDK_BATCH = {
    "batch": [
        _call("track", "p-1", userId="cus_1", event="Order Completed",
              properties={"order_id": "A-1", "total": "49.90", "currency": "USD"}),
        _call("identify", "p-2", userId="cus_2", anonymousId="anon-1",
              traits={"email": "bo@example.com"}),
    ],
    "sentAt": AT,
}  # fmt: skip


def _log(tmp_path: Path, upstream: RunningServer) -> Path:
    """Drive the gateway with SDK-shaped requests; the request log it wrote."""
    log = tmp_path / "requests.jsonl"
    opts = GatewayOptions(
        db=tmp_path / "tg.db",
        upstream=upstream.url,
        pipelines_upstream=upstream.url,
        request_log=log,
    )
    auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=WRITE_KEY)
    server = start_in_thread(create_gateway(opts, auth))
    try:
        browser = {"content-type": "text/plain"}
        gz = {"content-type": "application/json", "content-encoding": "gzip"}
        packed = gzip.compress(json.dumps(SDK_BATCH).encode())
        anonymous = _call("track", "b-1", anonymousId="anon-1", event="product_viewed",
                          properties={"product_id": "tee"}, writeKey=WRITE_KEY)  # fmt: skip
        orphan = _call("track", "b-2", anonymousId="anon-9", event="product_viewed",
                       properties={"product_id": "cap"}, writeKey=WRITE_KEY)  # fmt: skip
        emailed = _call("track", "n-1", userId="ana@example.com", event="order_completed",
                        properties={"order_id": "A-2", "total": 12})  # fmt: skip
        stale_call = _call("track", "n-2", userId="cus_3", event="order_completed",
                           properties={"order_id": "A-3", "total": 5})  # fmt: skip
        stale = {"batch": [stale_call | {"timestamp": 1_717_243_200_000}]}  # milliseconds
        with httpx.Client(base_url=server.url, timeout=10) as anonymous_client:
            for body in (anonymous, orphan):
                sent = anonymous_client.post("/v1/t", content=json.dumps(body), headers=browser)
                assert (sent.status_code, sent.content) == (200, b"{}")
        with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10) as client:
            for _ in range(2):  # the SDK's retry resends the same gzip batch
                sent = client.post("/v1/batch", content=packed, headers=gz)
                assert (sent.status_code, sent.content) == (200, b"{}")
            assert client.post("/v1/track", json=emailed).status_code == 200
            strict = client.post("/v1/batch", json=stale, headers={"x-strict-mode": "1"})
            assert strict.status_code == 400
    finally:
        server.stop()
    return log


def test_check_and_audit_read_the_gateways_request_log(
    tmp_path: Path, pipelines_session: tuple[Emulator, RunningServer]
) -> None:
    emulator, upstream = pipelines_session
    emulator.reset()
    log = _log(tmp_path, upstream)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["path"], x["status"]) for x in lines] == [
        ("/v1/t", 200), ("/v1/t", 200), ("/v1/batch", 200), ("/v1/batch", 200),
        ("/v1/track", 200), ("/v1/batch", 400),
    ]  # fmt: skip
    assert json.loads(lines[2]["body"]) == SDK_BATCH  # logged inflated, its header kept
    assert lines[2]["headers"]["content-encoding"] == "gzip"
    assert WRITE_KEY not in log.read_text()

    report = audit([log], now=NOW)
    assert (report.totals.requests, report.totals.pipelines, report.totals.events) == (6, 6, 6)
    assert report.statuses == {"200": 5, "400": 1}
    assert [(f.id, f.count) for f in report.findings] == [
        ("contract.timestamp_invalid", 1),
        ("log.400.batch_0_timestamp_must_be_an_iso_8601_date_time_string", 1),
        ("timestamp.pipelines_milliseconds", 1),
        ("duplicates.message_ids", 2),  # the retried batch's track and identify
        ("naming_drift.order_completed", 2),
        ("type_drift.order_completed.total", 2),
        ("anonymous.orphaned", 1),
        ("contract_warning.user_id_email", 1),
        ("duplicates.requests", 1),
        ("identity.mixed_keys", 1),
        ("timestamp.older_than_72h", 6),  # sent in 2024, logged now
        ("type_drift.*.total", 2),
    ]
    assert report.timestamps == {"pipelines_iso8601": 5, "pipelines_milliseconds": 1}
    assert report.identifiers == {"id": 4, "anonymous_id": 2, "email": 1}
    orphans = next(f for f in report.findings if f.id == "anonymous.orphaned")
    assert [e.where for e in orphans.examples] == [f"{log}:2"]  # anon-1 was identified later
    assert not [f for f in report.findings if f.kind == "disagreement"]

    result = CliRunner().invoke(check_command, [str(log), "--format", "jsonl"])
    assert result.exit_code == 1
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(v["line"], v["outcome"], len(v["operations"])) for v in verdicts] == [
        (1, "accepted", 1), (2, "accepted", 1), (3, "accepted", 2), (4, "accepted", 2),
        (5, "warned", 1), (6, "invalid", 0),
    ]  # fmt: skip
