"""``trackguard emulate``: start-up line, credentials, TLS, fault flags, clean stop on signals."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from click.testing import CliRunner

from trackguard.cli.emulate import emulate_command
from trackguard.http.runner import bind

if TYPE_CHECKING:
    import ssl

    from conftest import TLSFiles

LAUNCH = "from trackguard.cli.emulate import emulate_command; emulate_command()"
LINE = re.compile(r"trackguard emulator listening on (https?://127\.0\.0\.1:\d+)\n")
CREDS = {"TRACKGUARD_SITE_ID": "cli-site", "TRACKGUARD_API_KEY": "cli-k3y"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKGUARD_")}
    env.update(extra)
    return env


@contextmanager
def emulate(*args: str, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run the command; yield its URL once it printed the start-up line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else ""
        found = LINE.fullmatch(line)
        assert found, f"no start-up line: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield found.group(1), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal_then_exits_cleanly(
    tmp_path: Path, plain_context: ssl.SSLContext, sig: int
) -> None:
    record = tmp_path / "rec.jsonl"
    with (
        emulate("--record", str(record), env=_env(**CREDS)) as (url, proc),
        httpx.Client(base_url=url, verify=plain_context) as client,
    ):
        response = client.put("/api/v1/customers/42", json={"a": 1}, auth=("cli-site", "cli-k3y"))
        assert (response.status_code, response.content) == (200, b"{}\n")
        assert client.get("/_emulator/people/42").json()["attributes"] == {"a": 1}
        code, out, err = stop(proc, sig)
    assert (code, out) == (0, "")
    assert "cli-k3y" not in err
    (line,) = record.read_text().splitlines()
    assert json.loads(line)["headers"]["authorization"] == "[redacted]"


def test_tls_and_config_file_credentials_win_over_the_environment(
    tmp_path: Path, tls_files: TLSFiles, tls_context: ssl.SSLContext
) -> None:
    config = tmp_path / "emulator.toml"
    config.write_text('site_id = "toml-site"\napi_key = "toml-key"\n')
    tls = ("--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key))
    with (
        emulate("--config", str(config), *tls, env=_env(**CREDS)) as (url, proc),
        httpx.Client(base_url=url, verify=tls_context) as client,
    ):
        assert url.startswith("https://")
        assert (
            client.put("/api/v1/customers/1", json={}, auth=("toml-site", "toml-key")).status_code
            == 200
        )
        assert (
            client.put("/api/v1/customers/1", json={}, auth=("cli-site", "cli-k3y")).status_code
            == 401
        )
        assert stop(proc, signal.SIGTERM)[0] == 0


def test_fault_flags_become_the_fault_configuration(plain_context: ssl.SSLContext) -> None:
    flags = (
        "--fail-status",
        "429",
        "--fail-rate",
        "0.25",
        "--latency-ms",
        "5",
        "--outage-seconds",
        "30",
        "--retry-after",
        "2",
        "--seed",
        "9",
    )
    with (
        emulate(*flags, env=_env(**CREDS)) as (url, proc),
        httpx.Client(base_url=url, verify=plain_context) as client,
    ):
        faults = client.get("/_emulator/faults").json()
        outage = faults.pop("outage")
        assert outage["end"] - outage["start"] == pytest.approx(30)
        assert faults == {
            "status": 429,
            "rate": 0.25,
            "latency_ms": 5,
            "retry_after": 2,
            "routes": [],
            "seed": 9,
            "injected": 0,
        }
        response = client.put("/api/v1/customers/1", json={}, auth=("cli-site", "cli-k3y"))
        assert (response.status_code, response.headers["retry-after"]) == (429, "2")
        assert stop(proc, signal.SIGTERM)[0] == 0


def test_yaml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("site_id: 12345\napi_key: yaml-key\n")
    from trackguard.cli.emulate import load_credentials

    assert load_credentials(config) == ("12345", "yaml-key")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY, or give --config FILE"),
        ((), {"TRACKGUARD_SITE_ID": "s"}, "set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY"),
        (("--listen", "nonsense"), CREDS, "'nonsense': expected HOST:PORT"),
        (("--tls-cert", __file__), CREDS, "--tls-cert and --tls-key go together"),
        (("--fail-rate", "2"), CREDS, "2.0 is not in the range 0<=x<=1"),
        (("--site-id", "s"), CREDS, "No such option '--site-id'"),
        (("--api-key", "k"), CREDS, "No such option '--api-key'"),
    ],
)
def test_usage_errors(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(emulate_command, list(args), env={**_blank_env(), **env})
    assert result.exit_code == 2
    assert message in result.output


def _blank_env() -> dict[str, str | None]:
    return {"TRACKGUARD_SITE_ID": None, "TRACKGUARD_API_KEY": None}


def test_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("site_id = ")
    result = CliRunner().invoke(emulate_command, ["--config", str(config)], env=_blank_env())
    assert result.exit_code == 2 and f"cannot read {config}" in result.output
    config.write_text("- a list\n")
    config = config.rename(tmp_path / "bad.yaml")
    result = CliRunner().invoke(emulate_command, ["--config", str(config)], env=_blank_env())
    assert result.exit_code == 2 and "expected a mapping with site_id and api_key" in result.output


def test_port_in_use_is_a_clear_error() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            emulate_command, ["--listen", f"127.0.0.1:{port}"], env={**_blank_env(), **CREDS}
        )
    finally:
        taken.close()
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: cannot listen on 127.0.0.1:{port}: the address is already in use"
        " (is another server running?)\n"
    )


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(emulate_command, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "trackguard emulate --listen 127.0.0.1:8090" in result.output
