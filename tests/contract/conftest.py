"""Fixtures for the contract tests: one way to send a request through ``evaluate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from trackguard.contract import ContractResult, Request, evaluate, render

#: ``call(method, path, body)``: ``body`` is raw bytes, ``None`` for no body, or any other value
#: to be sent as compact JSON (the way the SDKs send it).
Call = Callable[..., ContractResult]
#: ``answer(method, path, body)``: the ``(status, body bytes)`` trackguard answers.
Answer = Callable[..., tuple[int, bytes]]


def _encode(body: Any) -> bytes:
    """Bytes on the wire for a test body (compact JSON unless already bytes)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture(scope="session")
def call() -> Call:
    """Session-scoped so hypothesis tests may use it too (it holds no state)."""

    def _call(method: str, path: str, body: Any = None) -> ContractResult:
        return evaluate(Request(method=method, path=path, body=_encode(body)))

    return _call


@pytest.fixture(scope="session")
def answer(call: Call) -> Answer:
    def _answer(method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        return render(call(method, path, body))

    return _answer


@pytest.fixture(scope="session")
def wire() -> Callable[[Any], bytes]:
    """The bytes ``call`` sends for a body, for tests that measure sizes."""
    return _encode
