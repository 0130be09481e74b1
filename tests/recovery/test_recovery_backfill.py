"""Backfill: CSV orders through the example plan into the outbox, interrupted and resumed; into
a SQLite file and into a PostgreSQL schema (the ``db`` fixture), with the same results."""

from __future__ import annotations

import csv
import gzip
import io
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from recovery_env import ORDERS_MAP, query
from rich.console import Console

from pg_server import fresh_schema
from trackguard.cli.backfill import backfill_command, print_summary
from trackguard.plan.loader import load_plan
from trackguard.recovery.backfill import BackfillReport, backfill
from trackguard.recovery.mapping import parse_mapping
from trackguard.store.sqlite import open_store

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "d2c-plan.yaml"


def _orders(path: Path, n: int, *, bad: dict[int, str] | None = None) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for i in range(1, n + 1):
        rows.append(
            {
                "order_id": f"ORD-{i:05d}",
                "customer_id": f"cus_{rng.randrange(200)}",
                "ordered_at": f"2025-0{1 + i % 9}-1{i % 10}T10:00:00Z",
                "total": f"{rng.randrange(100, 50000) / 100:.2f}",
                "currency": "USD",
            }
        )
    for index, total in (bad or {}).items():
        rows[index - 1]["total"] = total
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _outbox_orders(db: str) -> Counter[str]:
    payloads = [r[0] for r in query(db, "SELECT payload FROM outbox WHERE event_name IS NOT NULL")]
    out: Counter[str] = Counter()
    for p in payloads:
        body = msgspec.json.decode(p)
        item = body.get("v2") or body.get("v1", {}).get("body") or body
        data = item.get("attributes") or item.get("data") or {}
        out[data["order_id"]] += 1
    return out


def test_backfill_interrupted_and_resumed(db: str, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv.gz"
    rows = _orders(source, 3000)
    plan = load_plan(PLAN)
    mapping = parse_mapping(ORDERS_MAP)
    store = open_store(db)
    first = backfill(
        str(source),
        store=store,
        mapping=mapping,
        event="order_completed",
        plan=plan,
        batch_size=250,
        max_batches=5,
    )
    assert first.rows_done == 1250 and not first.complete
    # The whole file again from row 1: the saved checkpoint skips what is done.
    second = backfill(
        str(source),
        store=store,
        mapping=mapping,
        event="order_completed",
        plan=plan,
        batch_size=250,
    )
    assert second.resumed_from == 1250 and second.rows_read == 1750 and second.complete
    assert second.duplicates == 0 and second.skipped == 0 and second.rejected == 0
    third = backfill(
        str(source),
        store=store,
        mapping=mapping,
        event="order_completed",
        plan=plan,
    )
    assert third.rows_read == 0 and third.complete
    counts = _outbox_orders(db)
    assert len(counts) == 3000 and set(counts.values()) == {1}
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r["customer_id"]] += float(r["total"])
    for customer, total in totals.items():
        profile = store.profile(f"id:{customer}")
        assert profile is not None
        assert round(profile["lifetime_value"], 2) == round(total, 2)
    # A restart ignoring the checkpoint duplicates nothing: the dedupe keys hold.
    again = backfill(
        str(source),
        store=store,
        mapping=mapping,
        event="order_completed",
        plan=plan,
        restart=True,
        batch_size=1000,
    )
    assert again.duplicates == 3000
    assert set(_outbox_orders(db).values()) == {1}
    store.close()


