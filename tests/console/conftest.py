"""Fixtures for the console tests: one store filled by the gateway, consoles over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_env import PLAN, ConsoleFactory, Filled, fill

from trackguard.console import Console, ConsoleConfig
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.monitor import load_alerts
from trackguard.plan.loader import load_plan


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    yield from fill(tmp_path_factory.mktemp("console-store"))


@pytest.fixture
def console(filled: Filled, tmp_path: Path) -> Iterator[ConsoleFactory]:
    """Start a console over a private copy of the filled store (replays change it)."""
    running: list[RunningServer] = []

    def make(**overrides: Any) -> RunningServer:
        db = tmp_path / "copy.db"
        if not db.exists():
            shutil.copyfile(filled.db, db)
        config = ConsoleConfig(
            store=str(db),
            plan=overrides.pop("plan", load_plan(PLAN)),
            alerts=overrides.pop("alerts", load_alerts(filled.rules)),
            clock=lambda: filled.end,
            **overrides,
        )
        server = start_in_thread(Console(config))
        running.append(server)
        return server

    yield make
    for server in running:
        server.stop()
