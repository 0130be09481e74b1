"""Crash durability: a write acknowledged by GroupCommitter survives ``kill -9``.

A child process plays the gateway: 20 concurrent requests each submit writes one after another
and print the write's ident as soon as ``submit`` returns (the moment the gateway would answer
2xx). The test SIGKILLs it mid-stream, reopens the database and checks that every acknowledged
write is there, once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from trackguard.store import SQLiteStore

WORKERS = 20
KILL_AFTER = 1500  # acknowledgements seen before the kill

CHILD = """
import asyncio, sys
from trackguard.store import GroupCommitter, OutboxRow, SQLiteStore, Write

async def main(path: str) -> None:
    committer = GroupCommitter(SQLiteStore(path), max_delay=0.001, max_rows=64)
    committer.start()

    async def request(w: int) -> None:
        for i in range(1_000_000):
            ident = f"{w}:{i}"
            row = OutboxRow(received_at=0.0, person=f"p{w}", payload=b"{}", dedupe_key=ident)
            await committer.submit(Write(outbox=(row,)))
            sys.stdout.write(ident + "\\n")
            sys.stdout.flush()

    await asyncio.gather(*(request(w) for w in range(WORKERS)))

asyncio.run(main(sys.argv[1]))
""".replace("WORKERS", str(WORKERS))


def test_store_crash_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(acked) < KILL_AFTER and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(line)
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:  # pragma: no cover - only when the test itself failed
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    assert len(acked) >= KILL_AFTER, err
    # A line cut by the kill was not fully acknowledged; whole lines were.
    acked += out.splitlines(keepends=True)
    acked_keys = [line[:-1] for line in acked if line.endswith("\n")]

    SQLiteStore(db).close()  # reopening recovers the WAL as the restarted gateway would
    con = sqlite3.connect(db)
    try:
        stored = [k for (k,) in con.execute("SELECT dedupe_key FROM outbox ORDER BY seq")]
    finally:
        con.close()

    assert len(stored) == len(set(stored)), "a write was committed twice"
    assert set(acked_keys) <= set(stored), "an acknowledged write was lost"
    # Each request awaited its writes one by one, so what is stored is, per request, exactly
    # its acknowledged writes plus at most the one in flight at the kill.
    by_worker: dict[int, list[int]] = {}
    for key in stored:
        w, i = key.split(":")
        by_worker.setdefault(int(w), []).append(int(i))
    acked_count = {w: 0 for w in range(WORKERS)}
    for key in acked_keys:
        acked_count[int(key.split(":")[0])] += 1
    for w in range(WORKERS):
        got = by_worker.get(w, [])
        assert got == list(range(len(got)))
        assert acked_count[w] <= len(got) <= acked_count[w] + 1