def test_interrupted_by_an_exception_resumes(db: str, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    _orders(source, 600)
    mapping = parse_mapping(ORDERS_MAP)
    store = open_store(db)
    calls = 0

    def crash(done: int, position: int | None, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill(
            str(source),
            store=store,
            mapping=mapping,
            event="order_completed",
            batch_size=100,
            progress=crash,
        )
    report = backfill(str(source), store=store, mapping=mapping, event="order_completed")
    assert report.resumed_from == 200 and report.rows_read == 400
    assert set(_outbox_orders(db).values()) == {1}
    store.close()


def _backfill_orders(
    source: Path, store: Any, batch_size: int = 500, clock: Callable[[], float] = time.time
) -> BackfillReport:
    """``source``'s rows as ``order_completed`` events under the example plan."""
    return backfill(
        str(source),
        store=store,
        mapping=parse_mapping(ORDERS_MAP),
        event="order_completed",
        plan=load_plan(PLAN),
        batch_size=batch_size,
        clock=clock,
    )


def test_bad_rows_skipped_with_row_numbers(db: str, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    _orders(source, 50, bad={7: "twelve", 30: ""})
    store = open_store(db)
    report = _backfill_orders(source, store, batch_size=10)
    assert report.skipped == 2 and report.accepted + report.fixed + report.warned == 48
    assert [(p.row, p.line) for p in report.problems] == [(7, 8), (30, 31)]
    assert "'twelve' is not a number" in str(report.problems[0])
    assert "total: column 'total' is empty" in str(report.problems[1])
    store.close()


def test_bad_row_stops_the_run(db: str, tmp_path: Path) -> None:
    open_store(db).close()  # serve creates the store; backfill never does
    source = tmp_path / "orders.csv"
    _orders(source, 50, bad={23: "n/a"})
    result = CliRunner().invoke(
        backfill_command,
        [
            str(source),
            "--as",
            "event:order_completed",
            "--map",
            str(_map(tmp_path)),
            "--db",
            db,
            "--plan",
            str(PLAN),
            "--on-error",
            "stop",
            "--batch",
            "10",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "row 23 (line 24)" in result.output
    assert "22 rows read" in result.output
    assert len(_outbox_orders(db)) == 22


def test_cli_jsonl_and_sqlite_sources(db: str, tmp_path: Path) -> None:
    open_store(db).close()  # serve creates the store; backfill never does
    jsonl = tmp_path / "orders.jsonl"
    jsonl.write_text(
        '{"customer_id": "c1", "order_id": "A1", "ordered_at": 1700000000, "total": 5.5,'
        ' "currency": "USD"}\n\nnot json\n'
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(ORDERS_MAP.replace("iso8601", "unix"))
    result = CliRunner().invoke(
        backfill_command,
        [str(jsonl), "--as", "event:order_completed", "--map", str(mapping), "--db", db],
    )
    assert result.exit_code == 0, result.output
    assert "2 rows read: 1 accepted" in result.output and "row 2 (line 3)" in result.output
    src = tmp_path / "shop.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE customers (id TEXT, email TEXT, tier TEXT)")
        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?)",
            [("c1", "a@example.com", "gold"), ("c2", "b@example.com", "silver")],
        )
    idmap = tmp_path / "id.yaml"
    idmap.write_text("person: {id: id}\nattributes: {email: email, loyalty_tier: tier}\n")
    result = CliRunner().invoke(
        backfill_command,
        [
            f"sqlite:///{src}?query=SELECT * FROM customers",
            "--as",
            "identify",
            "--map",
            str(idmap),
            "--db",
            db,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 rows read: 2 accepted" in result.output


def test_cli_prints_problems_as_sent_and_the_summary_on_one_line(tmp_path: Path) -> None:
    """A column named like rich markup is printed as it is (it once ended the run with an
    internal error), and the summary is one line however narrow the output."""
    db = str(tmp_path / "tg.db")
    open_store(db).close()
    source = tmp_path / "people.jsonl"
    source.write_text('{"a": "1"}\n')
    mapping = tmp_path / "m.yaml"
    mapping.write_text('person: {id: "[/]"}\n')
    result = CliRunner().invoke(
        backfill_command,
        [str(source), "--as", "identify", "--map", str(mapping), "--db", db],
        terminal_width=40,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1 rows read: 0 accepted, 0 fixed, 0 warned, 0 rejected")
    assert lines[0].endswith(" rows/s)")
    assert lines[1] == "row 1 (line 1): no column '[/]' (the row has 'a')"


def test_cli_mapping_error_exits_2(tmp_path: Path) -> None:
    open_store(tmp_path / "tg.db").close()  # serve creates the store; backfill never does
    bad = tmp_path / "m.yaml"
    bad.write_text("person: {id: customer_id}\ndata:\n  total: {column: total, type: money}\n")
    source = tmp_path / "orders.csv"
    _orders(source, 3)
    result = CliRunner().invoke(
        backfill_command,
        [
            str(source),
            "--as",
            "event:order_completed",
            "--map",
            str(bad),
            "--db",
            str(tmp_path / "tg.db"),
        ],
    )
    assert result.exit_code == 2
    assert f"{bad}:3:32: data.total.type must be one of" in result.output


def _map(tmp_path: Path) -> Path:
    path = tmp_path / "orders.map.yaml"
    path.write_text(ORDERS_MAP)
    return path


def test_email_keyed_rows_fixed_to_the_known_id(db: str, tmp_path: Path) -> None:
    text = PLAN.read_text()
    assert "email_keyed: warn" in text
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(text.replace("email_keyed: warn", "email_keyed: fix"))
    source = tmp_path / "orders.csv"
    with open(source, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "order_id", "ordered_at", "total", "currency"])
        writer.writerow(["ana@example.com", "ORD-1", "2025-03-01T10:00:00Z", "12.50", "USD"])
        writer.writerow(["ana@example.com", "ORD-2", "2025-03-02T10:00:00Z", "20.00", "USD"])
    store = open_store(db)
    store.import_identities([("ana@example.com", "cus_1")])
    report = backfill(
        str(source),
        store=store,
        mapping=parse_mapping(ORDERS_MAP.replace("{id: customer_id}", "{email: email}")),
        event="order_completed",
        plan=load_plan(plan_path),
    )
    store.close()
    assert report.complete and report.rejected == 0 and report.fixed == 2
    persons = query(db, "SELECT DISTINCT person FROM outbox WHERE event_name IS NOT NULL")
    assert persons == [("id:cus_1",)]
    assert _outbox_orders(db) == Counter({"ORD-1": 1, "ORD-2": 1})


MIXED = [  # order_id, customer_id, total, currency
    ("A1", "c1", "10.00", "USD"),  # accepted
    ("A2", "c2", "10.00", "usd"),  # fixed: currency upper-cased
    ("A3", "c3", "10.00", "XYZ"),  # rejected: not a currency the plan knows
    ("A1", "c1", "10.00", "USD"),  # the same order again: a duplicate, not accepted
    ("", "c4", "10.00", "USD"),  # skipped: no order id
    ("A5", "c5", "ten", "USD"),  # skipped: not a number
]


def _mixed(path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "customer_id", "ordered_at", "total", "currency"])
        for order, customer, total, currency in MIXED:
            writer.writerow([order, customer, "2025-01-01T10:00:00Z", total, currency])


def test_counts_add_up_to_the_rows_read_and_restart_quarantines_once(
    db: str, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    _mixed(source)
    args = [str(source), "--as", "event:order_completed", "--map", str(_map(tmp_path))]
    args += ["--db", db, "--plan", str(PLAN)]
    keys = ("rows_read", "accepted", "fixed", "warned", "rejected", "duplicates", "skipped")

    store = open_store(db)
    try:
        first = _backfill_orders(source, store)
        assert tuple(getattr(first, k) for k in keys) == (6, 1, 1, 0, 1, 1, 2)
        assert first.already_quarantined == 0
        assert store.quarantine_count() == 1
    finally:
        store.close()

    result = CliRunner().invoke(backfill_command, [*args, "--restart"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).startswith(
        "6 rows read: 0 accepted, 0 fixed, 0 warned, 1 rejected (quarantined, 1 of them by an"
        " earlier run), 3 duplicates, 2 skipped in "
    )
    store = open_store(db)
    try:
        assert store.quarantine_count() == 1  # the rejected row is kept once
        assert len(_outbox_orders(db)) == 2 and set(_outbox_orders(db).values()) == {1}
    finally:
        store.close()


def test_an_order_id_whose_claim_expired_is_not_a_conflict(db: str, tmp_path: Path) -> None:
    header = "order_id,customer_id,ordered_at,total,currency\n"
    earlier, later = tmp_path / "earlier.csv", tmp_path / "later.csv"
    earlier.write_text(header + "ORD-3,cus_c,2025-03-01T09:00:00Z,5.00,USD\n")
    later.write_text(
        header
        + "ORD-1,cus_a,2025-03-01T10:00:00Z,10.00,USD\n"
        + "ORD-1,cus_b,2025-03-01T12:00:00Z,30.00,USD\n"  # a conflict: the batch is looked at
        + "ORD-3,cus_d,2025-03-01T13:00:00Z,40.00,USD\n"  # cus_c's claim is 8 days old
    )
    store = open_store(db)
    day = 86_400.0
    try:
        for source, at in ((earlier, 1_764_000_000.0), (later, 1_764_000_000.0 + 8 * day)):
            report = _backfill_orders(source, store, clock=lambda at=at: at)
        assert (report.rows_read, report.accepted, report.rejected) == (3, 2, 1)
        assert (report.dedupe_conflicts, report.duplicates) == (1, 0)
        assert store.conflict_count() == 1
        assert _outbox_orders(db) == Counter({"ORD-1": 1, "ORD-3": 2})
    finally:
        store.close()


def test_conflicts_in_later_batches_are_each_found(db: str, tmp_path: Path) -> None:
    """The conflict count read after one batch is the next batch's starting point."""
    source = tmp_path / "orders.csv"
    source.write_text(
        "order_id,customer_id,ordered_at,total,currency\n"
        "ORD-1,cus_a,2025-03-01T10:00:00Z,10.00,USD\n"
        "ORD-1,cus_b,2025-03-01T11:00:00Z,20.00,USD\n"  # batch 1: a conflict
        "ORD-2,cus_a,2025-03-01T12:00:00Z,30.00,USD\n"  # batch 2: none
        "ORD-1,cus_c,2025-03-01T13:00:00Z,40.00,USD\n"  # batch 2: a conflict
        "ORD-2,cus_d,2025-03-01T14:00:00Z,50.00,USD\n"  # batch 3: a conflict
    )
    store = open_store(db)
    try:
        report = _backfill_orders(source, store, batch_size=2)
        assert (report.rows_read, report.accepted, report.rejected) == (5, 2, 3)
        assert (report.dedupe_conflicts, report.duplicates) == (3, 0)
        assert store.conflict_count() == 3
        assert _outbox_orders(db) == Counter({"ORD-1": 1, "ORD-2": 1})
    finally:
        store.close()


def test_a_postgresql_schema_without_a_store_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    _orders(source, 3)
    with fresh_schema() as (url, schema):
        db = f"{url}?schema={schema}"
        args = [str(source), "--as", "event:order_completed", "--map", str(_map(tmp_path))]
        result = CliRunner().invoke(backfill_command, [*args, "--db", db])
        assert result.exit_code == 2
        assert result.stderr == f"Error: no store at {db} (trackguard serve creates one)\n"
        assert result.stdout == ""


def test_an_order_id_reused_by_another_customer_is_rejected_not_accepted(
    db: str, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    header = "order_id,customer_id,ordered_at,total,currency\n"
    source.write_text(
        header
        + "ORD-1,cus_a,2025-03-01T10:00:00Z,10.00,USD\n"
        + "ORD-2,cus_a,2025-03-01T11:00:00Z,20.00,USD\n"
        + "ORD-1,cus_b,2025-03-01T12:00:00Z,30.00,USD\n"  # another shop's id generator
    )
    store = open_store(db)
    try:
        report = _backfill_orders(source, store)
        assert (report.rows_read, report.accepted, report.rejected) == (3, 2, 1)
        assert (report.dedupe_conflicts, report.duplicates) == (1, 0)
        assert report.to_dict()["dedupe_conflicts"] == 1
        assert store.conflict_count() == 1
        assert _outbox_orders(db) == Counter({"ORD-1": 1, "ORD-2": 1})
    finally:
        store.close()
    report.seconds = 1.0
    console = Console(width=300, file=io.StringIO(), highlight=False)
    print_summary(report, console)
    assert console.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "3 rows read: 2 accepted, 0 fixed, 0 warned, 1 rejected (quarantined, 1 of them for a"
        " dedupe key another person holds), 0 duplicates, 0 skipped in 1.0 s (3 rows/s)"
    ]
