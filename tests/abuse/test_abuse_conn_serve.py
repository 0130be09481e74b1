"""``serve``'s limit flags reach the server and the gateway; the limits' validation and the
rate-limited summary line of their trips."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import trackguard.cli.serve as serve_module
from trackguard.cli import main
from trackguard.gateway.build import GatewayOptions
from trackguard.http.limits import ConnectionLimits, ConnectionStats


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[GatewayOptions, dict[str, Any]]]:
    seen: list[tuple[GatewayOptions, dict[str, Any]]] = []
    stats = ConnectionStats()

    def create(options: GatewayOptions) -> object:
        seen.append((options, {}))
        return SimpleNamespace(parts=SimpleNamespace(connections=stats))

    def run(*args: Any, **kwargs: Any) -> None:
        seen[-1][1].update(kwargs, stats_is_the_gateways=kwargs["stats"] is stats)

    monkeypatch.setattr(serve_module, "create_gateway", create)
    monkeypatch.setattr(serve_module, "run", run)
    return seen


def _serve(tmp_path: Path, *extra: str) -> Any:
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0", *extra]
    return CliRunner().invoke(main, args)


def test_serve_defaults_are_the_documented_limits_and_no_admin_listener(
    tmp_path: Path, calls: list[tuple[GatewayOptions, dict[str, Any]]]
) -> None:
    result = _serve(tmp_path)
    assert result.exit_code == 0, result.output
    [(options, kwargs)] = calls
    assert options.limits == ConnectionLimits(
        max_header_bytes=32768,
        header_timeout=10.0,
        body_gap_timeout=30.0,
        body_timeout=60.0,
        keep_alive_timeout=5.0,
        max_connections=1000,
    )
    assert kwargs["limits"] == options.limits
    assert kwargs["admin_listen"] is None
    assert kwargs["stats_is_the_gateways"] is True


def test_serve_passes_every_limit_and_the_admin_listener(
    tmp_path: Path, calls: list[tuple[GatewayOptions, dict[str, Any]]]
) -> None:
    result = _serve(
        tmp_path,
        *("--admin-listen", "127.0.0.1:9100", "--max-connections", "20"),
        *("--max-header-bytes", "4096", "--header-timeout", "2.5"),
        *("--body-gap-timeout", "3", "--body-timeout", "7", "--keep-alive-timeout", "1.5"),
    )
    assert result.exit_code == 0, result.output
    [(options, kwargs)] = calls
    assert options.limits == ConnectionLimits(
        max_header_bytes=4096,
        header_timeout=2.5,
        body_gap_timeout=3.0,
        body_timeout=7.0,
        keep_alive_timeout=1.5,
        max_connections=20,
    )
    assert kwargs["limits"] == options.limits
    assert kwargs["admin_listen"] == ("127.0.0.1", 9100)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--max-connections", "0"),
            "Invalid value for '--max-connections': 0 is not in the range x>=1.",
        ),
        (
            ("--header-timeout", "0"),
            "Invalid value for '--header-timeout': 0.0 is not in the range x>0.",
        ),
        (
            ("--body-timeout", "inf"),
            "body_timeout must be a number of seconds > 0, not inf",
        ),
        (
            ("--admin-listen", "9100"),
            "'9100': expected HOST:PORT, e.g. 127.0.0.1:8090",
        ),
    ],
)
def test_serve_refuses_bad_limits_with_one_line(
    tmp_path: Path,
    calls: list[tuple[GatewayOptions, dict[str, Any]]],
    args: tuple[str, str],
    message: str,
) -> None:
    result = _serve(tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert calls == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_connections", 0, "max_connections must be a whole number >= 1, not 0"),
        ("max_header_bytes", 1.5, "max_header_bytes must be a whole number >= 1, not 1.5"),
        ("max_header_bytes", True, "max_header_bytes must be a whole number >= 1, not True"),
        ("header_timeout", -1, "header_timeout must be a number of seconds > 0, not -1"),
        ("keep_alive_timeout", float("nan"), "keep_alive_timeout must be a number of seconds"),
        ("body_gap_timeout", "5", "body_gap_timeout must be a number of seconds > 0, not '5'"),
    ],
)
def test_limits_refuse_values_that_cannot_work(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        ConnectionLimits(**{field: value})


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trips_are_summarised_in_at_most_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    stats = ConnectionStats(interval=10.0, clock=clock)
    stats.open_connections = 7
    with caplog.at_level(logging.WARNING, logger="trackguard.http"):
        stats.trip("header_bytes")  # the first trip is logged at once
        clock.now = 105.0
        stats.trip("header_timeout")
        stats.trip("header_timeout")
        stats.trip("max_connections")
        clock.now = 110.0
        stats.trip("header_bytes")  # an interval later: one line with everything since
    assert caplog.messages == [
        "connection limits tripped: header_bytes=1 (open connections: 7; at most one line per 10s)",
        "connection limits tripped: header_bytes=1 header_timeout=2 max_connections=1 "
        "(open connections: 7; at most one line per 10s)",
    ]
    assert stats.trips == {
        "header_bytes": 2,
        "header_timeout": 2,
        "body_timeout": 0,
        "max_connections": 1,
        "bad_request": 0,
    }


def test_trips_on_a_loop_are_logged_when_the_interval_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = ConnectionStats(interval=0.05)

    async def burst() -> None:
        loop = asyncio.get_running_loop()
        stats.trip("body_timeout", loop)
        await asyncio.sleep(0.01)  # the first line is out
        for _ in range(3):
            stats.trip("body_timeout", loop)
        await asyncio.sleep(0.2)  # the interval ends: the deferred line is out

    with caplog.at_level(logging.WARNING, logger="trackguard.http"):
        asyncio.run(burst())
    assert [m.split(" (")[0] for m in caplog.messages] == [
        "connection limits tripped: body_timeout=1",
        "connection limits tripped: body_timeout=3",
    ]


@pytest.mark.parametrize("which", ["--listen", "--admin-listen"])
def test_serve_says_in_one_line_when_an_address_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    monkeypatch.setattr(
        serve_module,
        "create_gateway",
        lambda options: SimpleNamespace(parts=SimpleNamespace(connections=ConnectionStats())),
    )
    free = "127.0.0.1:0"
    listen, admin = (address, free) if which == "--listen" else (free, address)
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", listen, "--admin-listen", admin]
    try:
        result = CliRunner().invoke(main, args)
    finally:
        taken.close()
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot listen on {listen} or {admin} (--admin-listen): the address is already"
        " in use (is another server running?)\n"
    )
