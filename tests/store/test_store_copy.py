"""``trackguard store copy``: a SQLite store filled the gateway's way (checked sample traffic,
``to_write``, group commits, some rows delivered, retried and failed) is copied into PostgreSQL
whole (every protocol read answers the same, numbering and dedupe go on where they stopped),
then delivered from there to the emulator over loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from trackguard.check.samples import d2c_traffic
from trackguard.cli import main as cli
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.ingest import to_write
from trackguard.monitor.db import MonitorDB
from trackguard.plan.loader import load_plan
from trackguard.store import OutboxRow, QuarantineRecord, SQLiteStore, Write
from trackguard.store.base import StoreError
from trackguard.store.copy import TABLES, copy_store
from trackguard.store.monitor_schema import MONITOR_SCHEMA
from trackguard.store.postgres import PostgresStore
from trackguard.store.sql import session

PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
T0 = 1_764_000_000.0
SITE_ID, API_KEY = "copy-site", "copy-key-0123"


def filled(path: Path, requests: int = 300) -> SQLiteStore:
    """A store as a gateway leaves it after ``requests`` sample requests and some delivery."""
    plan = load_plan(PLAN)
    checker = Checker(plan)
    store = SQLiteStore(path)
    writes: list[Write] = []
    for i, record in enumerate(d2c_traffic(requests, defect_rate=0.2, base_time=int(T0))):
        body = record["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = Request(method=str(record["method"]), path=str(record["path"]), body=raw)
        writes.append(to_write(request, checker.check(request), T0 + i, dedupe=plan.dedupe))
        if len(writes) == 50:
            store.commit(writes)
            writes = []
    writes.append(Write(anonymous=(("anon-1", "page_viewed"), ("anon-2", None))))
    store.commit(writes, meta={"backfill:x": '{"line": 7}'})
    leased = store.lease(40, now=T0 + 1000)
    store.mark_delivered([r.seq for r in leased[:30]], now=T0 + 1001)
    store.mark_retry([r.seq for r in leased[30:35]], "503", next_attempt_at=T0 + 2000)
    upstream = QuarantineRecord(
        received_at=T0, kind="upstream", method="POST", path="/api/v2/batch", upstream_error="bad"
    )
    store.mark_failed([(leased[35].seq, upstream)], now=T0 + 1002)
    return store


def same_everywhere(a: SQLiteStore | PostgresStore, b: SQLiteStore | PostgresStore) -> None:
    assert a.outbox_list(limit=10**6) == b.outbox_list(limit=10**6)
    assert a.quarantine_list(limit=10**6) == b.quarantine_list(limit=10**6)
    assert a.outbox_stats() == b.outbox_stats()
    assert (a.quarantine_count(), a.duplicate_count()) == (
        b.quarantine_count(),
        b.duplicate_count(),
    )
    assert a.identities_since(0) == b.identities_since(0)
    assert a.last_orders_since(0) == b.last_orders_since(0)
    assert a.unlinked_anonymous(1e12) == b.unlinked_anonymous(1e12)
    assert a.meta_value("backfill:x") == b.meta_value("backfill:x") == '{"line": 7}'


def test_a_filled_store_is_copied_into_postgresql_whole_and_delivered_from_there(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> None:
    url, schema = pg_schema
    source = filled(tmp_path / "tg.db")
    stats = source.outbox_stats()
    assert (stats.delivered, stats.failed) == (30, 1)
    assert source.quarantine_count() > 1 and source.duplicate_count() > 0
    assert source.identities() and source.last_orders() and source.unlinked_anonymous(1e12)
    seen: list[tuple[str, int]] = []
    report = copy_store(
        tmp_path / "tg.db",
        f"{url}?schema={schema}",
        batch=37,
        progress=lambda table, n: seen.append((table, n)),
    )
    assert report.rows["outbox"] == stats.pending + stats.delivered + stats.failed
    assert report.rows["quarantine"] == source.quarantine_count()
    assert [t for t, _ in TABLES] == list(report.rows)
    assert ("outbox", 37) in seen and ("outbox", 74) in seen  # in batches
    dest = PostgresStore(url, schema=schema, lease_seconds=60.0)
    try:
        same_everywhere(source, dest)
        # Numbering and dedupe go on where the source stopped.
        last = source.outbox_list(limit=1)[0]
        claimed = next(r for r in source.outbox_list(limit=10**6) if r.dedupe_key)
        again = OutboxRow(
            received_at=claimed.received_at,
            person=claimed.person,
            payload=b"{}",
            dedupe_key=claimed.dedupe_key,
            claim_until=claimed.received_at + 60,
        )
        assert dest.commit(
            [Write(outbox=(again, OutboxRow(received_at=T0, person="p", payload=b"{}")))]
        ) == [1]
        assert dest.outbox_list(limit=1)[0].seq == last.seq + 1
        with psycopg.connect(url) as conn:
            conn.execute(f'DELETE FROM "{schema}".outbox WHERE seq = {last.seq + 1}')
            conn.execute(f"UPDATE \"{schema}\".counts SET n = n - 1 WHERE name = 'pending'")

        # Deliver everything pending from PostgreSQL to the emulator.
        emulator = create_emulator(SITE_ID, API_KEY)
        with start_in_thread(emulator) as server:
            transport = HttpxTransport(server.url, SITE_ID, API_KEY)
            try:
                worker = DeliveryWorker(dest, transport, clock=lambda: T0 + 3000)
                for _ in range(100):
                    if not worker.run_once().delivered:
                        break
            finally:
                transport.close()
        after = dest.outbox_stats()
        assert after.pending == 0
        assert after.delivered + after.failed == report.rows["outbox"]
        assert emulator.stats()["duplicates"] == 0
    finally:
        dest.close()
        source.close()


def test_store_copy_command_copies_into_sqlite_and_refuses_a_store_with_data(
    tmp_path: Path,
) -> None:
    filled(tmp_path / "tg.db", requests=60).close()
    src, dst = str(tmp_path / "tg.db"), str(tmp_path / "b.db")
    result = CliRunner().invoke(cli, ["store", "copy", src, dst])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"copied {src} to {dst}: outbox ")
    assert result.stdout.endswith("; counts match\n")
    a, b = SQLiteStore(tmp_path / "tg.db"), SQLiteStore(tmp_path / "b.db")
    try:
        same_everywhere(a, b)
    finally:
        a.close()
        b.close()
    again = CliRunner().invoke(
        cli, ["store", "copy", str(tmp_path / "tg.db"), str(tmp_path / "b.db")]
    )
    assert (again.exit_code, again.stderr) == (
        2,
        f"Error: {tmp_path / 'b.db'}: the destination store is not empty\n",
    )
    missing = CliRunner().invoke(
        cli, ["store", "copy", str(tmp_path / "no.db"), str(tmp_path / "c.db")]
    )
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == f"Error: no store at {tmp_path / 'no.db'} (trackguard serve creates one)\n"
    )
    assert not (tmp_path / "c.db").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("rows", [0, 60])
def test_store_copy_into_the_source_itself_is_refused_however_it_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    """An empty store used to be "copied" into itself with success, a filled one refused as
    not empty: the same file is refused first, under any spelling, and left untouched."""
    if rows:
        filled(tmp_path / "tg.db", requests=rows).close()
    else:
        SQLiteStore(tmp_path / "tg.db").close()
    (tmp_path / "link.db").symlink_to(tmp_path / "tg.db")
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    for source, destination in [
        ("tg.db", "tg.db"),
        ("tg.db", str(tmp_path / "tg.db")),
        (str(tmp_path / "tg.db"), "./tg.db"),
        ("tg.db", "sqlite:///tg.db"),
        ("sqlite:///tg.db", f"sqlite:///{tmp_path}/tg.db"),
        ("link.db", "tg.db"),
    ]:
        result = CliRunner().invoke(cli, ["store", "copy", source, destination])
        assert (result.exit_code, result.stdout, result.stderr) == (
            2,
            "",
            f"Error: {destination!r}: is the source store itself;"
            " copy into another SQLite file or a PostgreSQL store\n",
        )
    assert _files(tmp_path) == before
    with pytest.raises(StoreError, match=r"^'tg\.db': is the source store itself;"):
        copy_store(tmp_path / "tg.db", "tg.db")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("postgresql://u@127.0.0.1/db", "SRC must be a SQLite store (a path or sqlite:///path)"),
        ("mysql://x", "unsupported store URL (use a path or sqlite:///path)"),
    ],
)
def test_store_copy_reads_only_sqlite(source: str, error: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["store", "copy", source, str(tmp_path / "b.db")])
    assert (result.exit_code, result.stderr) == (2, f"Error: {source!r}: {error}\n")
    assert not (tmp_path / "b.db").exists()
    same = CliRunner().invoke(cli, ["store", "copy", source, source])  # one PostgreSQL store
    assert (same.exit_code, same.stderr) == (2, f"Error: {source!r}: {error}\n")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("postgresql://u@127.0.0.1/db", "the source must be a SQLite store"),
        ("mysql://x", "unsupported store URL"),
    ],
)
def test_store_copy_library_reads_only_sqlite(source: str, error: str, tmp_path: Path) -> None:
    """``copy_store`` itself refuses what the command refuses first (a library caller)."""
    with pytest.raises(StoreError, match=f"^'{source}': {error} "):
        copy_store(source, tmp_path / "b.db")
    assert not (tmp_path / "b.db").exists()


def _monitored(path: Path) -> None:
    """The monitor's tables of ``path`` as a gateway leaves them: counts of two minutes in two
    hours, health snapshots, a firing rule's state and a channel's health."""
    monitor = MonitorDB(path)
    try:
        monitor.add_counts(
            {
                (29_400_000, "order_completed", "POST /api/v2/batch", "web", "outcome", "ok"): 5,
                (29_400_000, "order_completed", "POST /api/v2/batch", "web", "code", "x"): 2,
                (29_400_061, "page_viewed", "POST /api/v2/batch", "app", "outcome", "ok"): 3,
            }
        )
        monitor.add_health(T0, {"outbox_pending": 4, "quarantine": 2})
        monitor.add_health(T0 + 60, {"outbox_pending": 1})
        monitor.save_blobs("monitor_alerts", [("quiet", b'{"firing":true}')])
        monitor.save_blobs("monitor_channels", [("slack", b'{"failures":1}')])
    finally:
        monitor.close()


#: What :func:`_monitored` leaves, table by table, in key order.
MONITORED = {
    "monitor_counts": [
        (29_400_000, "order_completed", "POST /api/v2/batch", "web", "code", "x", 2),
        (29_400_000, "order_completed", "POST /api/v2/batch", "web", "outcome", "ok", 5),
        (29_400_061, "page_viewed", "POST /api/v2/batch", "app", "outcome", "ok", 3),
    ],
    "monitor_hourly": [
        (490_000, "order_completed", "code", "x", 2),
        (490_000, "order_completed", "outcome", "ok", 5),
        (490_001, "page_viewed", "outcome", "ok", 3),
    ],
    "monitor_health": [
        (T0, "outbox_pending", 4),
        (T0 + 60, "outbox_pending", 1),
        (T0, "quarantine", 2),
    ],
    "monitor_alerts": [("quiet", b'{"firing":true}')],
    "monitor_channels": [("slack", b'{"failures":1}')],
}


def _monitor_rows(target: str | Path) -> dict[str, list[tuple[object, ...]]]:
    with session(target) as s:
        return {
            t.name: [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in s.rows(f"SELECT * FROM {t.name} ORDER BY {', '.join(t.key)}")
            ]
            for t in MONITOR_SCHEMA
        }


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_monitor_tables_are_copied_row_for_row(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    filled(tmp_path / "tg.db", requests=60).close()
    _monitored(tmp_path / "tg.db")
    assert _monitor_rows(tmp_path / "tg.db") == MONITORED
    if kind == "sqlite":
        dest = str(tmp_path / "copy.db")
    else:
        url, schema = request.getfixturevalue("pg_schema")
        dest = f"{url}?schema={schema}"
    report = copy_store(tmp_path / "tg.db", dest, batch=2)  # several batches of a composite key
    assert {t: n for t, n in report.rows.items() if t.startswith("monitor_")} == {
        "monitor_counts": 3,
        "monitor_hourly": 3,
        "monitor_health": 3,
        "monitor_alerts": 1,
        "monitor_channels": 1,
    }
    assert _monitor_rows(dest) == MONITORED
    monitor = MonitorDB(dest, readonly=True)  # and the monitor reads them there
    try:
        assert monitor.load_blobs("monitor_alerts") == {"quiet": b'{"firing":true}'}
        assert monitor.health_at("outbox_pending", T0 + 30) == 4
    finally:
        monitor.close()


def test_a_source_no_monitor_wrote_copies_empty_monitor_tables(tmp_path: Path) -> None:
    filled(tmp_path / "tg.db", requests=60).close()
    report = copy_store(tmp_path / "tg.db", tmp_path / "copy.db")
    assert [report.rows[t.name] for t in MONITOR_SCHEMA] == [0, 0, 0, 0, 0]
    assert _monitor_rows(tmp_path / "copy.db") == {t.name: [] for t in MONITOR_SCHEMA}


def test_counts_from_before_the_hourly_table_are_rolled_up_in_the_copy(tmp_path: Path) -> None:
    filled(tmp_path / "tg.db", requests=60).close()
    _monitored(tmp_path / "tg.db")
    with sqlite3.connect(tmp_path / "tg.db") as conn:
        conn.execute("DROP TABLE monitor_hourly")  # as an older trackguard left it
    conn.close()
    report = copy_store(tmp_path / "tg.db", tmp_path / "copy.db")
    assert report.rows["monitor_hourly"] == 3
    assert _monitor_rows(tmp_path / "copy.db") == MONITORED


def test_a_destination_whose_monitor_tables_hold_rows_is_not_empty(tmp_path: Path) -> None:
    filled(tmp_path / "tg.db", requests=60).close()
    SQLiteStore(tmp_path / "copy.db").close()
    monitor = MonitorDB(tmp_path / "copy.db")
    monitor.add_health(T0, {"outbox_pending": 0})
    monitor.close()
    with pytest.raises(StoreError, match=r"copy\.db: the destination store is not empty$"):
        copy_store(tmp_path / "tg.db", tmp_path / "copy.db")
