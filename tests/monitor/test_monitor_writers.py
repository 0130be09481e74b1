"""Several writers on one store's monitor tables: counters add up, never last-writer-wins.

Two ``MonitorDB`` objects are two connections, as two gateway processes are; they flush
overlapping keys at the same moment from two threads. Then two real gateways on one
PostgreSQL schema answer requests over loopback, and ``trackguard stats`` shows the sum.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

import httpx
from click.testing import CliRunner
from monitor_env import NewDB

from trackguard.cli.monitor import stats_command
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import start_in_thread
from trackguard.monitor.db import CountRow, MonitorDB
from trackguard.monitor.tally import Key

ROUTE = "POST /api/v1/customers/{identifier}/events"
FLUSHES = 60
SITE_ID, API_KEY = "mon-site", "mon-key"


def _flushes(seed: int) -> list[dict[Key, int]]:
    """``FLUSHES`` flushes over the same 240 keys, in an order of their own."""
    rnd = random.Random(seed)
    keys: list[Key] = [
        (minute, event, ROUTE, "web", "outcome", "accepted")
        for minute in range(120)
        for event in ("cart_updated", "order_completed")
    ]
    out = []
    for _ in range(FLUSHES):
        rnd.shuffle(keys)
        out.append({k: rnd.randint(1, 9) for k in keys[: rnd.randint(1, len(keys))]})
    return out


def test_two_writers_flushing_at_once_sum_exactly(new_db: NewDB) -> None:
    target = new_db()
    writers = [MonitorDB(target), MonitorDB(target)]
    work = [_flushes(1), _flushes(2)]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(db: MonitorDB, flushes: list[dict[Key, int]]) -> None:
        start.wait()
        try:
            for counts in flushes:
                db.add_counts(counts)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(writers, work, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    minutes: Counter[tuple[int, str]] = Counter()
    hours: Counter[tuple[int, str]] = Counter()
    events: Counter[str] = Counter()
    for flush in (*work[0], *work[1]):
        for (minute, event, *_), n in flush.items():
            minutes[minute, event] += n
            hours[minute // 60, event] += n
            events[event] += n
    reader = MonitorDB(target, readonly=True)
    try:
        by_minute = reader.query("SELECT minute, event, n FROM monitor_counts")
        by_hour = reader.query("SELECT hour, event, n FROM monitor_hourly")
        total = reader.counts(0, 120 * 60)
    finally:
        reader.close()
        for db in writers:
            db.close()
    assert {(m, e): n for m, e, n in by_minute} == minutes
    assert {(h, e): n for h, e, n in by_hour} == hours
    assert sorted(total, key=lambda r: r.event) == [
        CountRow(event, ROUTE, "web", "outcome", "accepted", events[event])
        for event in ("cart_updated", "order_completed")
    ]


def test_two_gateways_on_one_schema_count_every_request_once(new_pg_db: NewDB) -> None:
    target = new_pg_db()
    sent = {"cart_updated": 0, "product_viewed": 0}
    servers = []
    for _ in range(2):
        options = GatewayOptions(db=target, deliver=False, identity_refresh=0.0)
        app = create_gateway(options, AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))
        servers.append(start_in_thread(app))
    try:
        for i, server in enumerate(servers):
            with httpx.Client(base_url=server.url, auth=(SITE_ID, API_KEY), timeout=10) as client:
                for n in range(5 + i * 3):
                    name = "cart_updated" if n % 2 else "product_viewed"
                    r = client.post(f"/api/v1/customers/p{n}/events", json={"name": name})
                    assert r.status_code == 200, r.text
                    sent[name] += 1
    finally:
        for server in servers:
            server.stop()  # the last flush of each gateway's counts
    result = CliRunner().invoke(stats_command, ["--db", target, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sent == {"cart_updated": 6, "product_viewed": 7}
    assert [(row["event"], row["accepted"]) for row in json.loads(result.output)] == [
        ("product_viewed", 7),
        ("cart_updated", 6),
    ]
