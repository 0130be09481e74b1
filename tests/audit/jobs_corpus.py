"""Request logs for the ``--jobs`` tests: sample traffic as a log, with extra order traps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from trackguard.check.samples import BASE_TIME, SAMPLE_SPACING, d2c_traffic
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker

_encode = msgspec.json.encode


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_line(record: dict[str, Any], t: int, checker: Checker) -> dict[str, Any]:
    """A request-log line for a ``check`` record, with the status its contract gives."""
    body = record["body"]
    raw = body if isinstance(body, str) else _encode(body).decode()
    verdict = checker.check(
        Request(method=record["method"], path=record["path"], body=raw.encode())
    )
    return {
        "time": iso(t),
        "method": record["method"],
        "path": record["path"],
        "body": raw,
        "status": verdict.status,
        "response": verdict.response.decode(),
        "source": "storefront" if t % 3 else "ios",
    }


def traffic_lines(n: int, seed: int = 7, defect_rate: float = 0.2) -> list[dict[str, Any]]:
    checker = Checker(fallback_keys=False)
    return [
        log_line(r, BASE_TIME + i * SAMPLE_SPACING + 1, checker)
        for i, r in enumerate(d2c_traffic(n, seed, defect_rate, base_time=BASE_TIME))
    ]


def write(path: Path, lines: list[dict[str, Any] | bytes]) -> Path:
    with path.open("wb") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else _encode(line) + b"\n")
    return path


def request(t: int, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request-log line Customer.io answered with 200."""
    raw = _encode(body).decode()
    return {"time": iso(t), "method": method, "path": path, "body": raw, "status": 200}


def event(t: int, who: str, name: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": name, "data": data, "timestamp": t, **extra}
    return request(t, "POST", f"/api/v1/customers/{who}/events", body)


def anonymous(t: int, anon: str, name: str) -> dict[str, Any]:
    body = {"name": name, "anonymous_id": anon, "data": {}, "timestamp": t}
    return request(t, "POST", "/api/v1/events", body)


def identify(t: int, who: str, anon: str) -> dict[str, Any]:
    body = {"email": f"{who}@example.com", "anonymous_id": anon}
    return request(t, "PUT", f"/api/v1/customers/{who}", body)
