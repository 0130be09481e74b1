"""``trackguard console`` from the command line: a PostgreSQL store as well as a SQLite file,
and one-line errors for stores it cannot read."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from pg_server import fresh_schema
from trackguard.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _console(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["console", *args])
    return result.exit_code, result.output


def test_a_store_url_of_another_kind_is_one_error_line() -> None:
    assert _console("--db", "mysql://tg@db/tg") == (
        2,
        "Error: 'mysql://tg@db/tg': unsupported store URL (use a path, sqlite:///path or"
        " postgresql://user@host/db[?schema=NAME])\n",
    )


def test_a_postgresql_schema_without_a_store_is_refused_and_left_alone() -> None:
    with fresh_schema() as (url, schema):
        target = f"{url}?schema={schema}"
        assert _console("--db", target) == (
            2,
            f"Error: no store at {target} (trackguard serve creates one)\n",
        )


def test_an_unreachable_postgresql_is_one_error_line() -> None:
    code, output = _console("--db", "postgresql://tg@127.0.0.1:1/tg?connect_timeout=2")
    assert code == 2
    assert output.startswith(
        "Error: postgresql://tg@127.0.0.1:1/tg?connect_timeout=2: cannot connect to PostgreSQL: "
    )
    assert output.count("\n") == 1


def test_the_console_serves_a_postgresql_store_and_never_shows_its_password(
    filled_pg: str,
) -> None:
    # trust auth takes any password; the console must not show it anywhere
    with_password = filled_pg.replace("://postgres@", "://postgres:s3cret-pw@", 1)
    with_password = with_password.replace("://root@", "://root:s3cret-pw@", 1)
    assert "s3cret-pw" in with_password
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trackguard",
            "console",
            "--db",
            with_password,
            "--listen",
            "127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        line = proc.stderr.readline() if ready else ""
        found = re.fullmatch(r"trackguard console on (http://127\.0\.0\.1:\d+)\n", line)
        assert found, line
        for path in ("/", "/quarantine", "/plan", "/delivery"):
            page = httpx.get(found.group(1) + path, timeout=10)
            assert page.status_code == 200, (path, page.text)
            assert "s3cret-pw" not in page.text
            assert f'<span class="store" title="store">{filled_pg} · read-only</span>' in page.text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0
    assert "s3cret-pw" not in err
