"""Online backup while a writer commits, restore and deliver from the copy, vacuum."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from trackguard.cli.deliver import deliver_command
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.convert import to_outbox_rows
from trackguard.monitor.db import MonitorDB
from trackguard.store.backup import backup, vacuum
from trackguard.store.base import OutboxRow, QuarantineRecord, StoreError, Write
from trackguard.store.info import store_info
from trackguard.store.sql import session
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore

PAYLOAD = b'{"v2":{"type":"person","action":"event","name":"x"}}' + b" " * 600


def _write(n: int) -> Write:
    """Commit ``n``: two outbox rows and one quarantine record, all tagged with ``n``."""
    rows = tuple(
        OutboxRow(received_at=float(n), person=f"p{n}", payload=PAYLOAD, source=str(n))
        for _ in range(2)
    )
    record = QuarantineRecord(
        received_at=float(n), kind="plan", method="POST", path="/x", source=str(n)
    )
    return Write(outbox=rows, quarantine=(record,))


def test_a_backup_taken_while_a_writer_commits_is_a_consistent_prefix(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db, synchronous="NORMAL")
    store.commit([_write(n) for n in range(1, 5001)])  # 10k rows, ~8 MB: the copy takes a while
    committed = [5000]
    stop = threading.Event()

    def writer() -> None:
        n = committed[0]
        while not stop.is_set():
            n += 1
            store.commit([_write(n)])
            committed[0] = n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = []
        for i in range(4):
            before = committed[0]
            dest = tmp_path / f"copy{i}.db"
            result = backup(db, dest)
            copies.append((dest, before, committed[0], result))
    finally:
        stop.set()
        thread.join()
        store.close()
    assert committed[0] > 5000  # the writer went on committing throughout
    for dest, before, after, result in copies:
        assert result.schema_version == SCHEMA_VERSION
        assert result.size_bytes == dest.stat().st_size
        assert dest.stat().st_mode & 0o777 == 0o600
        con = sqlite3.connect(dest)
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            seqs = [s for (s,) in con.execute("SELECT seq FROM outbox ORDER BY seq")]
            n = len(seqs) // 2
            # every commit up to some n, nothing after: a prefix of the commit order...
            assert before <= n <= after
            assert seqs == list(range(1, 2 * n + 1))
            sources = con.execute("SELECT DISTINCT source FROM outbox ORDER BY seq").fetchall()
            assert sources == [(str(k),) for k in range(1, n + 1)]
            # ...the same in every table of the snapshot, counts included
            assert con.execute("SELECT count(*), max(id) FROM quarantine").fetchone() == (n, n)
            counts = dict(con.execute("SELECT name, n FROM counts").fetchall())
            assert (counts["pending"], counts["quarantine"]) == (2 * n, n)
        finally:
            con.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _fill(db: Path, people: int) -> None:
    store = SQLiteStore(db)
    checker = Checker()
    try:
        for i in range(1, people + 1):
            body = json.dumps({"email": f"p{i}@example.com"}).encode()
            request = Request(method="PUT", path=f"/api/v1/customers/{i}", body=body)
            rows = to_outbox_rows(
                checker.check(request).operations, received_at=time.time(), source=None
            )
            store.commit([Write(outbox=rows)])
    finally:
        store.close()


def test_restore_a_backup_then_deliver_from_it(tmp_path: Path, emu: Any) -> None:
    db = tmp_path / "tg.db"
    _fill(db, 3)
    saved = tmp_path / "backup" / "tg.db"
    saved.parent.mkdir()
    backup(db, saved)
    # the store is lost...
    db.unlink()
    for leftover in (db.with_name("tg.db-wal"), db.with_name("tg.db-shm")):
        leftover.unlink(missing_ok=True)
    # ...restore: with every writer stopped, copy the backup into place
    shutil.copyfile(saved, db)
    env = {"TRACKGUARD_SITE_ID": emu.site_id, "TRACKGUARD_API_KEY": emu.api_key}
    args = ["--db", str(db), "--upstream", emu.url, "--once"]
    result = CliRunner().invoke(deliver_command, args, env=env)
    assert (result.exit_code, result.output) == (
        0,
        "delivered 3, quarantined 0, retried 0; 0 pending\n",
    )
    assert sorted(p["email"] for p in emu.people()) == [f"p{i}@example.com" for i in (1, 2, 3)]


def test_backup_refuses_what_it_cannot_do_and_leaves_dest_alone(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    SQLiteStore(db).close()
    with pytest.raises(
        StoreError, match=r"no store at .*nope\.db \(trackguard serve creates one\)$"
    ):
        backup(tmp_path / "nope.db", tmp_path / "out.db")
    with pytest.raises(StoreError, match=r": is a directory; give the backup's file name$"):
        backup(db, tmp_path)
    with pytest.raises(StoreError, match=r"tg\.db: is the store itself; back it up to another"):
        backup(db, db)
    with pytest.raises(StoreError, match=r"missing: no such directory$"):
        backup(db, tmp_path / "missing" / "out.db")
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).close()
    kept = tmp_path / "kept.db"
    kept.write_bytes(b"previous backup")
    with pytest.raises(StoreError, match=r"plain\.db: not a trackguard store \(no schema\)$"):
        backup(plain, kept)
    assert kept.read_bytes() == b"previous backup"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_vacuum_gives_the_pages_of_deleted_rows_back(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db, synchronous="NORMAL")
    store.commit([_write(n) for n in range(1, 2001)])
    with store.transaction() as conn:
        conn.execute("DELETE FROM outbox")
        conn.execute("DELETE FROM quarantine")
    store.close()
    full = db.stat().st_size
    result = vacuum(db)
    assert result.before_bytes == full
    assert result.after_bytes == db.stat().st_size
    assert result.after_bytes < full // 10
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA freelist_count").fetchone() == (0,)
    finally:
        con.close()


def _opened(path: Path, readonly: bool) -> None:
    with session(path, readonly=readonly):
        pass


@pytest.mark.parametrize(
    ("content", "reason", "writers"),
    [
        # An empty SQLite file: the store's readers refuse it (a writer makes it a store).
        (None, "not a trackguard store \\(no schema\\)", False),
        (b"not a database at all" * 100, "cannot open the store: file is not a database", True),
    ],
)
def test_every_reader_refuses_a_file_that_is_not_a_store_in_the_same_words(
    tmp_path: Path, content: bytes | None, reason: str, writers: bool
) -> None:
    path = tmp_path / "other.db"
    if content is None:
        sqlite3.connect(path).close()
    else:
        path.write_bytes(content)
    attempts: list[Callable[[], object]] = [
        lambda: backup(path, tmp_path / "out.db"),
        lambda: vacuum(path),
        lambda: store_info(path),
        lambda: SQLiteStore(path, readonly=True),
        lambda: _opened(path, True),
        lambda: _opened(path, False),
    ]
    if writers:  # the monitor's own tables may live in a file of their own: it opens any
        attempts += [
            lambda: SQLiteStore(path),
            lambda: MonitorDB(path),
            lambda: MonitorDB(path, readonly=True),
        ]
    for attempt in attempts:
        with pytest.raises(StoreError, match=f"^{path}: {reason}$"):
            attempt()
