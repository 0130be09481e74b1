"""The gateway's Pipelines door over loopback: real HTTP in, the real SQLite store, delivery to
the emulator playing Customer.io's Pipelines API (strict, with its own write key)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pipelines_env import WRITE_KEY

from outbox_wait import drain
from trackguard.cli import main
from trackguard.emulator.app import Emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, ConfigError, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.plan.loader import load_plan
from trackguard.recovery.fixes import parse_fixes
from trackguard.recovery.replay import replay
from trackguard.store.base import QuarantineRecord
from trackguard.store.sqlite import open_store

PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
AT = "2024-06-01T12:00:00.123+00:00"
UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Unauthorized request",
    "meta": {"errors": ["Unauthorized request"]},
}


@dataclass
class Door:
    app: Gateway
    server: RunningServer
    emulator: Emulator
    db: Path
    log: Path

    def client(self, key: str = WRITE_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=(key, ""), timeout=10)

    def drain(self) -> None:
        drain(self.db)

    def quarantine(self) -> list[QuarantineRecord]:
        store = open_store(self.db)
        try:
            return list(reversed(store.quarantine_list()))
        finally:
            store.close()

    def delivered(self) -> list[dict[str, Any]]:
        return [c["call"] for c in self.emulator.pipelines.calls_view()]


@pytest.fixture
def door(
    tmp_path: Path, pipelines_session: tuple[Emulator, RunningServer]
) -> Iterator[Callable[..., Door]]:
    emulator, upstream = pipelines_session
    emulator.reset()
    emulator.faults.set(FaultConfig())
    running: list[RunningServer] = []

    def make(plan: Path | None = PLAN, key: str | None = WRITE_KEY, **options: Any) -> Door:
        opts = GatewayOptions(
            plan=plan,
            db=tmp_path / "tg.db",
            upstream=upstream.url,
            pipelines_upstream=upstream.url,
            request_log=tmp_path / "requests.jsonl",
            **options,
        )
        auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=key)
        app = create_gateway(opts, auth)
        server = start_in_thread(app)
        running.append(server)
        return Door(app, server, emulator, opts.db, tmp_path / "requests.jsonl")

    yield make
    for server in running:
        server.stop()


def track(mid: str, event: str = "product_viewed", user: str = "cust-1") -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "messageId": mid,
            "properties": {"product_id": "P-1"}, "timestamp": AT}  # fmt: skip


BATCH = {"batch": [track("m-0"), track("m-1", event=""), track("m-2")]}


def test_one_bad_call_is_quarantined_and_the_rest_of_its_batch_delivered(
    door: Callable[..., Door],
) -> None:
    d = door()
    with d.client() as client:
        response = client.post("/v1/batch", json=BATCH)
    assert (response.status_code, response.content) == (200, b"{}")
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["m-0", "m-2"]
    (record,) = d.quarantine()
    assert (record.kind, record.codes, record.batch_index) == ("contract", ("event_invalid",), 1)
    assert (record.route, record.status, record.path) == ("POST /v1/batch", 200, "/v1/batch")
    assert json.loads(record.body) == track("m-1", event="")
    assert json.loads(record.findings) == [
        {"kind": "contract", "code": "event_invalid",
         "message": "event must be a non-empty string", "field": "batch[1].event",
         "reason": "event_invalid", "batch_index": 1, "verified": True}
    ]  # fmt: skip
    assert dict(record.headers)["authorization"] == "[redacted]"
    requests = d.app.parts.metrics.requests
    assert requests["POST /v1/batch", 200] == 1
    monitor: Any = d.app.parts.monitor
    counted = Counter(monitor.tally.totals)
    for (_, event, route, source, kind, name), n in monitor.tally.take().items():
        counted[kind, event, route, source, name] += n
    assert {k: n for k, n in counted.items() if k[2] == "POST /v1/batch"} == {
        ("outcome", "product_viewed", "POST /v1/batch", "default", "accepted"): 2,
        ("outcome", "(unknown)", "POST /v1/batch", "default", "invalid"): 1,
        ("code", "(unknown)", "POST /v1/batch", "default", "event_invalid"): 1,
    }
    assert monitor.errors == 0
    upstream = d.emulator.log.snapshot()
    assert [(r["path"], r["status"], r["headers"]["x-strict-mode"]) for r in upstream] == [
        ("/v1/batch", 200, "1")
    ]


def test_strict_mode_answers_400_and_still_keeps_the_good_calls(
    door: Callable[..., Door],
) -> None:
    d = door()
    with d.client() as client:
        response = client.post("/v1/batch", json=BATCH, headers={"x-strict-mode": "1"})
        again = client.post("/v1/batch", json=BATCH)  # resent: the good calls are duplicates
    line = "batch[1].event: event must be a non-empty string"
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_request",
        "message": line,
        "meta": {"errors": [line]},
    }
    assert (again.status_code, again.content) == (200, b"{}")
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["m-0", "m-2"]
    assert d.app.parts.metrics.duplicates == 2
    assert [r.codes for r in d.quarantine()] == [("event_invalid",), ("event_invalid",)]


def test_a_wrong_write_key_keeps_nothing_and_is_answered_like_customer_io(
    door: Callable[..., Door], caplog: pytest.LogCaptureFixture
) -> None:
    d = door()
    with d.client("not-the-key") as client:
        permissive = client.post("/v1/batch", json=BATCH)
        strict = client.post("/v1/batch", json=BATCH, headers={"x-strict-mode": "1"})
    no_key = httpx.post(d.server.url + "/v1/batch", json=BATCH, headers={"x-strict-mode": "1"})
    assert (permissive.status_code, permissive.content) == (200, b"{}")
    assert (strict.status_code, strict.json()) == (401, UNAUTHORIZED)
    assert strict.headers["connection"] == "close"
    assert (no_key.status_code, no_key.json()) == (401, UNAUTHORIZED)
    assert d.quarantine() == []
    store = open_store(d.db)
    try:
        assert store.outbox_stats().pending + store.outbox_stats().delivered == 0
    finally:
        store.close()
    assert d.app.parts.metrics.requests["other", 401] == 2
    assert d.app.guards.unauthenticated.total == 3
    assert [r.getMessage() for r in caplog.records if r.name == "trackguard.gateway"] == [
        "requests without valid credentials (answered 401): 1 "
        "(127.0.0.1 POST /v1/batch (answered 200): 1)"
    ]  # the first at once, the others summarised later
    assert not d.log.exists() or "not-the-key" not in d.log.read_text()


def test_the_browser_write_key_never_reaches_the_quarantine_the_log_or_upstream(
    door: Callable[..., Door],
) -> None:
    d = door()
    good = {"writeKey": WRITE_KEY, "userId": "cust-1", "event": "product_viewed",
            "properties": {"product_id": "P-1"}, "messageId": "b-1"}  # fmt: skip
    bad = {"writeKey": WRITE_KEY, "userId": "cust-1", "event": "", "messageId": "b-2"}
    answers = [
        httpx.post(
            d.server.url + "/v1/t",
            content=json.dumps(body),
            headers={"content-type": "text/plain"},
        )
        for body in (good, bad)
    ]
    assert [(a.status_code, a.content) for a in answers] == [(200, b"{}"), (200, b"{}")]
    assert answers[0].headers["access-control-allow-origin"] == "*"
    d.drain()
    (delivered,) = d.delivered()
    assert delivered == {k: v for k, v in good.items() if k != "writeKey"} | {"type": "track"}
    (record,) = d.quarantine()
    assert json.loads(record.body) == {k: v for k, v in bad.items() if k != "writeKey"}
    d.server.stop()  # flushes the request log
    logged = d.log.read_text()
    assert logged.count('"path":"/v1/t"') == 2
    assert WRITE_KEY not in logged
    assert WRITE_KEY.encode() not in record.body + record.findings


def test_gzip_bodies_are_read_and_logged_inflated(door: Callable[..., Door]) -> None:
    d = door()
    body = gzip.compress(json.dumps({"batch": [track("g-1")]}).encode())
    with d.client() as client:
        response = client.post("/v1/batch", content=body, headers={"content-encoding": "gzip"})
    assert (response.status_code, response.content) == (200, b"{}")
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["g-1"]
    d.server.stop()
    (line,) = [json.loads(x) for x in d.log.read_text().splitlines()]
    assert json.loads(line["body"]) == {"batch": [track("g-1")]}
    assert (line["outcome"], line["codes"]) == ("accepted", [])


def test_the_identity_policy_decides_an_email_keyed_call(
    door: Callable[..., Door], tmp_path: Path
) -> None:
    strict_plan = tmp_path / "plan.yaml"
    text = PLAN.read_text()
    assert "email_keyed: warn" in text
    strict_plan.write_text(text.replace("email_keyed: warn", "email_keyed: reject"))
    d = door(plan=strict_plan)
    cart = track("c-1", event="product_viewed", user="shopper@example.com")
    with d.client() as client:
        response = client.post("/v1/batch", json={"batch": [cart, track("c-2")]})
    assert (response.status_code, response.content) == (200, b"{}")
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["c-2"]
    (record,) = d.quarantine()
    assert (record.kind, record.codes, record.batch_index) == (
        "plan",
        ("identity_not_canonical", "user_id_email"),
        0,
    )
    assert json.loads(record.body) == cart


def test_without_a_cdp_key_the_pipelines_api_is_not_served(door: Callable[..., Door]) -> None:
    d = door(key=None)
    with d.client() as client:
        response = client.post("/v1/batch", json=BATCH)
    message = "the Pipelines API is not enabled: set TRACKGUARD_CDP_API_KEY"
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": message,
        "meta": {"errors": [message]},
    }
    assert d.quarantine() == []


def test_replay_judges_a_pipelines_record_again_and_sends_it_once_fixed(
    door: Callable[..., Door], tmp_path: Path
) -> None:
    d = door()
    with d.client() as client:
        assert client.post("/v1/batch", json=BATCH).status_code == 200
    d.drain()
    (before,) = d.quarantine()
    plan = load_plan(PLAN)
    unfixed = replay(d.db, plan)
    assert [(i.outcome, i.codes, i.reason, i.new_path) for i in unfixed.items] == [
        ("still_invalid", ("event_invalid",), "event must be a non-empty string", "/v1/track")
    ]
    assert unfixed.warnings == []
    assert [(r.id, r.state) for r in d.quarantine()] == [(before.id, "still_invalid")]
    fixes = parse_fixes('- map: {field: event, values: {"": product_viewed}}')
    fixed = replay(d.db, plan, None, fixes)
    assert [(i.outcome, i.applied) for i in fixed.items] == [
        ("replayed", ('map {"field":"event","values":{"":"product_viewed"}}',))
    ]
    d.drain()
    assert [c["messageId"] for c in d.delivered()] == ["m-0", "m-2", "m-1"]
    assert d.delivered()[-1] == track("m-1")
    assert [r.state for r in d.quarantine()] == ["replayed"]


def test_paths_methods_and_sizes_are_answered_as_the_contract_says(
    door: Callable[..., Door],
) -> None:
    d = door()
    too_big = json.dumps({"batch": [track("x", event="e" * 600_000)]}).encode()
    with d.client() as client:
        unknown = client.post("/v1/nope", json={})
        method = client.get("/v1/batch")
        big = client.post("/v1/batch", content=too_big)
        strict_big = client.post("/v1/batch", content=too_big, headers={"x-strict-mode": "1"})
        telemetry = client.post("/v1/m", json={"series": []})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (method.status_code, method.headers["allow"]) == (405, "POST")
    assert (big.status_code, big.content, big.headers["connection"]) == (200, b"{}", "close")
    assert strict_big.status_code == 400
    assert strict_big.json()["message"] == "request is larger than 500 KB once decompressed"
    assert (telemetry.status_code, telemetry.content) == (200, b"{}")
    assert [(r.codes, r.body) for r in d.quarantine()] == [
        (("request_too_large",), b"null"),
        (("request_too_large",), b"null"),
    ]


@pytest.mark.parametrize(
    ("key", "upstream", "error"),
    [
        ("sk_eu_" + "a" * 32, "https://cdp.customer.io",
         "TRACKGUARD_CDP_API_KEY is a EU key but --pipelines-upstream is Customer.io's US host: "
         "use https://cdp-eu.customer.io"),
        ("pk_us_" + "a" * 32, "https://cdp-eu.customer.io/",
         "TRACKGUARD_CDP_API_KEY is a US key but --pipelines-upstream is Customer.io's EU host: "
         "use https://cdp.customer.io"),
        ("sk_eu_" + "a" * 32, "https://cdp-eu.customer.io", None),
        ("legacy-key", "https://cdp-eu.customer.io", None),
        ("sk_us_" + "a" * 32, "http://127.0.0.1:9", None),
    ],
)  # fmt: skip
def test_a_key_is_never_sent_to_the_other_region(
    key: str, upstream: str, error: str | None, tmp_path: Path
) -> None:
    options = GatewayOptions(db=tmp_path / "tg.db", pipelines_upstream=upstream, deliver=False)
    auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=key)
    if error is None:
        create_gateway(options, auth).parts.store.close()
        return
    with pytest.raises(ConfigError) as raised:
        create_gateway(options, auth)
    assert str(raised.value) == error


def test_serve_says_which_region_in_one_line(tmp_path: Path) -> None:
    env = {"TRACKGUARD_SITE_ID": "s", "TRACKGUARD_API_KEY": "k",
           "TRACKGUARD_CDP_API_KEY": "sk_eu_" + "b" * 32}  # fmt: skip
    result = CliRunner().invoke(
        main, ["serve", "--db", str(tmp_path / "tg.db"), "--listen", "127.0.0.1:0"], env=env
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: TRACKGUARD_CDP_API_KEY is a EU key but --pipelines-upstream is Customer.io's US "
        "host: use https://cdp-eu.customer.io\n"
    )


def test_with_email_keyed_fix_a_cart_keyed_by_email_is_sent_under_the_known_id(
    door: Callable[..., Door], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.read_text().replace("email_keyed: warn", "email_keyed: fix"))
    d = door(plan=plan)
    identify = {"type": "identify", "userId": "cust-7", "messageId": "i-1",
                "traits": {"email": "Dana@Example.com"}}  # fmt: skip
    cart = track("c-1", event="product_viewed", user="dana@example.com")
    with d.client() as client:
        assert client.post("/v1/batch", json={"batch": [identify]}).status_code == 200
        assert client.post("/v1/batch", json={"batch": [cart]}).status_code == 200
    d.drain()
    assert [(c["messageId"], c["userId"]) for c in d.delivered()] == [
        ("i-1", "cust-7"),
        ("c-1", "cust-7"),
    ]
    assert d.quarantine() == []


def test_a_message_id_another_person_holds_is_kept_without_the_key(
    door: Callable[..., Door],
) -> None:
    d = door()
    first = track("m-same", user="cust-1")
    other = track("m-same", user="cust-2")
    with d.client() as client:
        assert client.post("/v1/batch", json={"batch": [first]}).status_code == 200
    browser = {"batch": [track("m-new"), other], "writeKey": WRITE_KEY}
    answer = httpx.post(d.server.url + "/v1/b", content=json.dumps(browser))
    assert (answer.status_code, answer.content) == (200, b"{}")
    d.drain()
    assert [(c["messageId"], c["userId"]) for c in d.delivered()] == [
        ("m-same", "cust-1"),
        ("m-new", "cust-1"),
    ]
    (record,) = d.quarantine()
    assert (record.codes, record.batch_index, record.path) == (
        ("dedupe_key_conflict",),
        1,
        "/v1/b",
    )
    assert json.loads(record.body) == other
    assert WRITE_KEY.encode() not in record.body + record.findings
