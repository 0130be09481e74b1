"""A big v2 batch is checked off the event loop: other requests are answered meanwhile."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
from app_env import serve

from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.gateway.app import CHECK_IN_THREAD


class HeldChecker(Checker):
    """The real checker, except that a big body waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.entered = threading.Event()
        self.release = threading.Event()

    def check(self, request: Request, hit: Any = None, **kwargs: Any) -> Verdict:
        if len(request.body) > CHECK_IN_THREAD:
            self.entered.set()
            assert self.release.wait(20), "never released"
        return super().check(request, hit, **kwargs)


def test_a_small_request_is_answered_while_a_500_kb_batch_is_being_checked(
    tmp_path: Path,
) -> None:
    items = [
        {"type": "person", "identifiers": {"id": str(i)}, "action": "event", "name": "viewed"}
        for i in range(5000)
    ]
    big = msgspec.json.encode({"batch": items})
    assert 300_000 < len(big) < 500_000
    with serve(tmp_path, plan=None) as gw, ThreadPoolExecutor(1) as pool:
        assert gw.app.parts.checker.plan is None  # what HeldChecker checks with
        held = HeldChecker()
        gw.app.parts.checker = held
        with gw.client() as first, gw.client() as second:
            batch = pool.submit(first.post, "/api/v2/batch", content=big)
            assert held.entered.wait(20)
            small = second.put("/api/v1/customers/1", json={"a": 1})
            still_checking = not batch.done()
            held.release.set()
            answer: httpx.Response = batch.result(timeout=20)
    assert small.status_code == 200
    assert still_checking  # the small request was answered while the batch was held
    assert (answer.status_code, answer.content) == (200, b"{}\n")
