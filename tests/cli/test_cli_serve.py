"""``trackguard serve`` options reach the gateway as given (the server itself is not started)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import trackguard.cli.serve as serve_module
from trackguard.cli import main
from trackguard.gateway.build import GatewayOptions
from trackguard.gateway.workers import role_options
from trackguard.store.retention import Retention


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[GatewayOptions]:
    seen: list[GatewayOptions] = []

    def create(options: GatewayOptions) -> object:
        seen.append(options)
        return SimpleNamespace(parts=SimpleNamespace(connections=None))

    def run(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(serve_module, "create_gateway", create)
    monkeypatch.setattr(serve_module, "run", run)
    return seen


def _serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0", *extra]
    return CliRunner().invoke(main, args, env=env)


@pytest.mark.parametrize(
    ("given", "option", "expected"),
    [
        ((), "identity_refresh", 1.0),
        (("--identity-refresh", "0.25"), "identity_refresh", 0.25),
        (("--identity-refresh", "0"), "identity_refresh", 0.0),
        (("--identity-refresh", "30"), "identity_refresh", 30.0),
        ((), "commit_gap", None),
        (("--commit-gap", "0.005"), "commit_gap", 0.005),
        (("--commit-gap", "0"), "commit_gap", 0.0),
    ],
)
def test_serve_passes_its_timing_options_on(
    tmp_path: Path,
    captured: list[GatewayOptions],
    given: tuple[str, ...],
    option: str,
    expected: float | None,
) -> None:
    result = _serve(tmp_path, *given)
    assert result.exit_code == 0, result.output
    assert [getattr(o, option) for o in captured] == [expected]


@pytest.mark.parametrize(
    ("flag", "given", "shown"),
    [("--identity-refresh", "-1", "-1.0"), ("--commit-gap", "-0.001", "-0.001")],
)
def test_serve_refuses_a_negative_timing_option(
    tmp_path: Path, captured: list[GatewayOptions], flag: str, given: str, shown: str
) -> None:
    result = _serve(tmp_path, flag, given)
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}': {shown} is not in the range x>=0." in result.output
    assert captured == []


@pytest.mark.parametrize(
    ("command", "flag", "given"),
    [
        ("serve", "--commit-gap", "2ms"),
        ("serve", "--identity-refresh", "1s"),
        ("serve", "--header-timeout", "10 s"),
        ("deliver", "--lease-seconds", "1m"),
        ("emulate", "--outage-seconds", "five"),
    ],
)
def test_a_seconds_option_given_a_unit_says_how_to_write_it(
    command: str, flag: str, given: str
) -> None:
    result = CliRunner().invoke(main, [command, flag, given])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for '{flag}': {given!r} is not a number of seconds (2 ms is 0.002)"
    )


DAY = 86_400.0


def test_serve_retention_defaults_flags_and_environment(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    assert _serve(tmp_path).exit_code == 0
    flags = ("--outbox-retention", "3d", "--anonymous-retention", "2w", "--prune-every", "1m")
    assert _serve(tmp_path, *flags).exit_code == 0
    env = {"TRACKGUARD_OUTBOX_RETENTION": "36h", "TRACKGUARD_PRUNE_EVERY": "1h"}
    assert _serve(tmp_path, env=env).exit_code == 0
    assert [(o.retention, o.prune_every) for o in captured] == [
        (Retention(outbox=7 * DAY, anonymous=30 * DAY, monitor=None), 600.0),
        (Retention(outbox=3 * DAY, anonymous=14 * DAY, monitor=None), 60.0),
        (Retention(outbox=1.5 * DAY, anonymous=30 * DAY, monitor=None), 3600.0),
    ]
    bad = _serve(tmp_path, "--prune-every", "0")
    assert bad.exit_code == 2
    assert bad.output.endswith(
        "Error: Invalid value for '--prune-every' (env var: 'TRACKGUARD_PRUNE_EVERY'):"
        " must be longer than 0s\n"
    )


def _limits(o: GatewayOptions) -> tuple[object, ...]:
    return (
        o.request_log_policy,
        o.request_log_max_bytes,
        o.request_log_keep,
        o.open_max_body,
        o.open_quarantine_budget,
    )


def test_serve_hardening_flags_default_to_the_documented_limits(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    result = _serve(tmp_path)
    assert result.exit_code == 0, result.output
    assert [_limits(o) for o in captured] == [("best-effort", 100 * 1024 * 1024, 5, 8192, 100)]


def test_serve_hardening_flags_are_passed_on(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    result = _serve(
        tmp_path,
        "--request-log-policy",
        "fail",
        "--request-log-max-bytes",
        "1000",
        "--request-log-keep",
        "0",
        "--open-max-body",
        "512",
        "--open-quarantine-budget",
        "7",
    )
    assert result.exit_code == 0, result.output
    assert [_limits(o) for o in captured] == [("fail", 1000, 0, 512, 7)]


def test_serve_refuses_an_unknown_request_log_policy(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    result = _serve(tmp_path, "--request-log-policy", "sometimes")
    assert result.exit_code == 2
    assert "'sometimes' is not one of 'best-effort', 'fail'." in result.output
    assert captured == []


def test_serve_reports_a_request_log_it_cannot_open(tmp_path: Path) -> None:
    log = tmp_path / "missing-folder" / "requests.jsonl"
    result = CliRunner().invoke(
        main,
        ["serve", "--db", str(tmp_path / "tg.db"), "--request-log", str(log), "--no-deliver"],
        env={"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k"},
    )
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {log}: cannot open the request log: No such file or directory\n"
    )


def test_serve_refuses_zero_workers(tmp_path: Path, captured: list[GatewayOptions]) -> None:
    result = _serve(tmp_path, "--workers", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--workers': 0 is not in the range x>=1." in result.output
    assert captured == []


@pytest.mark.parametrize(("code", "exit_code"), [(0, 0), (1, 2)])
def test_serve_workers_hands_over_to_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, exit_code: int
) -> None:
    calls: list[tuple[Any, ...]] = []

    def serve_workers(options: GatewayOptions, serving: Any, workers: int, **kw: Any) -> int:
        calls.append((options.db, serving.port, serving.limits.max_connections, workers, kw))
        return code

    monkeypatch.setattr(serve_module, "serve_workers", serve_workers)
    result = _serve(
        tmp_path, "--workers", "2", "--max-connections", "50", "--admin-listen", "127.0.0.1:0"
    )
    assert result.exit_code == exit_code
    ((db, port, ceiling, workers, kw),) = calls
    assert (db, port, ceiling, workers) == (str(tmp_path / "tg.db"), 0, 50, 2)
    assert kw["admin_listen"] == ("127.0.0.1", 0)
    if code:
        assert result.output.endswith(
            "Error: workers kept dying: more than 10 restarts within a minute (see the log above)\n"
        )


def test_only_worker_0_delivers_prunes_and_alerts() -> None:
    options = GatewayOptions(alerts=Path("alerts.yaml"), request_log=Path("/logs/requests.jsonl"))
    assert role_options(options, 0) is options
    other = role_options(options, 2)
    assert (other.deliver, other.alerts, other.singletons) == (False, None, False)
    assert other.request_log == Path("/logs/requests.w2.jsonl")
    assert dataclasses.replace(
        other, deliver=True, alerts=options.alerts, singletons=True, request_log=options.request_log
    ) == (options)
