"""``trackguard serve`` options reach the gateway as given (the server itself is not started)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import trackguard.cli.serve as serve_module
from trackguard.cli import main
from trackguard.gateway.build import GatewayOptions


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


def _serve(tmp_path: Path, *extra: str) -> Any:
    args = ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0", *extra]
    return CliRunner().invoke(main, args)


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
