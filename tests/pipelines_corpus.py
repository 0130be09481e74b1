"""Mixed Track API and Pipelines API inputs for the ``check`` and ``audit`` tests.

``MIXED`` is a small hand-written log whose every finding is known; :func:`mixed_traffic`
turns sample D2C traffic into a large one, every other request sent through the Pipelines
API as its SDKs would send it (with SDK retries resending the same messageId).
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from trackguard.check.samples import BASE_TIME, SAMPLE_SPACING, d2c_traffic

HAR = Path(__file__).parent / "audit" / "data" / "pipelines-browser.har"
ISO = "2025-11-24T16:00:00.000Z"
T = 1_764_000_000


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def line(path: str, body: Any, **extra: Any) -> dict[str, Any]:
    return {"method": "POST", "path": path, "body": body, **extra}


_RETRIED = line(
    "/v1/track",
    {
        "type": "track",
        "userId": "cus_2",
        "event": "Order Completed",
        "messageId": "m-1",
        "properties": {"order_id": "A-2", "total": "49.90", "currency": "USD"},
        "timestamp": ISO,
    },
)
_GZIPPED = gzip.compress(
    json.dumps(
        {
            "anonymousId": "anon-1",
            "event": "cart_viewed",
            "properties": {"cart_id": "c-1"},
            "messageId": "m-2",
            "timestamp": ISO,
        }
    ).encode(),
    mtime=0,
)

#: 8 requests, 6 of them to the Pipelines API: one of each path form, gzip, a retry.
MIXED: list[dict[str, Any]] = [
    line(
        "/api/v1/customers/cus_1/events",
        {
            "name": "order_completed",
            "data": {"order_id": "A-1", "total": 10, "currency": "USD"},
            "timestamp": T,
        },
    ),
    _RETRIED,
    {
        "method": "POST",
        "path": "/v1/track",
        "body_base64": base64.b64encode(_GZIPPED).decode(),
        "headers": {"content-type": "application/json", "content-encoding": "gzip"},
    },
    line(
        "/v1/batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "ana@example.com",
                    "event": "added_to_cart",
                    "properties": {"cart_id": "c-1", "price": 24},
                    "messageId": "m-3",
                    "timestamp": ISO,
                },
                {
                    "type": "identify",
                    "userId": "cus_3",
                    "anonymousId": "anon-1",
                    "messageId": "m-4",
                    "traits": {"email": "bo@example.com", "plan": "pro"},
                    "timestamp": ISO,
                },
                {
                    "type": "track",
                    "userId": "cus_3",
                    "event": "order_completed",
                    "messageId": "m-5",
                    "properties": {"order_id": "A-3", "total": 5},
                    "timestamp": T * 1000,
                },
            ],
            "sentAt": ISO,
        },
    ),
    _RETRIED,  # the SDK's retry: the same body, the same messageId
    line(
        "/v1/t",
        json.dumps(
            {
                "type": "track",
                "anonymousId": "anon-2",
                "event": "product_viewed",
                "properties": {"sku": "S-1"},
                "messageId": "m-6",
                "timestamp": ISO,
                "writeKey": "wk",
            }
        ),
        headers={"content-type": "text/plain"},
    ),
    line(
        "/v1/p",
        json.dumps(
            {
                "type": "page",
                "anonymousId": "anon-2",
                "name": "Home",
                "messageId": "m-7",
                "properties": {"url": "https://shop.example/"},
                "timestamp": ISO,
                "writeKey": "wk",
            }
        ),
        headers={"content-type": "text/plain"},
    ),
    line(
        "/api/v1/customers/cus_1/events",
        {"name": "added_to_cart", "data": {"cart_id": "c-2", "price": "24"}, "timestamp": T},
    ),
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _pipelines(record: dict[str, Any], i: int) -> dict[str, Any] | None:
    """The Track API sample request as a Pipelines call (None when it has no such form)."""
    body, path = record["body"], record["path"]
    if not isinstance(body, dict):
        return None
    who = unquote(path.split("/")[4])
    if record["method"] == "PUT":
        call = {"type": "identify", "userId": who, "traits": body}
    elif isinstance(body.get("data"), dict):
        call = {
            "type": "track",
            "userId": who,
            "event": body.get("name"),
            "properties": body["data"],
        }
    else:
        return None
    stamp = body.get("timestamp", BASE_TIME + i * SAMPLE_SPACING)
    call["timestamp"] = iso(stamp) if isinstance(stamp, int) and stamp < 10**10 else stamp
    call["messageId"] = f"msg-{i}"
    if i % 5 == 0:
        call["anonymousId"] = f"anon-{i % 40}"
        call.pop("userId") if call["type"] == "track" else None
    return call


def mixed_traffic(n: int) -> list[dict[str, Any]]:
    """``n`` sample requests as request-log lines, every other one through the Pipelines API;
    every 25th Pipelines request is sent twice (an SDK retry)."""
    out: list[dict[str, Any]] = []
    for i, record in enumerate(d2c_traffic(n, 11, 0.2, base_time=BASE_TIME)):
        when = iso(BASE_TIME + i * SAMPLE_SPACING + 1)
        call = _pipelines(record, i) if i % 2 else None
        if call is None:
            out.append({**record, "time": when, "status": 200})
            continue
        batch = i % 3 == 0
        path = "/v1/batch" if batch else f"/v1/{call['type']}"
        logged = {
            "method": "POST",
            "path": path,
            "body": {"batch": [call]} if batch else call,
            "time": when,
            "status": 200,
            "response": "{}",
        }
        out.append(logged)
        if i % 25 == 1:
            out.append(logged)
    return out
