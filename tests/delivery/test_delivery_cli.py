"""``trackguard deliver`` against the emulator over loopback: --once, failures, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from trackguard.cli.deliver import deliver_command
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.convert import to_outbox_rows
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.base import Write
from trackguard.store.sqlite import SQLiteStore

SITE, KEY = "cli-site", "cli-key-not-to-be-logged"
ENV = {"TRACKGUARD_SITE_ID": SITE, "TRACKGUARD_API_KEY": KEY}


@pytest.fixture(name="emulator")
def _emulator() -> Iterator[tuple[Emulator, RunningServer]]:
    emulator = create_emulator(SITE, KEY)
    with start_in_thread(emulator) as server:
        yield emulator, server


def fill(db: Path, people: int) -> None:
    store = SQLiteStore(db)
    checker = Checker()
    for i in range(1, people + 1):
        body = json.dumps({"email": f"p{i}@example.com"}).encode()
        verdict = checker.check(Request(method="PUT", path=f"/api/v1/customers/{i}", body=body))
        rows = to_outbox_rows(verdict.operations, received_at=time.time(), source=None)
        store.commit([Write(outbox=rows)])
    store.close()


def test_once_delivers_what_is_due_and_exits(
    emulator: tuple[Emulator, RunningServer], tmp_path: Path
) -> None:
    emu, server = emulator
    db = tmp_path / "outbox.db"
    fill(db, 3)
    args = ["--db", str(db), "--upstream", server.url, "--once"]
    result = CliRunner().invoke(deliver_command, args, env=ENV)
    assert (result.exit_code, result.output) == (
        0,
        "delivered 3, quarantined 0, retried 0; 0 pending\n",
    )
    assert [p["email"] for p in emu.state.people_view()] == [f"p{i}@example.com" for i in (1, 2, 3)]
    assert emu.stats()["by_status"] == {"200": 1}  # one v2 batch


def test_once_exits_1_when_upstream_fails(
    emulator: tuple[Emulator, RunningServer], tmp_path: Path
) -> None:
    emu, server = emulator
    emu.faults.update({"status": 503})
    db = tmp_path / "outbox.db"
    fill(db, 2)
    args = ["--db", f"sqlite:///{db}", "--upstream", server.url, "--once"]
    result = CliRunner().invoke(deliver_command, args, env=ENV)
    assert (result.exit_code, result.output) == (
        1,
        "delivered 0, quarantined 0, retried 2; 2 pending\n",
    )


def test_credentials_come_from_the_environment_only(tmp_path: Path) -> None:
    fill(tmp_path / "x.db", 1)
    args = ["--db", str(tmp_path / "x.db"), "--upstream", "http://127.0.0.1:9", "--once"]
    result = CliRunner().invoke(
        deliver_command, args, env={"TRACKGUARD_SITE_ID": "", "TRACKGUARD_API_KEY": ""}
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY")
    help_text = CliRunner().invoke(deliver_command, ["--help"]).output
    assert "Example:" in help_text and "--api-key" not in help_text


def test_runs_as_a_process_until_sigterm(
    emulator: tuple[Emulator, RunningServer], tmp_path: Path
) -> None:
    emu, server = emulator
    db = tmp_path / "outbox.db"
    fill(db, 2)
    code = "from trackguard.cli.deliver import deliver_command; deliver_command()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--db", str(db), "--upstream", server.url, "--rate", "50"],
        env={**os.environ, **ENV},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while len(emu.state.people_view()) < 2:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        fill(db, 3)  # person 3 arrives while the worker runs (1 and 2 again: no change)
        while len(emu.state.people_view()) < 3:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "delivery started (50.0 req/s, burst 5)" in stderr
    assert "SIGTERM: stopping" in stderr and "delivery stopped" in stderr
    assert KEY not in stderr
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/_emulator/stats").json()["people"] == 3


def test_no_circuit_quarantines_what_an_upstream_refusing_everything_refuses(
    emulator: tuple[Emulator, RunningServer], tmp_path: Path
) -> None:
    """One batch of five rows, every one refused: with the circuit breaker the rows are held
    in the outbox (one bad batch is not yet evidence); with --no-circuit they are quarantined
    at once, as before the breaker."""
    emu, server = emulator
    emu.faults.update({"status": 400})
    results = {}
    for flags in ([], ["--no-circuit"]):
        db = tmp_path / f"outbox{len(flags)}.db"
        fill(db, 5)
        args = ["--db", str(db), "--upstream", server.url, "--once", *flags]
        result = CliRunner().invoke(deliver_command, args, env=ENV)
        store = SQLiteStore(db)
        try:
            errors = sorted({(r.state, (r.last_error or "")[:5]) for r in store.outbox_list()})
            kept = store.quarantine_count()
        finally:
            store.close()
        results[" ".join(flags) or "circuit"] = (result.exit_code, result.output, errors, kept)
    assert results == {
        "circuit": (
            0,
            "delivered 0, quarantined 0, retried 5; 5 pending\n",
            [("pending", "held:")],
            0,
        ),
        "--no-circuit": (
            0,
            "delivered 0, quarantined 5, retried 0; 0 pending\n",
            [("failed", "Bad R")],  # Customer.io's "Bad Request", as the emulator says it
            5,
        ),
    }


def test_a_lease_shorter_than_the_upstream_timeout_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    fill(db, 1)
    args = ["--db", str(db), "--upstream", "http://127.0.0.1:9", "--lease-seconds", "5"]
    result = CliRunner().invoke(deliver_command, args, env=ENV)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for '--lease-seconds': 5.0 is not in the range x>=15.0."
    )


@pytest.mark.parametrize("lease", [15.0, 90.0])
def test_the_lease_option_reaches_the_store(tmp_path: Path, lease: float) -> None:
    from trackguard.store.sqlite import open_store

    db = tmp_path / "outbox.db"
    fill(db, 1)
    store = open_store(db, create=False, lease_seconds=lease)
    try:
        (row,) = store.lease(10, now=1000.0)
        assert store.outbox_row(row.seq).next_attempt_at == 1000.0 + lease  # type: ignore[union-attr]
    finally:
        store.close()
