"""Instructions per request: what the gateway costs, counted by valgrind instead of timed.

The machines here are shared and differ about 2x from one to the next; requests per CPU second
(``bench/gateway.py``) move 10-20% between runs of the same code. An instruction count does
not: callgrind counts the instructions a process executes in user space, run after run, to
within 1%. It is the measure to judge a change to the request path by; it does not see the
kernel (sockets, fsync) or the CPU's caches, which ``bench/gateway.py`` does.

Each figure comes from two runs of the same process under ``valgrind --tool=callgrind``, one
sending 500 requests and one 2,500, so start-up (imports, the plan, the sample) cancels out:
(instructions of the long run - those of the short run) / 2,000.

* **gateway**: the real gateway ASGI app (``bench/_apps.py:gateway``: example plan, SQLite
  with ``synchronous=FULL``, dedupe and identity on, the monitor counting), driven in-process
  by 32 concurrent tasks with 2,500 requests of the D2C sample (seed 3, the draws
  ``bench/gateway.py`` sends; cut at 2,500, their event times are recent: few are late); no HTTP
  server, so what is counted is trackguard's own work per request, the group-commit thread
  included. Each request carries the body-gap extension trackguard's own server sets, so the
  app skips its body timer as it does when served (``http.asgi.app_body_timeout``). Timers
  that tick by the wall clock (the identity refresh, the monitor's flush) are off, because
  valgrind slows the process 50x and they would run 50x as often per request.
* **commit**: ``SQLiteStore.commit`` alone, the same requests' writes in groups of 18 (the
  group size ``bench/gateway.py`` measures at peak).
* **commit on PostgreSQL** (with ``--pg-url``): ``PostgresStore.commit`` alone, the same
  writes and groups, in a schema of its own (dropped after). Only the gateway's side is
  counted: the backend that runs the statements is another process, which valgrind does not
  see (``bench/gateway.py`` counts its CPU time).

``--base REV`` measures a git revision the same way in a temporary worktree and prints the
ratio, so a change is judged against the code before it on the same machine.

    .venv/bin/python bench/instructions.py [--base REV] [--pg-url URL] [--parts PART ...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHORT, LONG = 500, 2_500
CONCURRENCY = 32
COMMIT_GROUP = 18
SITE_ID, API_KEY = "bench-site", "bench-key"
PARTS = ("gateway", "commit", "commit-pg")


def _sample(n: int) -> list[tuple[str, str, bytes]]:
    from trackguard.check.samples import d2c_traffic

    out = []  # always LONG made, so both runs do the same work before the counted part
    for record in d2c_traffic(LONG, seed=3):
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        out.append((record["method"], record["path"], raw))
    return out[:n]


def _gateway(db: str) -> Any:
    """The gateway app of ``bench/gateway.py`` (``_apps.gateway``) on the store ``db``."""
    os.environ.update(TG_BENCH_DB=db, TG_BENCH_PLAN=str(REPO / "examples" / "d2c-plan.yaml"))
    sys.path.insert(0, str(REPO / "bench"))
    import _apps

    return _apps.gateway()


async def _drive_gateway(n: int, db: str) -> None:
    """Send ``n`` requests through the gateway app, ``CONCURRENCY`` at a time."""
    app = _gateway(db)
    app.parts.identity_refresh = 0
    if app.parts.monitor is not None:
        app.parts.monitor.interval = 1e9
    requests = _sample(n)
    auth = b"Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode())
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await outbox.get()
    statuses: dict[int, int] = {}

    async def one(method: str, target: str, body: bytes) -> None:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [
                (b"host", b"bench"),
                (b"authorization", auth),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            # http.asgi.BODY_GAP_EXTENSION, spelled out: a --base revision may predate it.
            "extensions": {"trackguard.body_gap": {"seconds": 5.0}},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def client(k: int) -> None:
        for i in range(k, len(requests), CONCURRENCY):
            await one(*requests[i])

    await asyncio.gather(*(client(k) for k in range(CONCURRENCY)))
    if sum(statuses.values()) != n or not set(statuses) <= {200, 400}:
        raise SystemExit(f"unexpected answers: {statuses}")
    # Every answer followed its commit, so nothing is left to write. No shutdown: the monitor's
    # last round (a data-health snapshot, once per 15 minutes in a real gateway) is not a cost
    # of these requests.
    life.cancel()
    sys.stdout.flush()
    os._exit(0)


def _drive_commit(n: int, db: str, pg_url: str = "") -> None:
    """Commit the writes of ``n`` requests, ``COMMIT_GROUP`` at a time (to SQLite, or with
    ``pg_url`` to a fresh PostgreSQL schema)."""
    import time

    from trackguard.contract.operations import Request
    from trackguard.contract.routes import match
    from trackguard.ingest import to_write
    from trackguard.store.sqlite import SQLiteStore

    app = _gateway(f"{db}.gateway")  # its checker and dedupe policy, exactly as configured
    parts, now = app.parts, time.time()
    writes = []
    for method, target, body in _sample(LONG):
        request = Request(method=method, path=target, body=body, source="default")
        verdict = parts.checker.check(request, match(method, target), now=now, state=parts.state)
        writes.append(to_write(request, verdict, now, parts.dedupe))
    parts.store.close()
    if pg_url:
        _commit_pg(writes[:n], pg_url)
        return
    store = SQLiteStore(Path(db), synchronous="FULL")
    try:
        for i in range(0, n, COMMIT_GROUP):
            store.commit(writes[i : min(i + COMMIT_GROUP, n)])
    finally:
        store.close()


def _commit_pg(writes: list[Any], url: str) -> None:
    """Commit ``writes``, ``COMMIT_GROUP`` at a time, in a new schema of ``url``'s database."""
    import uuid

    import psycopg

    from trackguard.store.postgres import PostgresStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(url, schema=schema, pool_size=1)
    try:
        for i in range(0, len(writes), COMMIT_GROUP):
            store.commit(writes[i : i + COMMIT_GROUP])
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _count(src: Path, part: str, n: int) -> int:
    """Instructions of one process running ``part`` for ``n`` requests from ``src``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(src)}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            part,
            str(n),
            f"{tmp}/tg.db",
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"Error: {part} under valgrind failed:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def measure(src: Path, parts: Sequence[str]) -> dict[str, float]:
    """Instructions per request of each part, for the code under ``src``."""
    figures = {}
    for part in parts:
        short, long = _count(src, part, SHORT), _count(src, part, LONG)
        figures[part] = (long - short) / (LONG - SHORT)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="A git revision to compare with (a temporary worktree).")
    parser.add_argument(
        "--pg-url",
        default="",
        help="Also count PostgresStore.commit (commit-pg) on this server, in a schema of its own.",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        help="What to count (default: gateway and commit, and commit-pg with --pg-url).",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        part, n, db = args.worker
        if part == "gateway":
            import uvloop

            uvloop.run(_drive_gateway(int(n), db))
        else:
            pg_url = os.environ["TG_BENCH_PG_URL"] if part == "commit-pg" else ""
            _drive_commit(int(n), db, pg_url)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("Error: valgrind is not installed (Debian: apt install valgrind)")
    parts = args.parts or [p for p in PARTS if p != "commit-pg" or args.pg_url]
    if "commit-pg" in parts and not args.pg_url:
        raise SystemExit("Error: commit-pg needs --pg-url")
    if args.pg_url:
        os.environ["TG_BENCH_PG_URL"] = args.pg_url
    rows = [("this checkout", measure(REPO / "src", parts))]
    if args.base:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "base"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), args.base],
                check=True,
            )
            try:
                rows.insert(0, (f"base {args.base}", measure(tree / "src", parts)))
            finally:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=True,
                )
    print(f"instructions per request (valgrind callgrind, {LONG} - {SHORT} requests)")
    print(f"{'code':<24}" + "".join(f" {part:>10}" for part in parts))
    for name, figures in rows:
        print(f"{name:<24}" + "".join(f" {figures[part]:>10,.0f}" for part in parts))
    if len(rows) == 2:
        (_, base), (_, new) = rows
        ratios = "  ".join(f"{part} {new[part] / base[part]:.2f}x" for part in parts)
        print(f"this checkout / base: {ratios}")


if __name__ == "__main__":
    main()
