"""Store sizing: bytes on disk per delivered operation, dedupe claim, quarantine record and
monitor bucket, measured on the sample traffic through the example plan, and the disk a store
holds at steady state for N events/day under the default retention.

Each request goes the gateway's way (check, ``to_write`` with the plan's dedupe policy, group
commits of 100), every accepted row is then delivered, and SQLite's ``dbstat`` gives the bytes
of each table with its indexes, pages as written (not vacuumed). The stored bytes per operation
are compared with the bytes of the payload delivery sends (the ratio is the store's overhead).

    .venv/bin/python bench/store_size.py --requests 20000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import render_table
from trackguard.check.samples import d2c_traffic
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.monitor import build_monitor
from trackguard.plan.loader import load_plan
from trackguard.store.retention import (
    DAY,
    DEFAULT_BATCH,
    MONITOR_RETENTION,
    OUTBOX,
    Retention,
    delete_batches,
)
from trackguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "examples" / "d2c-plan.yaml"
T0 = 1_764_000_000.0
#: What each table's bytes include: the table and its indexes.
GROUPS = {
    "outbox": ("outbox", "outbox_pending_seq", "outbox_pending_due", "outbox_finished"),
    "claims": ("claims", "claims_expires_at"),
    "quarantine": (
        "quarantine",
        "quarantine_received_at",
        "quarantine_event_name",
        "quarantine_kind",
        "quarantine_plan_version",
        "quarantine_route",
    ),
    "anonymous": ("anonymous", "anonymous_unlinked", "anonymous_first_seen"),
    "identities": ("identities", "identities_id", "identities_seq"),
    "profiles": ("profiles", "profiles_seq"),
    "monitor_counts": ("monitor_counts",),
}


def _request(record: dict[str, object]) -> Request:
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Request(method=str(record["method"]), path=str(record["path"]), body=raw)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--defect-rate", type=float, default=0.05, help="production-like: 0.05")
    parser.add_argument("--keep", type=Path, help="copy the measured store here")
    args = parser.parse_args()
    plan = load_plan(PLAN)
    checker = Checker(plan)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tg.db"
        store = SQLiteStore(db, synchronous="NORMAL")
        monitor = build_monitor(db, None, clock=lambda: T0)
        writes, payload_bytes, requests = [], 0, 0
        for i, record in enumerate(d2c_traffic(args.requests, defect_rate=args.defect_rate)):
            request = _request(record)
            verdict = checker.check(request)
            monitor.observe_request(verdict, verdict.route or "other", 200, "app", T0)
            writes.append(to_write(request, verdict, T0 + 7 * i, dedupe=plan.dedupe))
            requests += 1
            if len(writes) == 100:
                store.commit(writes)
                writes = []
        store.commit(writes)
        monitor.flush()  # every request in one minute: the most buckets a minute can hold
        monitor.stop()
        while rows := store.lease(1000, now=T0 + 7 * requests):
            payload_bytes += sum(len(r.payload) for r in rows)
            store.mark_delivered([r.seq for r in rows], now=T0 + 7 * requests)
        store.close()
        con = sqlite3.connect(db)
        sizes = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        counts = {g: con.execute(f"SELECT count(*) FROM {g}").fetchone()[0] for g in GROUPS}
        file_bytes = db.stat().st_size
        con.close()
        if args.keep is not None:
            shutil.copyfile(db, args.keep)
        held = _prune_batches(db, T0 + 7 * requests + Retention().outbox)
    per = {
        g: sum(sizes.get(n, 0) for n in names) / max(counts[g], 1) for g, names in GROUPS.items()
    }
    ops = counts["outbox"]
    print(
        f"{requests} sample requests (defect rate {args.defect_rate}) through {PLAN.name}:"
        f" {ops} operations delivered, {counts['claims']} dedupe claims,"
        f" {counts['quarantine']} quarantine records; file {file_bytes} bytes"
    )
    print()
    table = [
        [g, str(counts[g]), f"{sizes_of(sizes, names)}", f"{per[g]:.0f}" if counts[g] else "-"]
        for g, names in GROUPS.items()
    ]
    print(render_table(["table (+ indexes)", "rows", "bytes", "bytes/row"], table))
    print()
    payload = payload_bytes / max(ops, 1)
    print(
        f"stored bytes per delivered operation {per['outbox']:.0f} vs payload"
        f" {payload:.0f} bytes: ratio {per['outbox'] / payload:.2f}"
    )
    held.sort()
    median = statistics.median(held)
    print(
        f"a retention batch ({DEFAULT_BATCH} outbox rows) holds the write lock: median"
        f" {median * 1000:.1f} ms, max {held[-1] * 1000:.1f} ms over {len(held)} batches;"
        f" ratio to the 5 s busy_timeout writers wait: {median / 5.0:.4f}"
    )
    print()
    # Steady state under the default retention, for N accepted events a day (requests in the
    # sample's proportions): outbox rows for the outbox retention, claims for the dedupe
    # window, quarantine records for a 30-day quarantine purge, monitor buckets at their most.
    keep = Retention()
    claims_per_op = counts["claims"] / max(ops, 1)
    quarantine_per_op = counts["quarantine"] / max(ops, 1)
    monitor_bytes = (
        counts["monitor_counts"] * per["monitor_counts"] * 1440 * MONITOR_RETENTION / DAY
    )
    rows = []
    for n in (10_000, 100_000, 1_000_000, 10_000_000):
        outbox = n * keep.outbox / DAY * per["outbox"]
        claims = n * claims_per_op * plan.dedupe.window / DAY * per["claims"]
        quarantine = n * quarantine_per_op * 30 * per["quarantine"]
        total = outbox + claims + quarantine + monitor_bytes
        rows.append(
            [f"{n:,}"]
            + [f"{b / 2**20:,.0f}" for b in (outbox, claims, quarantine, monitor_bytes, total)]
        )
    print(
        f"steady state, MiB (outbox {keep.outbox / DAY:.0f}d, dedupe window"
        f" {plan.dedupe.window / DAY:.0f}d, quarantine purged at 30d, monitor"
        f" {MONITOR_RETENTION / DAY:.0f}d at {counts['monitor_counts']} buckets a minute):"
    )
    print(render_table(["events/day", "outbox", "claims", "quarantine", "monitor", "total"], rows))


def _prune_batches(db: Path, now: float) -> list[float]:
    """Seconds each retention batch (500 outbox rows) held the write lock, pruning them all."""
    store = SQLiteStore(db)
    held: list[float] = []

    @contextmanager
    def timed() -> Iterator[sqlite3.Connection]:
        with store.transaction() as conn:
            started = time.perf_counter()
            yield conn
        held.append(time.perf_counter() - started)

    try:
        delete_batches(timed, OUTBOX, now - Retention().outbox + 1, DEFAULT_BATCH)
    finally:
        store.close()
    return held


def sizes_of(sizes: dict[str, int], names: tuple[str, ...]) -> int:
    return sum(sizes.get(n, 0) for n in names)


if __name__ == "__main__":
    main()
