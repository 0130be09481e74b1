"""An emulator with a Pipelines write key, served over loopback for this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pipelines_env import WRITE_KEY

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.http.runner import RunningServer, start_in_thread


@pytest.fixture(scope="session")
def pipelines_session() -> Iterator[tuple[Emulator, RunningServer]]:
    emulator = create_emulator("emu-site", "emu-key", write_key=WRITE_KEY)
    with start_in_thread(emulator) as server:
        yield emulator, server
    emulator.close()


@pytest.fixture
def cdp(pipelines_session: tuple[Emulator, RunningServer]) -> Iterator[httpx.Client]:
    """A client of a fresh emulator, sending the write key as the Node SDK does."""
    emulator, server = pipelines_session
    emulator.reset()
    emulator.faults.set(FaultConfig())
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10) as client:
        yield client
