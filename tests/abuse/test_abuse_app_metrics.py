"""``/metrics`` labels only what the operator chose, stays small whatever is sent, and may ask
for a bearer token."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import msgspec
import pytest
from app_env import API_KEY, PLAN, SITE_ID, Gw, serve
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from trackguard.gateway.config import AuthConfig, Credentials, load_auth
from trackguard.gateway.labels import OTHER, OWN_NAMES, UNPLANNED, EventLabels
from trackguard.http.asgi import bearer_matches
from trackguard.monitor import Monitor
from trackguard.plan.loader import load_plan

NAMES = 20_000
BATCH = 500
#: A scrape with 20,000 distinct names sent stays under this (it was 12 MB before).
MAX_SCRAPE = 64 * 1024


def _name(i: int) -> str:
    return f"zq{i}.shopper{i}@example.com" if i % 2 else f"zq_event_{i}"


def _send_names(gw: Gw) -> None:
    with gw.client() as client:
        for start in range(0, NAMES, BATCH):
            items = [
                {
                    "type": "person",
                    "identifiers": {"id": "7"},
                    "action": "event",
                    "name": _name(i),
                    "attributes": {"schema_version": f"v{i}"},
                }
                for i in range(start, start + BATCH)
            ]
            answer = client.post("/api/v2/batch", content=msgspec.json.encode({"batch": items}))
            assert answer.status_code == 200, answer.text


def _scrape(gw: Gw) -> str:
    monitor = gw.app.parts.monitor
    assert isinstance(monitor, Monitor)
    monitor.flush()  # the monitor's counts are in the scrape too
    with gw.client(auth=False) as client:
        return client.get("/metrics").text


@pytest.mark.parametrize("plan", [PLAN, None], ids=["with-plan", "without-plan"])
def test_20000_distinct_event_names_keep_the_scrape_small_and_free_of_them(
    tmp_path: Path, plan: Path | None
) -> None:
    with serve(tmp_path, plan=plan) as gw:
        _send_names(gw)
        text = _scrape(gw)
    assert len(text.encode()) < MAX_SCRAPE
    assert "@example.com" not in text
    assert "shopper" not in text
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("trackguard_verdicts_total{") and "@event" not in line
    ]
    total = sum(float(line.rpartition(" ")[2]) for line in counted)
    assert total == NAMES
    if plan is not None:
        assert all('event="unplanned"' in line for line in counted)
        assert 'trackguard_monitor_outcomes_total{event="unplanned",outcome="warned"' in text
        assert "zq_event_" not in text
    else:  # the first 100 plain names are labels, everything else is "other"
        named = {line.split('"')[1] for line in counted}
        assert named == {"other"} | {f"zq_event_{i}" for i in range(0, 200, 2)}


def test_the_scrape_carries_the_process_memory_descriptors_and_collector(tmp_path: Path) -> None:
    """What an operator alerts on before a limit is reached, as every Prometheus client names
    it: the gateway's memory grows with the people the store knows (docs/operations.md)."""
    with serve(tmp_path) as gw:
        text = _scrape(gw)
    samples = {
        s.name + str(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["process_resident_memory_bytes[]"] > 20 * 1024 * 1024
    assert 3 < samples["process_open_fds[]"] < samples["process_max_fds[]"]
    assert samples["process_cpu_seconds_total[]"] > 0
    assert samples["python_gc_collections_total[('generation', '0')]"] > 0
    assert "python_info{" in text


def test_planned_names_and_versions_are_labels_and_unplanned_versions_are_not() -> None:
    labels = EventLabels(load_plan(PLAN))
    assert labels.event("order_completed") == "order_completed"
    assert labels.event("jane@example.com") == "unplanned"
    assert labels.event("@identify") == "@identify"
    assert labels.version("order_completed", "2") == "2"
    assert labels.version("order_completed", "jane@example.com") == "unplanned"
    assert labels.version("jane@example.com", "2") == "unplanned"


def test_without_a_plan_names_that_are_not_event_like_are_other_at_once() -> None:
    labels = EventLabels(None, events=2)
    assert [labels.event(n) for n in ("a b", "x@y.z", "ok_1", "Ok.2", "third", "ok_1")] == [
        "other",
        "other",
        "ok_1",
        "Ok.2",
        "other",
        "ok_1",
    ]


TOKEN = "m3trics-t0ken-value"


def test_the_metrics_token_is_asked_for_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = AuthConfig(upstream=Credentials(SITE_ID, API_KEY), metrics_token=TOKEN)
    log = tmp_path / "requests.jsonl"
    with serve(tmp_path, auth=auth, request_log=log) as gw, gw.client(auth=False) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"authorization": "Bearer nope"})
        basic = client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"})
        right = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        health = client.get("/healthz")
    assert [r.status_code for r in (missing, wrong, basic, right, health)] == [
        401,
        401,
        401,
        200,
        200,
    ]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "trackguard_requests_total" in right.text
    assert TOKEN not in caplog.text
    assert TOKEN not in (tmp_path / "requests.jsonl").read_text()
    assert TOKEN not in repr(auth)


