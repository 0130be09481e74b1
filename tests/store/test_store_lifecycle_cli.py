"""``trackguard store init|info|prune|backup|vacuum``: exact outputs and errors, on a SQLite
file and (info, prune; the file commands' refusals) on a PostgreSQL schema."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from click.testing import CliRunner, Result

from trackguard.cli import main
from trackguard.cli.store import render_info
from trackguard.store.base import OutboxRow, QuarantineRecord, Write
from trackguard.store.info import StoreInfo
from trackguard.store.monitor_schema import create_statements
from trackguard.store.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from trackguard.store.sql import session
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore, open_store
from trackguard.store.urls import split_url

DAY = 86_400.0
PAYLOAD = b'{"v2":{"type":"person","action":"event","name":"x"}}'


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["store", *args])


def _store(db: Path | str, now: float) -> None:
    """Three delivered rows (two of them 10 days ago), one pending, one quarantine record."""
    store = open_store(db)
    try:
        store.commit(
            [
                Write(
                    outbox=tuple(
                        OutboxRow(received_at=now - d * DAY, person=f"p{i}", payload=PAYLOAD)
                        for i, d in enumerate((10, 10, 1, 0))
                    ),
                    quarantine=(
                        QuarantineRecord(
                            received_at=now - 40 * DAY, kind="plan", method="POST", path="/x"
                        ),
                    ),
                    anonymous=(("a1", "viewed"),),
                )
            ]
        )
        store.mark_delivered([1, 2], now=now - 10 * DAY)
        store.mark_delivered([3], now=now - DAY)
    finally:
        store.close()


def test_init_creates_an_empty_store_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    result = run("init", str(db))
    assert (result.exit_code, result.output) == (
        0,
        f"created {db} (schema version {SCHEMA_VERSION})\n",
    )
    assert db.stat().st_mode & 0o777 == 0o600
    store = SQLiteStore(db, readonly=True)
    assert store.outbox_stats().pending == 0
    store.close()
    again = run("init", f"sqlite:///{db}")
    assert (again.exit_code, again.output) == (
        2,
        f"Error: {db}: already exists; init creates a new store only\n",
    )
    nowhere = run("init", str(tmp_path / "missing" / "tg.db"))
    assert (nowhere.exit_code, nowhere.output) == (
        2,
        f"Error: {tmp_path / 'missing'}: no such directory\n",
    )
    for target, reason in (
        ("mysql://db/tg", "unsupported store URL (use a path or sqlite:///path)"),
        ("sqlite://tg.db", "write sqlite:///relative/path or sqlite:////abs/path"),
        ("sqlite:tg.db", "write sqlite:///relative/path or sqlite:////abs/path"),
    ):
        refused = run("init", target)
        assert (refused.exit_code, refused.output) == (2, f"Error: {target!r}: {reason}\n")


@pytest.mark.parametrize("command", ["info", "prune", "vacuum"])
def test_commands_other_than_init_never_create_a_store(tmp_path: Path, command: str) -> None:
    db = tmp_path / "typo.db"
    result = run(command, "--db", str(db))
    assert (result.exit_code, result.output) == (
        2,
        f"Error: no store at {db} (trackguard serve creates one)\n",
    )
    assert not db.exists()
    result = run("backup", "--db", str(db), str(tmp_path / "copy.db"))
    assert result.exit_code == 2 and not db.exists()


def test_info_as_a_table_and_as_json(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    now = 1_764_000_000.0  # 2025-11-24T16:00:00Z
    _store(db, now)
    result = run("info", "--db", str(db))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"path            {db}"
    assert lines[1] == f"schema version  {SCHEMA_VERSION}"
    assert re.fullmatch(r"size            \d+ bytes", lines[2])
    assert re.fullmatch(r"pages           \d+ of 4096 bytes, \d+ free", lines[4])
    assert lines[5] == "outbox states   delivered 3, failed 0, pending 1"
    rows = {line.split()[0]: line.split()[1:] for line in lines[8:]}
    assert rows["outbox"] == ["4", "2025-11-14T16:00:00Z", "2025-11-24T16:00:00Z"]
    assert rows["quarantine"] == ["1", "2025-10-15T16:00:00Z", "2025-10-15T16:00:00Z"]
    assert rows["identities"] == ["0", "-", "-"]
    # pending, delivered, failed, quarantine, duplicate, dedupe_conflict
    assert rows["counts"] == ["6", "-", "-"]
    assert rows["anonymous"][0] == "1"

    as_json = json.loads(run("info", "--db", str(db), "--format", "json").output)
    assert as_json["schema_version"] == SCHEMA_VERSION
    assert as_json["size_bytes"] == db.stat().st_size
    assert as_json["outbox_states"] == {"delivered": 3, "failed": 0, "pending": 1}
    tables = {t["name"]: t for t in as_json["tables"]}
    assert tables["outbox"] == {
        "name": "outbox",
        "rows": 4,
        "oldest": now - 10 * DAY,
        "newest": now,
    }
    assert set(tables) == {
        "anonymous",
        "claims",
        "counts",
        "identities",
        "meta",
        "outbox",
        "profiles",
        "quarantine",
    }


def test_prune_dry_run_then_prune(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    _store(db, time.time())
    dry = run("prune", "--db", str(db), "--dry-run")
    assert (dry.exit_code, dry.output) == (
        0,
        "outbox           would delete 2 rows\n"
        "claims           would delete 0 rows\n"
        "anonymous        would delete 0 rows\n",
    )
    done = run("prune", "--db", str(db), "--outbox-retention", "12h", "--anonymous-retention", "0")
    assert (done.exit_code, done.output) == (
        0,
        "outbox           deleted 3 rows\n"
        "claims           deleted 0 rows\n"
        "anonymous        deleted 1 row\n",
    )
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT seq, state FROM outbox").fetchall() == [(4, "pending")]
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (1,)
    finally:
        con.close()
    bad = run("prune", "--db", str(db), "--outbox-retention", "7 days")
    assert bad.exit_code == 2
    assert "'7 days' is not a duration" in bad.output


def test_backup_and_vacuum_report_what_they_did(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    _store(db, time.time())
    dest = tmp_path / "copy.db"
    result = run("backup", "--db", str(db), str(dest))
    assert (result.exit_code, result.output) == (
        0,
        f"backed up {db} to {dest}: {dest.stat().st_size} bytes,"
        f" schema version {SCHEMA_VERSION}, integrity ok\n",
    )
    result = run("vacuum", "--db", str(dest))
    assert result.exit_code == 0, result.output
    match = re.fullmatch(
        rf"vacuumed {dest}: (\d+) -> (\d+) bytes \((\d+) bytes reclaimed\)\n", result.output
    )
    assert match is not None
    before, after, saved = map(int, match.groups())
    assert (after, saved) == (dest.stat().st_size, before - after)


# -- a PostgreSQL store --------------------------------------------------------------------


@pytest.fixture
def pg_db(pg_schema: tuple[str, str]) -> str:
    """A PostgreSQL store's ``--db`` URL, its schema filled as ``_store`` fills a file."""
    url, schema = pg_schema
    return f"{url}?schema={schema}"


