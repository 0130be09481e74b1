"""Path bytes are never altered: an id whose percent-escapes are not UTF-8 is kept, not sent.

``/api/v1/customers/a%ffb/events`` used to reach Customer.io as ``a\\ufffdb``: another id than
the client sent, with the original byte lost. It is now answered as it would be otherwise (200:
Customer.io's answer is unverified) and held in the quarantine with its path as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from abuse_data_env import Gateway, serve
from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.contract import Request
from trackguard.contract.routes import RouteMatch, match
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.store.quarantine import list_quarantine

CHECKERS = (Checker(None), Checker(None, fast=False))
MESSAGE = "identifier in the path is not UTF-8 once percent-decoded; kept, not delivered"


@pytest.fixture
def gw(tmp_path: Path, emu: Any) -> Iterator[Gateway]:
    yield from serve(tmp_path, emu.url, (emu.site_id, emu.api_key), plan=None)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=200)
@given(raw=st.binary(min_size=1, max_size=12), route=st.sampled_from(("event", "identify")))
def test_an_id_is_sent_exactly_as_encoded_or_held(raw: bytes, route: str) -> None:
    encoded = quote_from_bytes(raw, safe="")
    if route == "event":
        request = Request(
            method="POST", path=f"/api/v1/customers/{encoded}/events", body=b'{"name":"x"}'
        )
    else:
        request = Request(method="PUT", path=f"/api/v1/customers/{encoded}", body=b"{}")
    hit = match(request.method, request.path)
    assert isinstance(hit, RouteMatch)
    assert hit.not_utf8 == (() if _utf8(raw) else ("identifier",))
    for checker in CHECKERS:
        verdict = checker.check(request)
        if verdict.status != 200:
            continue  # refused by the contract (a blank id, an id too long…): never sent
        write = to_write(request, verdict, 1_700_000_000.0)
        if _utf8(raw):
            (op,) = verdict.operations
            assert op.identifier is not None and op.identifier.value == raw.decode()
            assert len(write.outbox) == 1 and write.quarantine == ()
        else:
            assert verdict.operations == () and write.outbox == ()
            assert [v.code for v in verdict.violations] == ["path_not_utf8"]
            (record,) = write.quarantine
            assert (record.path, record.codes) == (request.path, ("path_not_utf8",))


def test_the_gateway_keeps_a_non_utf8_id_as_sent_and_sends_nothing(gw: Gateway, emu: Any) -> None:
    bad = gw.client.post("/api/v1/customers/a%ffb/events", json={"name": "signup"})
    good = gw.client.post("/api/v1/customers/caf%C3%A9/events", json={"name": "signup"})
    assert [(r.status_code, r.content) for r in (bad, good)] == [(200, b"{}\n")] * 2
    gw.drain()
    assert [e["identifier"] for e in emu.events(name="signup")] == [{"id": "café"}]
    (record,) = list_quarantine(gw.db)
    assert (record.kind, record.method, record.path, record.body, record.codes) == (
        "plan",
        "POST",
        "/api/v1/customers/a%ffb/events",
        b'{"name":"signup"}',
        ("path_not_utf8",),
    )
    assert json.loads(record.findings) == [
        {
            "kind": "plan",
            "code": "path_not_utf8",
            "rule": "contract",
            "path": "",
            "message": MESSAGE,
            "action": "reject",
            "batch_index": None,
        }
    ]


def test_a_non_utf8_device_id_is_held_too() -> None:
    request = Request(method="DELETE", path="/api/v1/customers/cus_1/devices/tok%fe%ff", body=b"")
    for checker in CHECKERS:
        verdict = checker.check(request)
        assert (verdict.status, verdict.operations) == (200, ())
        assert [v.message for v in verdict.violations] == [
            "device_id in the path is not UTF-8 once percent-decoded; kept, not delivered"
        ]