def test_the_metrics_token_comes_from_the_environment_or_the_config_file(tmp_path: Path) -> None:
    env = {"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k"}
    assert load_auth(None, env).metrics_token is None
    assert load_auth(None, {**env, "TRACKGUARD_METRICS_TOKEN": "from-env"}).metrics_token == (
        "from-env"
    )
    config = tmp_path / "gateway.yaml"
    config.write_text("metrics_token: from-file\n")
    both = {**env, "TRACKGUARD_METRICS_TOKEN": "from-env"}
    assert load_auth(config, both).metrics_token == "from-file"


@given(st.binary(max_size=80))
def test_only_the_exact_bearer_token_opens_metrics(value: bytes) -> None:
    scheme, _, given = value.partition(b" ")
    expected = scheme.lower() == b"bearer" and given.strip() == TOKEN.encode()
    assert bearer_matches(value, TOKEN) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"Bearer {TOKEN}".encode(), True),
        (f"bearer  {TOKEN} ".encode(), True),
        (f"Basic {TOKEN}".encode(), False),
        (TOKEN.encode(), False),
        (b"Bearer", False),
        (None, False),
    ],
)
def test_bearer_matches(value: bytes | None, expected: bool) -> None:
    assert bearer_matches(value, TOKEN) is expected


PLANNED = load_plan(PLAN)
WITH_PLAN = EventLabels(PLANNED)


@given(st.text(max_size=120), st.text(max_size=30))
def test_with_a_plan_a_label_is_planned_or_a_fixed_word(name: str, version: str) -> None:
    assert WITH_PLAN.event(name) in {*PLANNED.events, UNPLANNED} | OWN_NAMES
    spec = PLANNED.events.get(name)
    declared = {v.version for v in spec.versions} if spec is not None else set()
    assert WITH_PLAN.version(name, version) in declared | {UNPLANNED}


@given(st.lists(st.text(max_size=80), max_size=300))
def test_without_a_plan_labels_are_bounded_and_name_like(names: list[str]) -> None:
    labels = EventLabels(None, events=10)
    chosen = {labels.event(n) for n in names} - OWN_NAMES - {OTHER}
    assert len(chosen) <= 10
    assert all(re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", label) for label in chosen)


def test_an_event_without_a_string_name_never_borrows_the_previous_events_labels() -> None:
    from trackguard.contract.operations import Operation
    from trackguard.core.verdict import Verdict
    from trackguard.gateway.metrics import GatewayMetrics

    def event(body: dict[str, object]) -> Operation:
        return Operation(
            api="v1",
            type="person",
            action="event",
            route="POST /api/v1/customers/{identifier}/events",
            method="POST",
            path="/api/v1/customers/1/events",
            body=body,
            data_key="data",
        )

    named = event({"name": "order_completed", "data": {"schema_version": "2"}})
    unnamed = event({"name": 5, "data": {"schema_version": "3"}})
    verdict = Verdict(
        outcome="accepted", status=200, response=b"{}", route=None, operations=(named, unnamed)
    )
    metrics = GatewayMetrics()
    metrics.observe("POST /api/v2/batch", 200, verdict, 0.001)
    assert dict(metrics.outcomes) == {("order_completed", "accepted"): 1, ("@event", "accepted"): 1}
    assert dict(metrics.versions) == {("order_completed", "2"): 1}
