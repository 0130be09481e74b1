"""How PostgresStore writes a group commit's outbox rows: the store's one INSERT reading the
rows from a JSON text (``postgres._insert_outbox``, which takes the rows' numbers in the same
statement) beside COPY, executemany (pipelined by psycopg) and one multi-row INSERT, each in its
own transaction of ``--rows`` rows, as a group commit is. Rows are the size of a typical event's
payload. COPY is the fastest alone, but a commit cannot send it in a pipeline with its other
statements (psycopg refuses COPY in pipeline mode), and it costs a round trip more plus one to
take the numbers; this prints rows/s of each and its ratio to COPY.

    .venv/bin/python bench/store_insert.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from _common import fmt_int, fmt_ratio, measure_round_robin, render_table
from trackguard.store.postgres import OUTBOX_INSERT_COLUMNS, PostgresStore, _insert_outbox

_COLUMNS = OUTBOX_INSERT_COLUMNS.split(", ")


def rows(n: int, start: int) -> list[tuple[Any, ...]]:
    payload = b'{"v2":{"type":"person","action":"event","identifiers":{"id":"42"},"name":"x"}}'
    rest = ("pending", 0, 0.0, None, None, "POST /api/v2/batch", "1")
    return [
        (
            start + i,
            1.7e9,
            f"id:{i % 97}",
            payload,
            f"k{start + i}",
            "order_completed",
            "web",
            *rest,
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=100, help="rows per transaction")
    ap.add_argument("--commits", type=int, default=50, help="transactions per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    PostgresStore(args.url, schema=schema).close()
    conn = psycopg.connect(args.url, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    cols = ", ".join(_COLUMNS)
    counter = [0]

    def batch() -> list[tuple[Any, ...]]:
        # Numbered below 0: the store's own numbers (``sequences``) count up from 1.
        counter[0] += args.rows
        return rows(args.rows, -counter[0])

    def copy() -> None:
        for _ in range(args.commits):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY outbox ({cols}) FROM STDIN") as cp,
            ):
                for r in batch():
                    cp.write_row(r)

    def executemany() -> None:
        marks = ", ".join(["%s"] * len(_COLUMNS))
        for _ in range(args.commits):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(f"INSERT INTO outbox ({cols}) VALUES ({marks})", batch())

    def multirow() -> None:
        one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        for _ in range(args.commits):
            data = batch()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO outbox ({cols}) VALUES " + ", ".join([one] * len(data)),
                    [v for r in data for v in r],
                )

    def store() -> None:
        for _ in range(args.commits):
            data = [r[1:] for r in batch()]  # the store numbers them
            with conn.transaction(), conn.cursor() as cur:
                _insert_outbox(cur, data)

    runs: dict[str, Callable[[], object]] = {
        "COPY": copy,
        "INSERT from JSON (store)": store,
        "executemany (pipelined)": executemany,
        "multi-row INSERT": multirow,
    }
    try:
        n = args.rows * args.commits
        timings = measure_round_robin(runs, dict.fromkeys(runs, n), repeats=args.repeats)
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()
    base = timings["COPY"].per_second
    print(
        f"psycopg {psycopg.__version__}: {args.commits} transactions of {args.rows} rows,"
        f" median of {args.repeats}"
    )
    print(
        render_table(
            ["method", "rows/s", "min..max", "vs COPY"],
            [
                [
                    name,
                    fmt_int(t.per_second),
                    f"{fmt_int(t.spread[0])}..{fmt_int(t.spread[1])}",
                    fmt_ratio(t.per_second / base),
                ]
                for name, t in timings.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
