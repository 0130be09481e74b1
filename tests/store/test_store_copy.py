"""``trackguard store copy``: a SQLite store filled the gateway's way (checked sample traffic,
``to_write``, group commits, some rows delivered, retried and failed) is copied into PostgreSQL
whole (every protocol read answers the same, numbering and dedupe go on where they stopped),
then delivered from there to the emulator over loopback."""

from __future__ import annotations

import json
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
from trackguard.plan.loader import load_plan
from trackguard.store import OutboxRow, QuarantineRecord, SQLiteStore, Write
from trackguard.store.copy import TABLES, copy_store
from trackguard.store.postgres import PostgresStore

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


@pytest.mark.parametrize("source", ["postgresql://u@127.0.0.1/db", "mysql://x"])
def test_store_copy_reads_only_sqlite(source: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["store", "copy", source, str(tmp_path / "b.db")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {source!r}: SRC must be a SQLite store (a path or sqlite:///path)\n",
    )
