"""Backfill throughput: CSV orders through the example plan into a fresh store.

Prints rows/s and peak RSS (constant memory: RSS should not grow with --rows), then delivers
the outbox to an emulator in a thread at ``--rate`` requests per second (Customer.io allows
100) and prints delivered events/s, events per upstream request and the emulator's busiest
second.

    .venv/bin/python bench/backfill.py --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.plan.loader import load_plan
from trackguard.recovery.backfill import backfill
from trackguard.recovery.mapping import parse_mapping
from trackguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
SITE, KEY = "bench-site", "bench-key"
MAPPING = """\
person: {id: customer_id}
timestamp: {column: ordered_at, format: iso8601}
data: {order_id: order_id, total: {column: total, type: number}, currency: currency}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="upstream requests per second")
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "orders.csv.gz"
        with gzip.open(source, "wt", newline="") as f:
            w = csv.writer(f)
            w.writerow(["order_id", "customer_id", "ordered_at", "total", "currency"])
            for i in range(args.rows):
                w.writerow(
                    [
                        f"O{i}",
                        f"cus_{rng.randrange(20_000)}",
                        "2025-03-01T10:00:00Z",
                        f"{rng.randrange(100, 50_000) / 100:.2f}",
                        "USD",
                    ]
                )
        store = SQLiteStore(Path(tmp) / "tg.db", synchronous="NORMAL")
        start = time.perf_counter()
        report = backfill(
            str(source),
            store=store,
            mapping=parse_mapping(MAPPING),
            event="order_completed",
            plan=load_plan(ROOT / "examples" / "d2c-plan.yaml"),
            batch_size=args.batch,
        )
        seconds = time.perf_counter() - start
        stats = store.outbox_stats()
        emulator = create_emulator(SITE, KEY)
        server = start_in_thread(emulator)
        transport = HttpxTransport(server.url, SITE, KEY)
        worker = DeliveryWorker(store, transport, rate=args.rate)
        delivered = requests = 0
        start = time.perf_counter()
        try:
            while store.outbox_stats().pending:
                round_ = worker.run_once()
                delivered += round_.delivered
                requests += round_.requests
                if round_.retry_at is not None:
                    time.sleep(max(0.0, round_.retry_at - time.time()))
                elif round_.leased == 0:
                    time.sleep(0.05)  # pending rows not due yet
            send_seconds = time.perf_counter() - start
            upstream = emulator.stats()
        finally:
            transport.close()
            server.stop()
            emulator.close()
            after = store.outbox_stats()
            store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {sys.version.split()[0]}  rows {args.rows}  batch {args.batch}")
    print(
        f"backfill: {report.rows_read / seconds:,.0f} rows/s ({seconds:.1f} s),"
        f" accepted {report.accepted} fixed {report.fixed} rejected {report.rejected}"
    )
    print(f"outbox: {stats}")
    print(
        f"delivery at {args.rate:g} req/s: {delivered / send_seconds:,.0f} events/s"
        f" ({delivered} outbox rows: orders + derived identifies, in {send_seconds:.1f} s),"
        f" {requests} requests, {delivered / max(requests, 1):,.1f} events/request,"
        f" emulator max {upstream['max_per_second']} req/s"
    )
    print(f"emulator: {upstream}")
    print(f"outbox after delivery: {after}")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
