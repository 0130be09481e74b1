"""Backfill throughput: CSV orders through the example plan into a fresh store.

Prints rows/s and peak RSS (constant memory: RSS should not grow with --rows).
Not yet measured here: delivery to the emulator (rows per upstream request).

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

from trackguard.plan.loader import load_plan
from trackguard.recovery.backfill import backfill
from trackguard.recovery.mapping import parse_mapping
from trackguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
MAPPING = """\
person: {id: customer_id}
timestamp: {column: ordered_at, format: iso8601}
data: {order_id: order_id, total: {column: total, type: number}, currency: currency}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
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
        store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {sys.version.split()[0]}  rows {args.rows}  batch {args.batch}")
    print(
        f"backfill: {report.rows_read / seconds:,.0f} rows/s ({seconds:.1f} s),"
        f" accepted {report.accepted} fixed {report.fixed} rejected {report.rejected}"
    )
    print(f"outbox: {stats}")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
