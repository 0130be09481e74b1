"""Files holding request data are created 0600, whatever the umask leaves.

The store (and SQLite's ``-wal`` and ``-shm`` beside it), quarantine exports, the traffic
``sample`` writes, audit reports and drafted plans all carry what clients sent (emails, orders).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from trackguard.cli import main
from trackguard.private import open_private, write_private
from trackguard.store.base import QuarantineRecord, Write
from trackguard.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The usual umask, which leaves new files world-readable (0644)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    try:
        record = QuarantineRecord(
            received_at=1.0, kind="plan", method="POST", path="/x", body=b'{"email":"a@b.co"}'
        )
        store.commit([Write(quarantine=(record,))])
        files = {p.name: mode(p) for p in tmp_path.iterdir()}
        assert files == {"tg.db": 0o600, "tg.db-wal": 0o600, "tg.db-shm": 0o600}
    finally:
        store.close()


def test_an_existing_store_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    db.touch(mode=0o640)
    SQLiteStore(db).close()
    assert mode(db) == 0o640


def test_exports_samples_and_reports_are_private(tmp_path: Path) -> None:
    db = tmp_path / "tg.db"
    store = SQLiteStore(db)
    record = QuarantineRecord(
        received_at=1.0, kind="plan", method="POST", path="/x", body=b'{"email":"a@b.co"}'
    )
    store.commit([Write(quarantine=(record,))])
    store.close()
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("q.jsonl", "report.html"):
        stale = out / name
        stale.write_text("old")
        stale.chmod(0o644)  # an earlier export or report, overwritten: narrowed too
    for args in (
        ["quarantine", "export", "--db", str(db), "-o", str(out / "q.jsonl")],
        ["quarantine", "export", "--db", str(db), "--format", "csv", "-o", str(out / "q.csv")],
        ["sample", "-n", "30", "-o", str(out / "traffic.jsonl")],
        [
            "audit",
            str(out / "traffic.jsonl"),
            "--json",
            str(out / "report.json"),
            "--html",
            str(out / "report.html"),
            "--infer-plan",
            str(out / "plan.yaml"),
        ],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    assert {p.name: mode(p) for p in out.iterdir()} == {
        "q.jsonl": 0o600,
        "q.csv": 0o600,
        "traffic.jsonl": 0o600,
        "report.json": 0o600,
        "report.html": 0o600,
        "plan.yaml": 0o600,
    }
    assert b"a@b.co" in (out / "q.jsonl").read_bytes()


def test_appending_and_special_files_keep_their_mode(tmp_path: Path) -> None:
    log = tmp_path / "record.jsonl"
    with open_private(log, "ab") as fh:
        fh.write(b"1\n")
    assert mode(log) == 0o600
    log.chmod(0o640)
    with open_private(log, "ab") as fh:
        fh.write(b"2\n")
    assert (mode(log), log.read_bytes()) == (0o640, b"1\n2\n")
    write_private(os.devnull, b"x")  # not a regular file: its mode is not touched
    assert stat.S_IMODE(os.stat(os.devnull).st_mode) == 0o666
