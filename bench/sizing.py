"""Sizing: the gateway's memory under the sample traffic, and the disk it uses per operation.

Starts ``trackguard emulate`` and ``trackguard serve`` (real processes on loopback, delivery in
the gateway), sends ``--requests`` of ``trackguard sample``'s traffic with a few concurrent
clients, waits until delivery has emptied the outbox, and reads: the gateway's resident memory
(idle after start-up, and its peak, ``VmHWM``), the store's size after a WAL checkpoint divided
by the operations it holds, the same for quarantine records, and the request log's bytes per
request; each extrapolated to a million. The memory is compared with the 150 MB target of
bench/gateway.py (the ratio printed is ours / target).

The gateway keeps the identity map (the id behind each email, ids by case-folded form) and each
buyer's latest order in memory for the request path, so its memory grows with the people the
store knows, not with the traffic. ``--people N`` measures that: ``trackguard serve`` started
on a store holding N bindings and N profiles (written straight into a fresh store's tables),
its resident memory once ready, less the same on an empty store, per million people.

Each figure is the median of ``--repeats`` runs. Not a test: ``.venv/bin/python bench/sizing.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info
from trackguard.check.samples import d2c_traffic
from trackguard.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "examples" / "d2c-plan.yaml"
SITE, KEY = "sizing-site", "sizing-key"
TARGET_MIB = 150.0
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(args: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("trackguard")
    proc = subprocess.Popen([str(exe), *args], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {proc.returncode}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start")


def _rss_mib(pid: int, field: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(m.group(1)) / 1024 if m else 0.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _send(url: str, records: list[dict[str, Any]], clients: int) -> None:
    def one(chunk: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=url, auth=(SITE, KEY), timeout=30) as client:
            for r in chunk:
                body = r["body"]
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                client.request(
                    r["method"],
                    r["path"],
                    content=raw,
                    headers={"content-type": "application/json"},
                )

    chunks = [records[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, chunks))


def run_once(n: int, clients: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="trackguard-sizing-"))
    env = {**os.environ, "TRACKGUARD_SITE_ID": SITE, "TRACKGUARD_API_KEY": KEY}
    emu_port, gw_port = _free_port(), _free_port()
    emulator = _start(["emulate", "--listen", f"127.0.0.1:{emu_port}"], emu_port, env)
    db, log = work / "tg.db", work / "requests.jsonl"
    gateway = None
    try:
        flags = {
            "--plan": PLAN,
            "--db": db,
            "--listen": f"127.0.0.1:{gw_port}",
            "--upstream": f"http://127.0.0.1:{emu_port}",
            "--request-log": log,
            "--rate": 1000,
        }
        argv = ["serve", *(str(part) for pair in flags.items() for part in pair)]
        gateway = _start(argv, gw_port, env)
        time.sleep(1.0)
        idle = _rss_mib(gateway.pid, "VmRSS")
        _send(f"http://127.0.0.1:{gw_port}", list(d2c_traffic(n, seed=5)), clients)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                pending = conn.execute(
                    "SELECT count(*) FROM outbox WHERE state = 'pending'"
                ).fetchone()[0]
            if not pending:
                break
            time.sleep(0.5)
        peak = _rss_mib(gateway.pid, "VmHWM")
    finally:
        if gateway is not None:
            _stop(gateway)
        _stop(emulator)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        q_bytes = conn.execute(
            "SELECT coalesce(sum(length(body) + length(findings) + length(coalesce(headers, ''))),"
            " 0) FROM quarantine"
        ).fetchone()[0]
    store = db.stat().st_size + sum(p.stat().st_size for p in work.glob("tg.db-*") if p.exists())
    lines = sum(1 for _ in log.open("rb"))
    result = {
        "requests": n,
        "operations": rows,
        "quarantined": quarantined,
        "idle_rss_mib": idle,
        "peak_rss_mib": peak,
        "store_bytes": store,
        "store_bytes_per_operation": store / max(rows, 1),
        "quarantine_bytes_per_record": q_bytes / max(quarantined, 1),
        "request_log_bytes_per_request": log.stat().st_size / max(lines, 1),
    }
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    return result


def _serve_rss(db: Path) -> float:
    """Resident MiB of ``trackguard serve`` on ``db`` once ready (its state loaded)."""
    port = _free_port()
    argv = ["serve", "--plan", str(PLAN), "--db", str(db), "--no-deliver"]
    argv += ["--listen", f"127.0.0.1:{port}"]
    env = {**os.environ, "TRACKGUARD_SITE_ID": SITE, "TRACKGUARD_API_KEY": KEY}
    gateway = _start(argv, port, env)
    try:
        deadline = time.monotonic() + 120
        while httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not become ready")
            time.sleep(0.1)
        time.sleep(1.0)
        return _rss_mib(gateway.pid, "VmRSS")
    finally:
        _stop(gateway)


def people_memory(people: int) -> dict[str, float]:
    """The gateway's resident memory on a store that knows ``people`` people (an email bound
    to an id, and a profile with a latest order, each) against an empty store."""
    work = Path(tempfile.mkdtemp(prefix="trackguard-sizing-people-"))
    try:
        empty, full = work / "empty.db", work / "people.db"
        for db in (empty, full):
            SQLiteStore(db).close()
        with sqlite3.connect(full) as conn:
            conn.executemany(
                "INSERT INTO identities (email, id, seq) VALUES (?, ?, ?)",
                (
                    (f"customer.{i:07d}@example.com", f"cus_{i:010d}", i)
                    for i in range(1, people + 1)
                ),
            )
            conn.executemany(
                "INSERT INTO profiles (person, first_order_date, last_order_date, order_count,"
                " lifetime_value, seq) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (f"id:cus_{i:010d}", 1_790_000_000, 1_790_000_000 + i, 1, 49.9, i)
                    for i in range(1, people + 1)
                ),
            )
        base, rss = _serve_rss(empty), _serve_rss(full)
    finally:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    return {"people": people, "empty_rss_mib": base, "people_rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--people",
        type=int,
        default=200_000,
        help="People in the store for the identity-state memory figure (0: skip it).",
    )
    args = parser.parse_args()
    if args.people < 0:
        parser.error("--people must be >= 0")
    runs = [run_once(args.requests, args.clients) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    people = [people_memory(args.people) for _ in range(args.repeats)] if args.people else []
    print(json.dumps({"machine": machine_info(None), "runs": runs, "people": people}, indent=1))
    print(f"\nsizing: {args.requests:,} sample requests, {args.clients} clients,", end=" ")
    print(f"median of {args.repeats}")

    def row(label: str, value: float, per_million: bool = False, note: str = "") -> None:
        million = f"{value * 1e6 / MIB:>10,.0f} MiB" if per_million else " " * 14
        print(f"{label:<40} {value:>12,.1f} {million} {note}".rstrip())

    print(f"{'figure':<40} {'median':>12} {'per million':>14}")
    row("operations stored", med["operations"])
    row("quarantine records", med["quarantined"])
    row("store bytes per operation", med["store_bytes_per_operation"], True)
    row("quarantine bytes per record (payload)", med["quarantine_bytes_per_record"], True)
    row("request log bytes per request", med["request_log_bytes_per_request"], True)
    row("gateway RSS idle (MiB)", med["idle_rss_mib"])
    ratio = med["peak_rss_mib"] / TARGET_MIB
    row(
        "gateway RSS peak (MiB)",
        med["peak_rss_mib"],
        note=f"{ratio:.2f} x {TARGET_MIB:.0f} MB target",
    )
    if people:
        grown = statistics.median(r["people_rss_mib"] - r["empty_rss_mib"] for r in people)
        print(
            f"\nidentity state: serve on a store of {args.people:,} people (a binding and a"
            f" profile each) is {grown:,.1f} MiB larger than on an empty store"
            f" = {grown * 1e6 / args.people:,.0f} MiB per million people"
            f" ({grown * MIB / args.people:,.0f} bytes a person)"
        )


if __name__ == "__main__":
    main()
