"""``trackguard identity import`` and ``unlinked``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from trackguard.cli.identity import identity_group
from trackguard.store.base import Write
from trackguard.store.sqlite import SQLiteStore


def test_import_binds_emails_and_reports_bad_rows(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    SQLiteStore(db).close()
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("id,email\ncus_1,Ana@Example.com\ncus_2,not-an-email\ncus_3,bo@x.io\n")
    runner = CliRunner()
    first = runner.invoke(identity_group, ["import", "--db", str(db), str(csv_file)])
    assert first.exit_code == 0
    assert first.stdout == "2 new bindings, 0 already known, 1 rows skipped\n"
    assert f"{csv_file}:3: skipped: expected id,email" in first.stderr
    again = runner.invoke(identity_group, ["import", "--db", str(db), str(csv_file)])
    assert again.stdout == "0 new bindings, 2 already known, 1 rows skipped\n"
    store = SQLiteStore(db)
    assert sorted(store.identities()) == [("ana@example.com", "cus_1"), ("bo@x.io", "cus_3")]
    store.close()


def test_unlinked_lists_anonymous_activity_never_linked(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    store.commit([Write(anonymous=(("anon-1", "added_to_cart"), ("anon-2", "cart_updated")))])
    store.commit([Write(anonymous_links=(("anon-1", "id:cus_1"),))])
    store.close()
    runner = CliRunner()
    result = runner.invoke(identity_group, ["unlinked", "--db", str(db), "--older-than", "0"])
    assert result.exit_code == 0
    header, line = result.stdout.splitlines()
    assert header.split() == ["anonymous", "id", "first", "seen", "(UTC)", "event"]
    anonymous_id, when, event = line.split()
    assert (anonymous_id, event) == ("anon-2", "cart_updated")
    seen = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert abs(seen - time.time()) < 86_400
    as_json = runner.invoke(
        identity_group, ["unlinked", "--db", str(db), "--older-than", "0", "--format", "json"]
    )
    assert json.loads(as_json.stdout) == [
        {"anonymous_id": "anon-2", "first_seen": when, "event": "cart_updated"}
    ]
    assert "1 anonymous ids never linked" in result.stderr
    bad = runner.invoke(identity_group, ["unlinked", "--db", str(db), "--older-than", "soon"])
    assert bad.exit_code == 2


def test_unlinked_takes_its_default_age_from_the_plan(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    store.commit([Write(anonymous=(("anon-1", "added_to_cart"),))])
    store.close()
    plan = tmp_path / "plan.yaml"
    plan.write_text("identity: {unlinked_after: 1s}\n")
    runner = CliRunner()
    fresh = runner.invoke(identity_group, ["unlinked", "--db", str(db), "--format", "jsonl"])
    assert fresh.stdout == ""  # the default 24h: seen just now, not reported yet
    assert fresh.stderr == "0 anonymous ids never linked (first seen over 1d ago)\n"
    time.sleep(1.1)
    planned = runner.invoke(
        identity_group, ["unlinked", "--db", str(db), "--plan", str(plan), "--format", "csv"]
    )
    assert planned.stdout.splitlines()[0] == "anonymous_id,first_seen,event"
    assert planned.stdout.splitlines()[1].startswith("anon-1,")
    assert planned.stderr == "1 anonymous ids never linked (first seen over 1s ago)\n"
