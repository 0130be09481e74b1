"""``trackguard demo`` as a command: it runs from any directory and prints the D2C story."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from trackguard.cli import main


def test_demo_runs_outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no examples/ here: the plan comes from the package
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(main, ["demo", "--customers", "60"])
    assert result.exit_code == 0, result.output
    rows = {" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()}
    assert {
        "accepted 188",
        "fixed 25",
        "warned 13",
        "rejected 4",
        "invalid 10",
        "operations delivered 257",
        "operations still pending 0",
        "quarantine records (replayable) 14",
        "SDK retries answered 2xx and not sent again 5",
        "demo finished: every accepted operation was delivered",
    } <= rows
    assert not any(row.startswith("event_late") for row in rows)
    assert list(tmp_path.iterdir()) == []  # it cleans up after itself