def test_info_on_postgresql_counts_rows_and_sizes_each_table(pg_db: str) -> None:
    now = 1_764_000_000.0  # 2025-11-24T16:00:00Z
    _store(pg_db, now)
    result = run("info", "--db", pg_db)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"store           {pg_db}"
    assert lines[1] == f"schema version  {PG_SCHEMA_VERSION}"
    size = re.fullmatch(r"size            (\d+) bytes \(tables with their indexes\)", lines[2])
    assert size is not None
    assert lines[3] == render_info(_with(autovacuum=_autovacuum(pg_db))).splitlines()[3]
    assert lines[4] == "outbox states   delivered 3, failed 0, pending 1"
    assert lines[6].split() == ["table", "rows", "bytes", "oldest", "newest"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[7:]}
    assert rows["outbox"][0] == "4"
    assert rows["outbox"][2:] == ["2025-11-14T16:00:00Z", "2025-11-24T16:00:00Z"]
    assert rows["quarantine"][0] == "1"
    assert rows["quarantine"][2:] == ["2025-10-15T16:00:00Z", "2025-10-15T16:00:00Z"]
    assert (rows["identities"][0], rows["identities"][2:]) == ("0", ["-", "-"])
    assert rows["counts"][0] == "6"
    assert sum(int(r[1]) for r in rows.values()) == int(size.group(1))

    as_json = json.loads(run("info", "--db", pg_db, "--format", "json").output)
    assert (as_json["database"], as_json["schema_version"]) == ("postgresql", PG_SCHEMA_VERSION)
    assert as_json["outbox_states"] == {"delivered": 3, "failed": 0, "pending": 1}
    assert "wal_bytes" not in as_json and "page_size" not in as_json
    tables = {t["name"]: t for t in as_json["tables"]}
    assert tables["outbox"] == {
        "name": "outbox",
        "rows": 4,
        "oldest": now - 10 * DAY,
        "newest": now,
    }
    assert set(as_json["table_bytes"]) == set(tables)
    assert {"anonymous", "claims", "counts", "outbox", "quarantine", "schema_version"} <= set(
        tables
    )
    assert sum(as_json["table_bytes"].values()) == as_json["size_bytes"]
    assert as_json["autovacuum"] is _autovacuum(pg_db)


