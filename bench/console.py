"""Server time per console page on a large store: 1,000,000 quarantine records, a week of counters.

The store is built once (``--db``, kept for later runs) with the real schema: quarantine rows in
the shapes the gateway writes (plan and contract records over a dozen events and codes), and
``monitor_counts`` rows for every minute of 7 days (12 events x 4 outcomes, plus codes and
delivery). Each page is then requested straight through the console's ASGI app, in-process, so
the figure is the server's own time (rendering included, no socket): ``--repeats`` times each,
p50 and p95 reported against the targets (150 ms every page, 50 ms the quarantine list at any
depth).

    python bench/console.py                 # builds bench-console.db on first run (~1 min)
    python bench/console.py --records 200000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_info, pin_to_one_core, render_table
from trackguard.console import Console, ConsoleConfig
from trackguard.monitor.db import MonitorDB
from trackguard.plan.loader import load_plan
from trackguard.store.sqlite import open_store

REPO = Path(__file__).resolve().parents[1]
EVENTS = [
    "product_viewed",
    "added_to_cart",
    "cart_updated",
    "checkout_started",
    "order_completed",
    "order_refunded",
    "wishlist_added",
    "search_performed",
    "coupon_applied",
    "review_written",
    "subscription_started",
    "app_opened",
]
CODES = [
    "property_missing",
    "property_type",
    "event_unplanned",
    "identity_email_in_id",
    "invalid_json",
    "event_name_blank",
    "timestamp_milliseconds",
    "property_unplanned",
]
T_END = 1_800_000_000.0


def build(db: Path, records: int) -> None:
    store = open_store(db)
    store.close()
    conn = sqlite3.connect(db)
    rng = random.Random(7)
    start = T_END - 7 * 86_400
    step = 7 * 86_400 / records
    headers = '[["content-type","application/json"],["authorization","[redacted]"]]'

    def rows() -> Any:
        for i in range(records):
            event = rng.choice(EVENTS)
            code = CODES[min(int(rng.expovariate(0.6)), len(CODES) - 1)]
            kind = "contract" if code in ("invalid_json", "event_name_blank") else "plan"
            body = (
                f'{{"name":"{event}","data":{{"order_id":"A-{i}","total":"49.90",'
                f'"currency":"usd","sku":"SKU-{i % 977}"}}}}'
            ).encode()
            findings = f'[{{"code":"{code}","message":"bench","path":"data.total"}}]'
            yield (
                start + i * step,
                kind,
                "POST",
                f"/api/v1/customers/cus_{i % 50_000}/events",
                headers,
                body,
                rng.choice(["web", "ios", "android"]),
                "2026-11-01",
                200 if kind == "plan" else 400,
                findings,
                event,
                f'["{code}"]',
                None,
                None,
                "quarantined",
                None,
                "POST /api/v1/customers/{identifier}/events",
            )

    conn.executemany(
        "INSERT INTO quarantine (received_at, kind, method, path, headers, body, source,"
        " plan_version, status, findings, event_name, codes, batch_index, upstream_error,"
        " state, outbox_seq, route) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows(),
    )
    conn.execute("UPDATE counts SET n = ? WHERE name = 'quarantine'", (records,))
    conn.commit()
    route = "POST /api/v1/customers/{identifier}/events"
    counts: dict[tuple[int, str, str, str, Any, str], int] = {}
    for minute in range(int(start // 60), int(T_END // 60)):
        for event in EVENTS:
            counts[(minute, event, route, "web", "outcome", "accepted")] = rng.randint(20, 60)
            counts[(minute, event, route, "web", "outcome", "fixed")] = rng.randint(0, 5)
            counts[(minute, event, route, "web", "outcome", "rejected")] = rng.randint(0, 2)
            counts[(minute, event, route, "web", "code", rng.choice(CODES))] = rng.randint(1, 3)
        counts[(minute, "(delivery)", "(delivery)", "-", "outcome", "upstream_request")] = 20
        counts[(minute, "(delivery)", "(delivery)", "-", "outcome", "delivered")] = 900
    monitor = MonitorDB(db)
    monitor.add_counts(counts)  # the monitor's own write path: per-minute and hourly rows
    monitor.close()
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def _request(app: Console, path: str) -> int:
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": "GET",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def measure(app: Console, path: str, repeats: int) -> list[float]:
    times = []
    loop = asyncio.new_event_loop()
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            status = loop.run_until_complete(_request(app, path))
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{path}: answered {status}")
    finally:
        loop.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("bench-console.db"))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    pinned = pin_to_one_core()
    if not args.db.exists():
        started = time.perf_counter()
        build(args.db, args.records)
        print(f"built {args.db} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    conn = sqlite3.connect(args.db)
    total = conn.execute("SELECT max(id) FROM quarantine").fetchone()[0]
    counter_rows = conn.execute("SELECT count(*) FROM monitor_counts").fetchone()[0]
    conn.close()
    app = Console(
        ConsoleConfig(
            store=os.fspath(args.db),
            plan=load_plan(REPO / "examples" / "d2c-plan.yaml"),
            clock=lambda: T_END,
        )
    )
    pages = [
        ("overview", "/", 150),
        ("series 24h", "/api/series?range=24h", 150),
        ("series 7d", "/api/series?range=7d", 150),
        ("quarantine, first page", "/quarantine", 50),
        ("quarantine, page 100", f"/quarantine?before={total - 100 * 50}", 50),
        ("quarantine, last page", "/quarantine?before=60", 50),
        ("quarantine, by event", "/quarantine?event=order_completed", 50),
        ("quarantine, by rare code", "/quarantine?code=property_unplanned", 50),
        (
            "quarantine, event+code deep",
            f"/quarantine?event=app_opened&code=property_type&before={total // 2}",
            50,
        ),
        ("quarantine, code matching none", "/quarantine?code=no_such_code", 50),
        ("record", f"/quarantine/{total // 2}", 150),
        ("plan", "/plan", 150),
        ("delivery", "/delivery", 150),
        ("replay form", "/replay", 150),
    ]
    rows = []
    failed = []
    for name, path, target in pages:
        times = measure(app, path, args.repeats)
        p50 = statistics.median(times)
        p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
        ok = p95 <= target
        if not ok:
            failed.append(name)
        verdict = "PASS" if ok else "FAIL"
        rows.append(
            [name, f"{p50:.1f}", f"{p95:.1f}", f"{target}", f"{p95 / target:.2f}x", verdict]
        )
    print(f"store: {total:,} quarantine records, {counter_rows:,} counter rows (7 days)")
    print(f"machine: {machine_info(pinned)}")
    print(render_table(["page", "p50 ms", "p95 ms", "target ms", "p95/target", ""], rows))
    verdict = "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"
    print("target: every page p95 <= 150 ms, the quarantine list <= 50 ms at any depth:", verdict)


if __name__ == "__main__":
    main()
