"""What one monitor flush costs on each store: SQLite, PostgreSQL, and two PostgreSQL writers
flushing the same minute at once (two gateways on one schema). A flush adds one process's
counts of the last interval (``--keys`` buckets, a busy gateway's 5 s) to the shared rows; each
gateway flushes every 5 s, so flushes/s divided by 0.2 is how many gateways one database
absorbs before the monitor's writes alone would keep it busy. Prints flushes/s and the ratio to
SQLite.

    .venv/bin/python bench/monitor_flush.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from _common import fmt_int, fmt_ratio, measure_round_robin, render_table
from trackguard.monitor.db import MonitorDB
from trackguard.monitor.tally import Key

_EVENTS = ("cart_updated", "order_completed", "product_viewed", "@identify", "checkout_started")
_ROUTES = ("POST /api/v1/customers/{identifier}/events", "PUT /api/v1/customers/{identifier}")
_NAMES = ("accepted", "warned", "invalid", "rejected")


def tally(minute: int, keys: int) -> dict[Key, int]:
    """``keys`` buckets of one minute, as a gateway's tally holds them."""
    out: dict[Key, int] = {}
    n = 0
    while len(out) < keys:
        event = _EVENTS[n % len(_EVENTS)]
        route = _ROUTES[(n // len(_EVENTS)) % len(_ROUTES)]
        name = _NAMES[(n // 10) % len(_NAMES)]
        out[minute, event, route, f"source{n // 40}", "outcome", name] = 1 + n % 7
        n += 1
    return out


def flushes(db: MonitorDB, count: int, keys: int, start: list[int]) -> None:
    for _ in range(count):
        start[0] += 1
        db.add_counts(tally(start[0] // 12, keys))  # 12 flushes a minute: one every 5 s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--keys", type=int, default=60, help="buckets per flush")
    ap.add_argument("--flushes", type=int, default=200, help="flushes per run and writer")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    target = f"{args.url}?schema={schema}"
    with tempfile.TemporaryDirectory() as folder:
        sqlite = MonitorDB(Path(folder) / "tg.db")
        pg, pg2 = MonitorDB(target), MonitorDB(target)
        mark = [0]

        def two_writers() -> None:
            other = threading.Thread(target=flushes, args=(pg2, args.flushes, args.keys, mark))
            other.start()
            flushes(pg, args.flushes, args.keys, mark)
            other.join()

        runs: dict[str, Callable[[], object]] = {
            "SQLite": lambda: flushes(sqlite, args.flushes, args.keys, mark),
            "PostgreSQL": lambda: flushes(pg, args.flushes, args.keys, mark),
            "PostgreSQL, 2 writers": two_writers,
        }
        items = {**dict.fromkeys(runs, args.flushes), "PostgreSQL, 2 writers": 2 * args.flushes}
        try:
            timings = measure_round_robin(runs, items, repeats=args.repeats)
        finally:
            for db in (sqlite, pg, pg2):
                db.close()
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    base = timings["SQLite"].per_second
    print(
        f"psycopg {psycopg.__version__}: {args.flushes} flushes of {args.keys} buckets per"
        f" writer, median of {args.repeats}"
    )
    print(
        render_table(
            ["store", "flushes/s", "min..max", "gateways at 5 s", "vs SQLite"],
            [
                [
                    name,
                    fmt_int(t.per_second),
                    f"{fmt_int(t.spread[0])}..{fmt_int(t.spread[1])}",
                    fmt_int(t.per_second * 5),
                    fmt_ratio(t.per_second / base),
                ]
                for name, t in timings.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