def _autovacuum(url: str) -> bool:
    with psycopg.connect(split_url(url)[0]) as conn:
        return conn.execute("SHOW autovacuum").fetchone() == ("on",)


def _with(**kw: Any) -> StoreInfo:
    base = StoreInfo(
        path="postgresql://tg@db/tg?schema=shop",
        database="postgresql",
        schema_version=PG_SCHEMA_VERSION,
        size_bytes=8192,
        outbox_states={},
        tables=(),
        table_bytes={},
    )
    return msgspec.structs.replace(base, **kw)


def test_info_on_postgresql_says_whether_autovacuum_runs() -> None:
    assert render_info(_with(autovacuum=True)).splitlines()[3] == "autovacuum      on"
    assert render_info(_with(autovacuum=False)).splitlines()[3] == (
        "autovacuum      off: dead rows are never reclaimed and the planner's table sizes go"
        " stale (turn it on: docs/operations.md)"
    )


def test_prune_on_postgresql_as_on_a_file(pg_db: str) -> None:
    now = time.time()
    _store(pg_db, now)
    with session(pg_db, readonly=False) as s, s.transaction():
        # the monitor's tables, with one bucket 9 days old
        for ddl in create_statements("postgresql"):
            s.run(ddl)
        s.run("INSERT INTO monitor_health VALUES (?, 'm', 1)", (now - 9 * DAY,))
    dry = run("prune", "--db", pg_db, "--dry-run")
    assert (dry.exit_code, dry.output) == (
        0,
        "outbox           would delete 2 rows\n"
        "claims           would delete 0 rows\n"
        "anonymous        would delete 0 rows\n"
        "monitor_counts   would delete 0 rows\n"
        "monitor_hourly   would delete 0 rows\n"
        "monitor_health   would delete 1 row\n",
    )
    args = ["--outbox-retention", "12h", "--anonymous-retention", "0"]
    done = run("prune", "--db", pg_db, *args)
    assert (done.exit_code, done.output) == (
        0,
        "outbox           deleted 3 rows\n"
        "claims           deleted 0 rows\n"
        "anonymous        deleted 1 row\n"
        "monitor_counts   deleted 0 rows\n"
        "monitor_hourly   deleted 0 rows\n"
        "monitor_health   deleted 1 row\n",
    )
    store = open_store(pg_db, readonly=True)
    try:
        assert [(r.seq, r.state) for r in store.outbox_list()] == [(4, "pending")]
        stats = store.outbox_stats()
        assert (stats.pending, stats.delivered, store.quarantine_count()) == (1, 0, 1)
    finally:
        store.close()


def test_file_commands_on_a_postgresql_url_name_the_tool_to_use(pg_db: str, tmp_path: Path) -> None:
    secret = pg_db.replace("@", ":s3cret@", 1)  # the URL's user gets a password
    shown = pg_db
    assert "s3cret" in secret
    expected = {
        ("backup", "--db", secret, str(tmp_path / "copy.db")): "backup copies a SQLite file;"
        " back up a PostgreSQL store with pg_dump (pg_dump --schema NAME for its schema)",
        ("vacuum", "--db", secret): "vacuum rewrites a SQLite file; PostgreSQL's autovacuum"
        " reclaims space (or run VACUUM in psql)",
        ("init", secret): "init creates a SQLite file; trackguard serve (or store copy) creates"
        " a PostgreSQL store's tables in its schema",
    }
    for args, message in expected.items():
        result = run(*args)
        assert (result.exit_code, result.output) == (2, f"Error: {shown}: {message}\n"), args
    assert not (tmp_path / "copy.db").exists()


def test_info_and_prune_refuse_a_schema_without_a_store(pg_db: str) -> None:
    for args in (["info", "--db", pg_db], ["prune", "--db", pg_db, "--dry-run"]):
        result = run(*args)
        assert (result.exit_code, result.output) == (
            2,
            f"Error: no store at {pg_db} (trackguard serve creates one)\n",
        ), args
