"""A store that cannot commit is one counted log line per interval, not a traceback a request."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from app_env import serve

from trackguard.store.base import StoreError

FAILED = "store commits failed (answered 503)"


def test_commit_failures_are_counted_in_one_line_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="trackguard.gateway")
    with serve(tmp_path, plan=None) as gw:
        store = gw.app.parts.store
        healthy = store.commit

        def full(*args: Any, **kwargs: Any) -> Any:
            raise StoreError("database or disk is full")

        monkeypatch.setattr(store, "commit", full)
        with gw.client() as client:
            failing = [client.put(f"/api/v1/customers/{i}", json={}).status_code for i in range(30)]
            monkeypatch.setattr(store, "commit", healthy)
            recovered = client.put("/api/v1/customers/ok", json={}).status_code
        metrics = gw.metrics()
    records = [r for r in caplog.records if r.name == "trackguard.gateway"]
    assert failing == [503] * 30
    assert recovered == 200
    assert metrics["trackguard_commit_failures_total"] == 30.0
    assert [r.getMessage() for r in records] == [
        f"{FAILED}: 1 (database or disk is full: 1)",
        f"{FAILED}: 29 (database or disk is full: 29)",
        "store commits succeed again",
    ]
    # Only the first failure carries its traceback.
    assert [r.exc_info is not None for r in records] == [True, False, False]
