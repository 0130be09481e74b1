"""Fault injection: statuses by rate (seeded) or outage window, Retry-After, latency, routes."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.emulator.faults import (
    FaultConfig,
    FaultConfigError,
    Outage,
    fault_body,
    parse_faults,
)
from trackguard.http.runner import start_in_thread

if TYPE_CHECKING:
    import ssl

    from conftest import Emu


def set_faults(emu: Emu, config: dict[str, Any]) -> Any:
    response = emu.client.post("/_emulator/faults", json=config)
    assert response.status_code == 200, response.text
    return response.json()


def identify(client: httpx.Client, who: str = "42") -> httpx.Response:
    return client.put(f"/api/v1/customers/{who}", json={"plan": "pro"})


def test_status_alone_fails_every_request_and_applies_nothing(emu: Emu) -> None:
    set_faults(emu, {"status": 500})
    response = identify(emu.client)
    assert (response.status_code, response.content) == (500, fault_body(500))
    assert response.content == b'{\n  "meta": {\n    "error": "Internal Server Error"\n  }\n}\n'
    assert "retry-after" not in response.headers
    assert emu.client.get("/_emulator/people").json() == []  # the control API is never faulted
    stats = emu.stats()
    assert (stats["by_status"], stats["faults_injected"]) == ({"500": 1}, 1)


def test_429_with_retry_after(emu: Emu) -> None:
    set_faults(emu, {"status": 429, "retry_after": 2})
    response = identify(emu.client)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"meta": {"error": "Too Many Requests"}}


def test_faults_win_over_auth(emu: Emu) -> None:
    set_faults(emu, {"status": 502})
    with emu.raw() as client:
        assert identify(client).status_code == 502


def test_seeded_rate_is_repeatable(emu: Emu) -> None:
    rng = random.Random(7)
    expected = [503 if rng.random() < 0.3 else 200 for _ in range(40)]
    for _ in range(2):
        set_faults(emu, {"rate": 0.3, "seed": 7})
        got = [identify(emu.client, str(i)).status_code for i in range(40)]
        assert got == expected
    assert 0 < expected.count(503) < 40
    assert len(emu.people()) == expected.count(200)
    assert emu.client.get("/_emulator/faults").json()["injected"] == expected.count(503)


def test_routes_narrow_the_faults(emu: Emu) -> None:
    set_faults(emu, {"status": 503, "routes": ["/api/v2/batch", "/api/v1/customers/{identifier}"]})
    item = {"type": "person", "action": "identify", "identifiers": {"id": "1"}}
    assert emu.client.post("/api/v2/batch", json={"batch": [item]}).status_code == 503
    assert identify(emu.client).status_code == 503
    assert emu.client.post("/api/v2/entity", json=item).status_code == 200
    event = {"name": "x"}
    assert emu.client.post("/api/v1/customers/1/events", json=event).status_code == 200


def test_latency_delays_every_answer(emu: Emu) -> None:
    set_faults(emu, {"latency_ms": 150})
    started = time.perf_counter()
    assert identify(emu.client).status_code == 200
    assert time.perf_counter() - started >= 0.15
    set_faults(emu, {"latency_ms": 150, "status": 503})
    started = time.perf_counter()
    assert identify(emu.client).status_code == 503
    assert time.perf_counter() - started >= 0.15
    # Faults are for the Track API only: the read API answers even while everything fails.
    assert emu.client.get("/_emulator/stats").status_code == 200


def test_relative_outage_seconds(emu: Emu) -> None:
    before = time.time()
    shown = set_faults(emu, {"outage": {"seconds": 0.4}})
    assert before <= shown["outage"]["start"] <= time.time()
    assert shown["outage"]["end"] == pytest.approx(shown["outage"]["start"] + 0.4)
    assert identify(emu.client).status_code == 503
    time.sleep(0.45)
    assert identify(emu.client).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(plain_context: ssl.SSLContext) -> Iterator[tuple[Emulator, Clock, httpx.Client]]:
    clock = Clock()
    outage = {"start": clock.now + 10, "end": clock.now + 20}
    emulator = create_emulator("s", "k", clock=clock, faults={"outage": outage, "status": 504})
    with (
        start_in_thread(emulator) as server,
        httpx.Client(base_url=server.url, auth=("s", "k"), verify=plain_context) as client,
    ):
        yield emulator, clock, client
    emulator.close()


def test_absolute_outage_window(clocked: tuple[Emulator, Clock, httpx.Client]) -> None:
    emulator, clock, client = clocked
    statuses = []
    for offset in (9.9, 10.0, 19.9, 20.0):
        clock.now = 1_800_000_000.0 + offset
        statuses.append(identify(client).status_code)
    assert statuses == [200, 504, 504, 200]
    assert emulator.faults.injected == 2


def test_fault_configuration_round_trip_and_clearing(emu: Emu) -> None:
    config = {
        "status": 429,
        "rate": 0.5,
        "latency_ms": 0,
        "retry_after": 1,
        "seed": 3,
        "routes": ["/api/v2/batch"],
        "outage": {"start": 1.0, "end": 2.0},
    }
    assert set_faults(emu, config) == {**config, "injected": 0}
    assert emu.client.get("/_emulator/faults").json() == {**config, "injected": 0}
    cleared = {
        "status": None,
        "rate": None,
        "latency_ms": 0,
        "outage": None,
        "retry_after": None,
        "routes": [],
        "seed": None,
        "injected": 0,
    }
    assert set_faults(emu, {}) == cleared
    assert emu.client.post("/_emulator/faults", content=b"").json() == cleared


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"status": 200}', "status must be an HTTP error status from 400 to 599"),
        (b'{"rate": 1.5}', "rate must be from 0 to 1"),
        (b'{"latency_ms": -1}', "latency_ms must be from 0 to 60000"),
        (b'{"retry_after": -1}', "retry_after must be >= 0"),
        (
            b'{"outage": {"seconds": 1, "start": 1}}',
            "outage: give either seconds, or start and end",
        ),
        (b'{"outage": {"start": 1}}', "outage: give either seconds, or start and end"),
        (b'{"outage": {"start": 2, "end": 1}}', "outage.end must not be before outage.start"),
        (b'{"outage": {"seconds": -1}}', "outage.seconds must be >= 0"),
        (b'{"status": "503"}', "Expected `int | null`, got `str` - at `$.status`"),
        (b'{"stauts": 503}', "Object contains unknown field `stauts`"),
        (b"[]", "Expected `object`, got `array`"),
        (b"{nope", "the body must be a JSON object"),
    ],
)
def test_invalid_fault_configuration_is_refused_and_changes_nothing(
    emu: Emu, body: bytes, message: str
) -> None:
    set_faults(emu, {"status": 503, "rate": 0.0})
    response = emu.client.post("/_emulator/faults", content=body)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert emu.client.get("/_emulator/faults").json()["status"] == 503


def test_parse_faults_refuses_non_finite_outages() -> None:
    for outage in ({"seconds": float("inf")}, {"start": float("nan"), "end": 1.0}):
        with pytest.raises(FaultConfigError, match="outage times must be finite numbers"):
            parse_faults({"outage": outage}, now=0.0)


def test_parse_faults_resolves_relative_outage() -> None:
    config = parse_faults({"outage": {"seconds": 5}, "routes": ["/a"]}, now=100.0)
    assert config == FaultConfig(outage=Outage(100.0, 105.0), routes=("/a",))


def test_create_emulator_validates_fault_mappings() -> None:
    with pytest.raises(FaultConfigError, match="rate must be from 0 to 1"):
        create_emulator("s", "k", faults={"rate": 2})
    emulator = create_emulator("s", "k", faults={"status": 503})
    assert emulator.faults.config == FaultConfig(status=503)
    emulator.close()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.dictionaries(
    st.sampled_from(["status", "rate", "latency_ms", "outage", "retry_after", "routes", "seed"]),
    _JSON | st.fixed_dictionaries({}, optional={"seconds": _JSON, "start": _JSON, "end": _JSON}),
    max_size=4,
)


@given(st.one_of(_JSON, _FIELDS))
def test_parse_faults_accepts_or_explains_anything(value: Any) -> None:
    try:
        config = parse_faults(value, now=0.0)
    except FaultConfigError as exc:
        assert str(exc)
        return
    assert config.status is None or 400 <= config.status <= 599
    assert config.rate is None or 0.0 <= config.rate <= 1.0
    assert config.outage is None or config.outage.start <= config.outage.end
