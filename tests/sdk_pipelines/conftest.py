"""The emulator the Node and browser SDK tests talk to: their write key, a fresh one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdk_env import WRITE_KEY

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.http.runner import RunningServer, start_in_thread


@pytest.fixture
def served() -> Iterator[tuple[Emulator, RunningServer]]:
    emulator = create_emulator("site", "key", write_key=WRITE_KEY)
    with start_in_thread(emulator) as server:
        yield emulator, server
    emulator.close()
