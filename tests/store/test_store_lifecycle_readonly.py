"""Read-only opening: read commands work on a store on a read-only mount, and never create,
upgrade-in-place without need, or write a file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from store_schema_env import schema_file

import trackguard.store.sqlite as sqlite_module
from trackguard.cli import main
from trackguard.cli.monitor import alerts_group, health_command, stats_command
from trackguard.cli.outbox import outbox_group
from trackguard.cli.quarantine import quarantine_group
from trackguard.monitor.db import MonitorDB
from trackguard.store.base import OutboxRow, QuarantineRecord, StoreError, Write
from trackguard.store.info import store_info
from trackguard.store.quarantine import count_quarantine, export, get, list_quarantine, stats
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore, open_store

T0 = 1_764_000_000.0
PAYLOAD = b'{"v2":{"type":"person","action":"event","name":"x"}}'
WIDE = {"COLUMNS": "200"}
RULES = "rules:\n  - {name: quiet, kind: rate, events: [x], window: 15m, threshold: 1%}\n"


@dataclass
class Mount:
    path: Path

    def seal(self) -> None:
        """Remount read-only: from here nothing, root included, can write under ``path``."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """A small tmpfs to fill, then remount read-only (a chmod'ed directory does not stop root,
    and CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs read-only needs root")
    point = tmp_path / "mnt"
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield Mount(point)
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fill(path: Path) -> None:
    store = SQLiteStore(path)
    try:
        store.commit(
            [
                Write(
                    outbox=tuple(
                        OutboxRow(received_at=T0 + i, person=f"p{i}", payload=PAYLOAD)
                        for i in range(3)
                    ),
                    quarantine=(
                        QuarantineRecord(
                            received_at=T0,
                            kind="plan",
                            method="POST",
                            path="/api/v1/customers/1/events",
                            event_name="x",
                            codes=("property_type",),
                        ),
                    ),
                )
            ]
        )
        store.mark_delivered([1], now=T0 + 10)
    finally:
        store.close()
    monitor = MonitorDB(path)
    try:
        monitor.add_counts({(int(T0 // 60), "x", "r", "app", "outcome", "accepted"): 3})
    finally:
        monitor.close()


def test_read_commands_work_on_a_read_only_mount(mount: Mount, tmp_path: Path) -> None:
    db = mount.path / "tg.db"
    bare = mount.path / "bare.db"  # a store no monitor has written yet
    _fill(db)
    SQLiteStore(bare).close()
    mount.seal()
    assert not os.access(mount.path, os.W_OK)
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(db)  # a writable open cannot work here...

    store = open_store(db, readonly=True)  # ...a read-only one does
    try:
        s = store.outbox_stats()
        assert (s.pending, s.delivered, s.failed, s.oldest_pending_at) == (2, 1, 0, T0 + 1)
        assert [r.seq for r in store.outbox_list()] == [3, 2, 1]
        assert store.quarantine_count() == 1
        with pytest.raises(StoreError, match=r"opened read-only; this needs a writable store$"):
            store.commit([Write(outbox=(OutboxRow(received_at=T0, person="p", payload=b"{}"),))])
        assert store.healthy() is False
    finally:
        store.close()

    (record,) = list_quarantine(db)
    assert get(db, record.id) == record
    assert count_quarantine(db) == 1
    assert stats(db).by_code == (("property_type", 1),)
    out = io.StringIO()
    assert export(db, out) == 1

    runner = CliRunner()
    result = runner.invoke(outbox_group, ["stats", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pending 2  delivered 1  failed 0  oldest pending ")
    result = runner.invoke(outbox_group, ["show", "--db", str(db), "2"])
    assert result.exit_code == 0 and "state: pending" in result.output
    for command in (["list"], ["show", str(record.id)], ["stats"], ["export"]):
        result = runner.invoke(quarantine_group, [*command, "--db", str(db)], env=WIDE)
        assert result.exit_code == 0, (command, result.output)
        assert "property_type" in result.output, command
    result = runner.invoke(stats_command, ["--db", str(db), "--since", "36500d"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split() == ["x", "3", "0", "0", "0", "0", "0", "0.00"]
    result = runner.invoke(stats_command, ["--db", str(bare), "--since", "36500d"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 1  # header only
    result = runner.invoke(health_command, ["--db", str(bare)])
    assert result.exit_code == 0, result.output
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    result = runner.invoke(alerts_group, ["status", "--rules", str(rules), "--db", str(bare)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:3] == ["quiet", "warning", "unknown"]
    result = runner.invoke(main, ["store", "info", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["schema_version"], info["outbox_states"]["pending"]) == (SCHEMA_VERSION, 2)
    assert sorted(os.listdir(mount.path)) == ["bare.db", "tg.db"]  # nothing was written


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_opening_never_creates_nor_changes_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(
        StoreError, match=r"no store at .*typo\.db \(trackguard serve creates one\)$"
    ):
        open_store(missing, readonly=True)
    with pytest.raises(StoreError, match="no store at"):
        MonitorDB(missing, readonly=True)
    result = CliRunner().invoke(stats_command, ["--db", str(missing)])
    assert result.exit_code == 2 and "no store at" in result.output
    assert not missing.exists()

    db = tmp_path / "tg.db"
    _fill(db)
    before = _digest(db)
    store = SQLiteStore(db, readonly=True)
    store.outbox_stats()
    store.close()
    list_quarantine(db)
    MonitorDB(db, readonly=True).close()
    assert _digest(db) == before

    not_a_store = tmp_path / "empty.db"
    sqlite3.connect(not_a_store).close()
    with pytest.raises(StoreError, match=r"empty\.db: not a trackguard store \(no schema\)$"):
        SQLiteStore(not_a_store, readonly=True)


def test_another_programs_database_is_never_taken_over_or_described(tmp_path: Path) -> None:
    """A SQLite file with tables but no schema version is refused by every opening, writable
    ones included (``store prune``, ``deliver``, ``serve``), and left as it was; an empty file
    becomes a store as before."""
    notes = tmp_path / "notes.db"
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    before = _digest(notes)
    for create in (True, False):
        with pytest.raises(StoreError, match=r"notes\.db: not a trackguard store \(no schema\)$"):
            open_store(notes, create=create)
    for argv in (["prune"], ["info"], ["info", "--format", "json"]):
        # info too: it used to describe the file (schema version 0 and its tables)
        result = CliRunner().invoke(main, ["store", *argv, "--db", str(notes)])
        assert (result.exit_code, result.stdout, result.stderr) == (
            2,
            "",
            f"Error: {notes}: not a trackguard store (no schema)\n",
        )
    with pytest.raises(StoreError, match=r"notes\.db: not a trackguard store \(no schema\)$"):
        store_info(notes)
    assert _digest(notes) == before
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    open_store(empty, create=False).close()
    with sqlite3.connect(empty) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- upgrades --------------------------------------------------------------------------------

_INSERT_V5 = (
    "INSERT INTO outbox (received_at, person, payload, state, attempts, next_attempt_at,"
    " delivered_at, finished_at) VALUES (?, ?, ?, ?, 1, 0, ?, ?)"
)


def _v5_file(path: Path) -> None:
    """A store as trackguard at schema version 5 left it: one delivered and one pending row."""
    with schema_file(path, 5) as con:
        con.execute(_INSERT_V5, (T0, "p1", PAYLOAD, "delivered", T0 + 1, T0 + 1))
        con.execute(_INSERT_V5, (T0, "p2", PAYLOAD, "pending", None, None))
        con.execute("UPDATE counts SET n = 1 WHERE name IN ('pending', 'delivered')")


def _version(path: Path) -> int:
    con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def test_an_upgrade_takes_a_backup_first(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    _v5_file(db)
    store = SQLiteStore(db)
    try:
        backup = store.upgrade_backup
        assert backup is not None and backup.parent == tmp_path
        assert backup.name.startswith("tg.db.v5-") and backup.name.endswith("Z.bak")
        assert len(backup.name) == len("tg.db.v5-20261206T093000Z.bak")
        assert backup.stat().st_mode & 0o777 == 0o600
        assert store.outbox_stats().delivered == 1
    finally:
        store.close()
    assert _version(db) == SCHEMA_VERSION
    assert _version(backup) == 5
    con = sqlite3.connect(backup)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT person, state FROM outbox ORDER BY seq").fetchall() == [
            ("p1", "delivered"),
            ("p2", "pending"),
        ]
    finally:
        con.close()
    reopened = SQLiteStore(db)  # at the current version: no second backup
    assert reopened.upgrade_backup is None
    reopened.close()
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == [backup.name]


def test_read_only_opening_upgrades_an_old_file_only_where_it_can_write(
    tmp_path: Path, mount: Mount
) -> None:
    writable = tmp_path / "old.db"
    _v5_file(writable)
    store = SQLiteStore(writable, readonly=True)  # what outbox/quarantine commands did before
    try:
        assert store.upgrade_backup is not None and store.outbox_stats().pending == 1
    finally:
        store.close()
    assert _version(writable) == SCHEMA_VERSION

    sealed = mount.path / "old.db"
    _v5_file(sealed)
    mount.seal()
    with pytest.raises(StoreError) as err:
        SQLiteStore(sealed, readonly=True)
    assert str(err.value) == (
        f"{sealed}: schema version 5 is older than this trackguard's ({SCHEMA_VERSION}) and the"
        " file cannot be written to upgrade it; copy it to a writable place first"
    )


def test_no_backup_no_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "tg.db"
    _v5_file(db)

    def full(source: sqlite3.Connection, dest: str | os.PathLike[str]) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_module, "copy_database", full)
    with pytest.raises(StoreError) as err:
        SQLiteStore(db)
    assert re.fullmatch(
        rf"{re.escape(str(db))}: not upgrading schema version 5: the backup to"
        rf" {re.escape(str(db))}\.v5-\d{{8}}T\d{{6}}Z\.bak failed: \[Errno 28\] No space left on"
        " device",
        str(err.value),
    )
    assert _version(db) == 5  # left as it was, rows and all
    assert list(tmp_path.glob("*.bak")) == []
