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
    listed = runner.invoke(
        outbox_group, ["list", "--db", str(db), "--state", "pending"], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.output.splitlines()[2:]]
    assert [(r[0], r[5], r[7], r[9], r[11]) for r in rows] == [
        ("3", "id:c2", "order_completed", "pending", "0"),
        ("2", "id:c1", "order_completed", "pending", "1"),
    ]
    assert "503 from upstream" in listed.output
    shown = runner.invoke(outbox_group, ["show", "--db", str(db), "1"])
    assert shown.exit_code == 0
    assert "state: delivered\n" in shown.output
    assert "attempts: 1\n" in shown.output
    payload = json.loads(shown.output.split("payload:\n", 1)[1])
    assert payload["v2"]["name"] == "order_completed"
    assert payload["v2"]["identifiers"] == {"id": "c0"}


def test_missing_row_and_missing_store(tmp_path: Path) -> None:
    db = _store(tmp_path)
    runner = CliRunner()
    assert runner.invoke(outbox_group, ["show", "--db", str(db), "99"]).exit_code == 1
    missing = runner.invoke(outbox_group, ["stats", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert "no such store" in missing.output
