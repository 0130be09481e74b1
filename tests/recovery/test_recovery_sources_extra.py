"""Backfill from PostgreSQL (server-side cursor) and Parquet (DuckDB), interrupted and resumed."""

from __future__ import annotations

import re
import sqlite3
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from recovery_env import ORDERS_MAP

from trackguard.cli.backfill import backfill_command
from trackguard.plan.loader import load_plan
from trackguard.recovery.backfill import backfill
from trackguard.recovery.mapping import parse_mapping
from trackguard.recovery.sources import SourceError, open_source
from trackguard.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "d2c-plan.yaml"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
N = 2500


def _outbox_orders(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        payloads = [
            r[0] for r in conn.execute("SELECT payload FROM outbox WHERE event_name IS NOT NULL")
        ]
    out: Counter[str] = Counter()
    for p in payloads:
        body = msgspec.json.decode(p)
        item = body.get("v2") or body.get("v1", {}).get("body") or body
        data = item.get("attributes") or item.get("data") or {}
        out[data["order_id"]] += 1
    return out


def _interrupt_and_resume(source: str, tmp_path: Path, query: str | None = None) -> None:
    plan = load_plan(PLAN)
    mapping = parse_mapping(ORDERS_MAP)
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    try:
        common: dict[str, Any] = {
            "store": store,
            "mapping": mapping,
            "event": "order_completed",
            "plan": plan,
            "query": query,
        }
        first = backfill(source, batch_size=400, max_batches=3, **common)
        assert first.rows_done == 1200 and not first.complete
        assert len(_outbox_orders(db)) == 1200
        second = backfill(source, batch_size=400, **common)
        assert second.resumed_from == 1200 and second.rows_read == N - 1200 and second.complete
        assert second.skipped == 0 and second.rejected == 0 and second.duplicates == 0
        third = backfill(source, **common)
        assert third.rows_read == 0 and third.complete
        counts = _outbox_orders(db)
        assert len(counts) == N and set(counts.values()) == {1}
        assert set(counts) == {f"ORD-{i:05d}" for i in range(1, N + 1)}
    finally:
        store.close()


@pytest.fixture
def pg_orders() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    table = f"tg_orders_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {table} (order_id text, customer_id text,"
                " ordered_at timestamptz, total numeric(10,2), currency text)"
            )
            conn.execute(
                f"INSERT INTO {table} SELECT 'ORD-' || lpad(i::text, 5, '0'),"
                " 'cus_' || (i %% 200), timestamptz '2025-01-01 10:00:00+00' + i * interval"
                " '1 hour', (i %% 500) + 0.25, 'USD' FROM generate_series(1, %s) AS i",
                (N,),
            )
        yield table
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_postgres_backfill_interrupted_and_resumed(pg_orders: str, tmp_path: Path) -> None:
    _interrupt_and_resume(PG_URL, tmp_path, f"SELECT * FROM {pg_orders} ORDER BY order_id")


def test_postgres_rows_typed_and_numbered(pg_orders: str) -> None:
    source = open_source(
        f"postgres://postgres@127.0.0.1:5432/test?query=SELECT * FROM {pg_orders}"
        " ORDER BY order_id;"
    )
    assert "password" not in source.identity and source.name == "postgres@127.0.0.1:5432/test"
    rows = source.rows()
    first = next(rows)
    assert first.number == 1 and first.line is None and first.values is not None
    assert first.values["order_id"] == "ORD-00001" and first.values["total"] == "1.25"
    assert first.values["ordered_at"].isoformat().startswith("2025-01-01T11:00:00")
    assert sum(1 for _ in rows) == N - 1
    with pytest.raises(SourceError, match="not both"):
        open_source(f"{PG_URL}?query=SELECT 1", "SELECT 2")
    with pytest.raises(SourceError, match="needs a query"):
        open_source(PG_URL)
    with pytest.raises(SourceError, match="does not exist"):
        list(open_source(PG_URL, "SELECT * FROM tg_no_such_table_here").rows())


def test_postgres_cli(pg_orders: str, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(ORDERS_MAP)
    db = tmp_path / "tg.db"
    SQLiteStore(db).close()  # serve creates the store; backfill never does
    args = [PG_URL, "--query", f"SELECT * FROM {pg_orders} ORDER BY order_id"]
    args += ["--as", "event:order_completed", "--map", str(mapping), "--db", str(db)]
    args += ["--plan", str(PLAN)]
    result = CliRunner().invoke(backfill_command, args)
    assert result.exit_code == 0, result.output
    assert f"{N} rows read: {N} accepted" in result.output
    assert len(_outbox_orders(db)) == N


def _write_parquet(path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect() as conn:
        conn.execute(
            f"""COPY (
                SELECT 'ORD-' || lpad(i::VARCHAR, 5, '0') AS order_id,
                       'cus_' || (i % 200) AS customer_id,
                       TIMESTAMPTZ '2025-01-01 10:00:00+00' + i * INTERVAL 1 HOUR AS ordered_at,
                       CAST((i % 500) + 0.25 AS DECIMAL(10, 2)) AS total,
                       'USD' AS currency
                FROM range(1, {N + 1}) t(i) ORDER BY i
            ) TO '{path}' (FORMAT PARQUET, ROW_GROUP_SIZE 500)"""
        )


def test_parquet_backfill_interrupted_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    _write_parquet(path)
    source = open_source(str(path))
    first = next(source.rows())
    assert first.number == 1 and first.values is not None
    assert first.values["order_id"] == "ORD-00001" and first.values["total"] == "1.25"
    _interrupt_and_resume(str(path), tmp_path)


def test_parquet_rejects_query_and_bad_file(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    path = tmp_path / "orders.parquet"
    with pytest.raises(SourceError, match="No such file"):
        open_source(str(path))
    path.write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match=str(path)):
        list(open_source(str(path)).rows())
    with pytest.raises(SourceError, match="--query is for"):
        open_source(str(path), "SELECT 1")


@pytest.mark.parametrize(
    ("module", "target", "hint"),
    [
        ("psycopg", f"{PG_URL}?query=SELECT 1", "trackguard[postgres]"),
        ("duckdb", "parquet", "trackguard[parquet]"),
    ],
)
def test_missing_package_hint(
    module: str, target: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if target == "parquet":
        path = tmp_path / "orders.parquet"
        path.write_bytes(b"PAR1")
        target = str(path)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SourceError, match=re.escape(f"need: pip install '{hint}'")):
        list(open_source(target).rows())


def test_a_broken_parquet_file_is_one_line(tmp_path: Path) -> None:
    """DuckDB's message goes on with the query and a caret line; the error keeps its first."""
    pytest.importorskip("duckdb")
    path = tmp_path / "orders.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(SourceError) as caught:
        list(open_source(str(path)).rows())
    assert str(caught.value) == (
        f"{path}: Invalid Input Error: File '{path}' too small to be a Parquet file"
    )
