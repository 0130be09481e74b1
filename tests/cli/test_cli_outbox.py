"""``trackguard outbox``: delivery state is queryable from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from trackguard.cli.outbox import outbox_group
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.store.sqlite import SQLiteStore


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    checker = Checker()
    writes = []
    for n in range(3):
        body = json.dumps({"name": "order_completed", "data": {"n": n}, "timestamp": 1764000000})
        request = Request(method="POST", path=f"/api/v1/customers/c{n}/events", body=body.encode())
        writes.append(to_write(request, checker.check(request), 1764000000.0 + n))
    store.commit(writes)
    store.mark_delivered([1], 1764000100.0)
    store.mark_retry([2], "503 from upstream", 1764000200.0)
    store.close()
    return db


def test_stats_list_and_show(tmp_path: Path) -> None:
    db = _store(tmp_path)
    runner = CliRunner()
    stats = runner.invoke(outbox_group, ["stats", "--db", str(db)])
    assert stats.exit_code == 0
    assert stats.output.startswith("pending 2  delivered 1  failed 0  oldest pending ")
    listed = runner.invoke(outbox_group, ["list", "--db", str(db), "--state", "pending"])
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.output.splitlines()[1:]]
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("3", "id:c2", "order_completed", "pending", "0"),
        ("2", "id:c1", "order_completed", "pending", "1"),
    ]
    assert rows[1][6:] == ["-", "503", "from", "upstream"]  # whole, never cut
    shown = runner.invoke(outbox_group, ["show", "--db", str(db), "1"])
    assert shown.exit_code == 0
    assert "state: delivered\n" in shown.output
    assert "attempts: 1\n" in shown.output
    payload = json.loads(shown.output.split("payload:\n", 1)[1])
    assert payload["v2"]["name"] == "order_completed"
    assert payload["v2"]["identifiers"] == {"id": "c0"}


def test_json_outputs(tmp_path: Path) -> None:
    db = _store(tmp_path)
    runner = CliRunner()
    stats = json.loads(
        runner.invoke(outbox_group, ["stats", "--db", str(db), "--format", "json"]).stdout
    )
    assert {k: stats[k] for k in ("pending", "delivered", "failed")} == {
        "pending": 2,
        "delivered": 1,
        "failed": 0,
    }
    assert stats["oldest_pending_at"] == "2025-11-24T16:00:01.000Z"
    assert stats["oldest_pending_age_seconds"] > 0
    listed = json.loads(
        runner.invoke(outbox_group, ["list", "--db", str(db), "--format", "json"]).stdout
    )
    assert [(r["seq"], r["state"], r["attempts"], r["last_error"]) for r in listed] == [
        (3, "pending", 0, None),
        (2, "pending", 1, "503 from upstream"),
        (1, "delivered", 1, None),
    ]
    assert listed[2]["delivered_at"] == "2025-11-24T16:01:40.000Z"
    # due since it arrived (never tried), due at its retry time, not pending
    assert [r["next_attempt_at"] for r in listed] == [
        "2025-11-24T16:00:02.000Z",
        "2025-11-24T16:03:20.000Z",
        None,
    ]
    assert listed[0]["person"] == "id:c2" and listed[0]["event_name"] == "order_completed"
    lines = runner.invoke(outbox_group, ["list", "--db", str(db), "--format", "jsonl"]).stdout
    assert [json.loads(line) for line in lines.splitlines()] == listed
    csv_out = runner.invoke(outbox_group, ["list", "--db", str(db), "--format", "csv"]).stdout
    assert csv_out.splitlines()[0].split(",")[:3] == ["seq", "received_at", "person"]
    assert len(csv_out.splitlines()) == 4
    shown = json.loads(
        runner.invoke(outbox_group, ["show", "--db", str(db), "1", "--format", "json"]).stdout
    )
    assert shown["seq"] == 1 and shown["state"] == "delivered"
    assert shown["payload"]["v2"]["identifiers"] == {"id": "c0"}


def test_missing_row_and_missing_store(tmp_path: Path) -> None:
    db = _store(tmp_path)
    runner = CliRunner()
    missing_row = runner.invoke(outbox_group, ["show", "--db", str(db), "99"])
    assert (missing_row.exit_code, missing_row.stderr) == (2, f"Error: no outbox row 99 in {db}\n")
    missing = runner.invoke(outbox_group, ["stats", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == f"Error: no store at {tmp_path / 'none.db'} (trackguard serve creates one)\n"
    )
    assert not (tmp_path / "none.db").exists()
