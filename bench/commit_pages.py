"""What a SQLite commit writes: write-ahead-log pages per group commit, by table and index.

With ``synchronous=FULL`` every commit appends each page it changed to the write-ahead log
(a 24-byte frame header and the whole 4 KiB page, two ``pwrite`` calls, a checksum over both)
and fsyncs it. The pages a commit touches, not the bytes its rows hold, are therefore what the
durable path costs in the kernel and in SQLite: an index whose new entries land at random
places costs one page per entry, one whose entries append costs one page per commit.

The benchmark checks ``--requests`` requests of the sample D2C traffic (``bench/gateway.py``'s
draws: ``d2c_traffic(n, seed=3)``) through the example plan the gateway's way (``to_write``
with the plan's dedupe policy, each request received 0.3 ms after the previous one), commits
the first ``--warm`` of them in groups of ``--group``, checkpoints, then commits the rest with
checkpoints off and reads the new write-ahead log frame by frame: each frame's page is
attributed to its table or index by SQLite's ``dbstat`` (a page the file did not have before
the measured commits, by the tree that holds it after them). The figure it compares
with is the payload: the bytes of the rows' payloads a commit carries, so the last line is the
write amplification of the durable path.

    .venv/bin/python bench/commit_pages.py     # commits of 16, as bench/gateway.py sees at peak
    .venv/bin/python bench/commit_pages.py --group 100 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import machine_info, render_table
from trackguard.check.samples import d2c_traffic
from trackguard.contract.operations import Request
from trackguard.contract.routes import match
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.plan.loader import load_plan
from trackguard.store.base import Write
from trackguard.store.sqlite import SQLiteStore

PLAN = Path(__file__).resolve().parents[1] / "examples" / "d2c-plan.yaml"
WAL_HEADER, FRAME_HEADER = 32, 24


def writes(n: int) -> list[Write]:
    """The writes of ``n`` sample requests, received 0.3 ms apart, as the gateway makes them."""
    plan = load_plan(PLAN)
    checker, out, t0 = Checker(plan), [], time.time()
    for i, record in enumerate(d2c_traffic(n, seed=3)):
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = Request(method=record["method"], path=record["path"], body=raw, source="default")
        now = t0 + i * 0.0003
        verdict = checker.check(request, match(request.method, request.path), now=now)
        out.append(to_write(request, verdict, now, plan.dedupe))
    return out


def _owners(db: Path) -> dict[int, str]:
    """Page number -> the table or index that holds the page, from SQLite's ``dbstat``."""
    with sqlite3.connect(db) as conn:
        return {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}


def measure(all_writes: list[Write], warm: int, group: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tg.db"
        store = SQLiteStore(db, synchronous="FULL")
        try:
            for i in range(0, warm, group):
                store.commit(all_writes[i : min(i + group, warm)])
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            owner = _owners(db)
            # The store's own connection checkpoints at commit: off, the log keeps every frame.
            store._writer.execute("PRAGMA wal_autocheckpoint = 0")
            measured = all_writes[warm:]
            commits = 0
            for i in range(0, len(measured), group):
                store.commit(measured[i : i + group])
                commits += 1
            grown = _owners(db)  # pages the commits added, by the tree that holds them now
            frames: Counter[str] = Counter()
            with open(f"{db}-wal", "rb") as wal:
                wal.seek(WAL_HEADER)
                while header := wal.read(FRAME_HEADER):
                    (page,) = struct.unpack(">I", header[:4])
                    frames[owner.get(page) or grown.get(page, "(freed pages)")] += 1
                    wal.seek(page_size, os.SEEK_CUR)
        finally:
            store.close()
    payload = sum(len(r.payload) for w in measured for r in w.outbox)
    total = sum(frames.values())
    return {
        "requests": len(measured),
        "group": group,
        "commits": commits,
        "page_size": page_size,
        "frames": dict(frames.most_common()),
        "frames_per_commit": total / commits,
        "wal_bytes_per_request": total * (page_size + FRAME_HEADER) / len(measured),
        "payload_bytes_per_request": payload / len(measured),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4_000, help="Requests measured.")
    parser.add_argument("--warm", type=int, default=4_000, help="Requests committed first.")
    parser.add_argument("--group", type=int, default=16, help="Writes per commit.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.requests < 1 or args.warm < 0 or args.group < 1:
        raise SystemExit("Error: --requests and --group must be at least 1, --warm at least 0")
    result = measure(writes(args.warm + args.requests), args.warm, args.group)
    result["machine"] = machine_info(None)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    commits = result["commits"]
    rows = [[name, f"{n / commits:.2f}"] for name, n in result["frames"].items()]
    rows.append(["all", f"{result['frames_per_commit']:.2f}"])
    print(
        f"write-ahead-log pages per commit of {args.group} requests ({result['requests']} requests"
        f" after {args.warm}, {commits} commits, page size {result['page_size']})\n"
    )
    print(render_table(["table or index", "pages/commit"], rows, align="lr"))
    wal, payload = result["wal_bytes_per_request"], result["payload_bytes_per_request"]
    print(
        f"\nwrite-ahead log {wal:,.0f} bytes a request vs payload {payload:,.0f}:"
        f" {wal / payload:.1f}x"
    )


if __name__ == "__main__":
    main()
