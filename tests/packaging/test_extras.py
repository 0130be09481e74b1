"""The core install works without the heavy extras: ``make demo`` installs ``.[demo]`` only, so
nothing on the way to the demo (or any command's ``--help``) may import psycopg, duckdb or
jinja2 at module level. Those extras are blocked here the way a missing package fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: The extras' top-level modules (``postgres``, ``parquet``, ``console``).
EXTRAS = ("psycopg", "psycopg_binary", "duckdb", "jinja2")

_RUN = """
import sys
for name in {extras!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as when not installed
from trackguard.cli import main
sys.exit(main({args!r}, standalone_mode=True))
"""


def _trackguard(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = _RUN.format(extras=EXTRAS, args=args)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_runs_without_the_postgres_parquet_and_console_extras(tmp_path: Path) -> None:
    done = _trackguard(["demo", "--customers", "20"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished: every accepted operation was delivered" in done.stdout


@pytest.mark.parametrize(
    "command", ["serve", "deliver", "replay", "backfill", "audit", "check", "console", "store"]
)
def test_help_needs_no_extra(command: str, tmp_path: Path) -> None:
    done = _trackguard([command, "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ")


def test_a_postgresql_url_without_psycopg_is_one_error_line(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    done = _trackguard(["outbox", "stats", "--db", url], tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "Error: postgresql:// stores need psycopg: pip install 'trackguard[postgres]'\n"
    )
