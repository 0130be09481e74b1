"""A request log whose defects are known exactly, for the audit tests.

Lines are one second apart from T0 (two one-minute buckets, so no volume gaps). The counts
the tests assert are derived by hand in the comments below; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z, a multiple of 60
ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Log:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    @property
    def t(self) -> int:
        return T0 + len(self.lines)

    def add(
        self,
        path: str,
        body: Any,
        *,
        method: str = "POST",
        status: int = 200,
        response: str = "{}\n",
    ) -> None:
        raw = body if isinstance(body, str) else msgspec.json.encode(body).decode()
        self.lines.append(
            {
                "time": iso(self.t),
                "method": method,
                "path": path,
                "headers": {"content-type": "application/json", "authorization": "[redacted]"},
                "body": raw,
                "status": status,
                "response": response,
                "source": "web",
            }
        )

    def event(self, who: str, name: str | None, data: Any, **extra: Any) -> None:
        body: dict[str, Any] = {"data": data, "timestamp": self.t}
        if name is not None:
            body["name"] = name
        body.update(extra)
        self.add(f"/api/v1/customers/{who}/events", body)


def known_lines() -> list[dict[str, Any]]:
    """112 request-log lines (see the module docstring)."""
    log = _Log()
    order = 0

    def order_data(total: Any = 10.5) -> dict[str, Any]:
        nonlocal order
        order += 1
        return {"order_id": f"ORD-{order}", "total": total, "currency": "USD"}

    # G1: 40 order_completed; 5 send total as a string.
    for n in range(40):
        log.event(f"cus_{n % 10 + 1}", "order_completed", order_data("10.50" if n < 5 else 10.5))
    # G2: drift, 6 + 4 + 3.
    for name, count in (("Order Completed", 6), ("orderCompleted", 4), ("order_complete", 3)):
        for _ in range(count):
            log.event("cus_1", name, order_data())
    # G3: 20 product_viewed with timestamps 0-2 ms, 3-4 ISO, 5 "yesterday", 6-7 absent,
    # 8 a day ahead, 9-10 four days old, the rest seconds.
    for i in range(20):
        body: dict[str, Any] = {
            "name": "product_viewed",
            "data": {"sku": "SKU-1", "price": 9.99, "n": i},
        }
        t = log.t
        stamps: dict[int, Any] = {
            0: t * 1000,
            1: t * 1000,
            2: t * 1000,
            3: iso(t),
            4: iso(t),
            5: "yesterday",
            8: t + 86400,
            9: t - 4 * 86400,
            10: t - 4 * 86400,
        }
        if i in stamps:
            body["timestamp"] = stamps[i]
        elif i not in (6, 7):
            body["timestamp"] = t
        log.add("/api/v1/customers/cus_1/events", body)
    # G4: near names that are different events; price as a string in step_1_done.
    for name, data in (
        ("sign_in", {"method": "password"}),
        ("sign_up", {"method": "google"}),
        ("step_1_done", {"price": "9.99"}),
        ("step_2_done", {}),
    ):
        for _ in range(2):
            log.event("cus_2", name, data)
    # G5: Customer.io rejects: 3 invalid JSON, 2 data not a hash (log: 400), 2 without a name.
    for _ in range(3):
        log.add("/api/v1/customers/cus_1/events", '{"name": "cart_updated", "data": {')
    for _ in range(2):
        log.add(
            "/api/v1/customers/cus_1/events",
            {"name": "cart_updated", "data": "sku=1", "timestamp": log.t},
            status=400,
            response='{\n  "meta": {\n    "errors": [\n      "event data must be a hash"\n'
            "    ]\n  }\n}\n",
        )
    for _ in range(2):
        log.event("cus_1", None, {})
    # G6: valid requests the log shows failing: 401 and 500.
    log.add(
        "/api/v1/customers/cus_3/events",
        {"name": "cart_viewed", "data": {}, "timestamp": log.t},
        status=401,
        response="",
    )
    log.add(
        "/api/v1/customers/cus_3/events",
        {"name": "cart_viewed", "data": {}, "timestamp": log.t},
        status=500,
        response="upstream error",
    )
    # G7: identity. 5 identifies by id linking user1..5; 3 events keyed by email (user1, user2
    # are also keyed by id; user9 is not); one v2 identify with an email as the id; 2 numeric ids.
    for k in range(1, 6):
        log.add(
            f"/api/v1/customers/cus_{k}",
            {"email": f"user{k}@example.com", "first_name": "A"},
            method="PUT",
        )
    for k in (1, 2, 9):
        log.event(f"user{k}%40example.com", "cart_viewed", {})
    log.add(
        "/api/v2/entity",
        {
            "type": "person",
            "action": "identify",
            "identifiers": {"id": "carol@example.com"},
            "attributes": {"first_name": "C"},
        },
    )
    for k in (1001, 1002):
        log.event(str(k), "cart_viewed", {})
    # G8: duplicates. One order sent three times in a row (retries), and two events sharing
    # an event id.
    repeat = {"name": "order_completed", "data": order_data(), "timestamp": log.t}
    for _ in range(3):
        log.add("/api/v1/customers/cus_4/events", repeat)
    for n in (1, 2):
        log.event("cus_1", "cart_viewed", {"n": n}, id=ULID)
    # G9: anonymous events a1, a1, a2, a3; an identify then carries a1.
    for anon in ("a1", "a1", "a2", "a3"):
        log.add(
            "/api/v1/events",
            {"name": "cart_viewed", "anonymous_id": anon, "data": {}, "timestamp": log.t},
        )
    log.add("/api/v1/customers/cus_7", {"anonymous_id": "a1"}, method="PUT")
    # The repeated order once more, still within a minute of the last copy.
    log.add("/api/v1/customers/cus_4/events", repeat)
    assert len(log.lines) == 112
    return log.lines


def write_known_log(path: Path) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(line) + b"\n" for line in known_lines()))
    return path


KNOWN_PLAN = """\
version: 1
name: known
naming: {convention: snake_case, action: fix}
events:
  order_completed:
    aliases: [order_complete]
    dedupe_key: data.order_id
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true, action: fix}
      currency: {type: enum, values: [USD], required: true}
  product_viewed:
    properties:
      sku: {type: string, required: true}
      currency: {type: string, required: true}
"""
