"""``trackguard serve`` options reach the gateway as given (the server itself is not started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import trackguard.cli.serve as serve_module
from trackguard.cli import main
from trackguard.gateway.build import GatewayOptions
from trackguard.store.retention import Retention


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[GatewayOptions]:
    seen: list[GatewayOptions] = []

    def create(options: GatewayOptions) -> object:
        seen.append(options)
        return object()

    def run(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(serve_module, "create_gateway", create)
    monkeypatch.setattr(serve_module, "run", run)
    return seen


def _serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0", *extra]
    return CliRunner().invoke(main, args, env=env)


def test_serve_identity_refresh_defaults_to_one_second(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    result = _serve(tmp_path)
    assert result.exit_code == 0, result.output
    assert [o.identity_refresh for o in captured] == [1.0]


@pytest.mark.parametrize(("given", "expected"), [("0.25", 0.25), ("0", 0.0), ("30", 30.0)])
def test_serve_identity_refresh_is_passed_on(
    tmp_path: Path, captured: list[GatewayOptions], given: str, expected: float
) -> None:
    result = _serve(tmp_path, "--identity-refresh", given)
    assert result.exit_code == 0, result.output
    assert [o.identity_refresh for o in captured] == [expected]


def test_serve_refuses_a_negative_identity_refresh(
    tmp_path: Path, captured: list[GatewayOptions]
) -> None:
    result = _serve(tmp_path, "--identity-refresh", "-1")
    assert result.exit_code == 2
    assert "Invalid value for '--identity-refresh': -1.0 is not in the range x>=0." in result.output
    assert captured == []


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
