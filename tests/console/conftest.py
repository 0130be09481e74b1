"""Fixtures for the console tests: one store filled by the gateway, consoles over it.

``any_console`` starts a console over the filled store as a SQLite file and, copied once per
module with ``store copy`` (the monitor's tables alongside), as a PostgreSQL schema: the
read-only page tests run on both and expect the same figures.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_env import PLAN, ConsoleFactory, Filled, fill

from pg_server import fresh_schema
from trackguard.console import Console, ConsoleConfig
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.monitor import load_alerts
from trackguard.plan.loader import load_plan
from trackguard.store.copy import copy_store


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    yield from fill(tmp_path_factory.mktemp("console-store"))


@pytest.fixture(scope="module")
def filled_pg(filled: Filled) -> Iterator[str]:
    """The filled store in a PostgreSQL schema of its own: its ``--db`` URL."""
    with fresh_schema() as (url, schema):
        target = f"{url}?schema={schema}"
        copy_store(filled.db, target)  # the monitor's tables too
        yield target


def _factory(filled: Filled, store: str) -> Iterator[ConsoleFactory]:
    running: list[tuple[RunningServer, Console]] = []

    def make(**overrides: Any) -> RunningServer:
        config = ConsoleConfig(
            store=store,
            plan=overrides.pop("plan", load_plan(PLAN)),
            alerts=overrides.pop("alerts", load_alerts(filled.rules)),
            clock=lambda: filled.end,
            **overrides,
        )
        app = Console(config)
        server = start_in_thread(app)
        running.append((server, app))
        return server

    yield make
    for server, app in running:
        server.stop()
        app.close()


@pytest.fixture
def console(filled: Filled, tmp_path: Path) -> Iterator[ConsoleFactory]:
    """Start a console over a private copy of the filled store (replays change it)."""
    db = tmp_path / "copy.db"
    shutil.copyfile(filled.db, db)
    yield from _factory(filled, str(db))


@pytest.fixture(params=["sqlite", "postgres"])
def any_console(request: pytest.FixtureRequest, filled: Filled) -> Iterator[ConsoleFactory]:
    """Start a console over the filled store, as a SQLite file and as a PostgreSQL schema
    (shared by the module's tests: only for pages that never write)."""
    store = str(filled.db) if request.param == "sqlite" else request.getfixturevalue("filled_pg")
    yield from _factory(filled, store)
