"""The emulator serves the Pipelines API over loopback HTTP beside the Track API.

Real requests go to a running emulator; what it answers, keeps (``/_emulator/pipelines/...``),
applies to the workspace (``/_emulator/people``, ``/events``, ``/objects``) and records is
asserted exactly.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
from pipelines_env import WRITE_KEY

from trackguard.contract.pipelines import messages as m

MSG = "b11376ae-1d80-4593-af67-fc601f3e8c6c"
IDENTIFY = {
    "type": "identify",
    "userId": "u-123",
    "anonymousId": "anon-9",
    "traits": {"email": "a@example.com", "plan": "pro"},
    "timestamp": "2024-06-01T12:00:00.265+00:00",
    "context": {"library": {"name": "analytics-python", "version": "1.1.0"}},
    "integrations": {},
    "messageId": "msg-identify-1",
}
TRACK = {
    "type": "track",
    "userId": "u-123",
    "event": "Order Completed",
    "properties": {"total": 12.5},
    "timestamp": "2024-06-01T12:00:01Z",
    "context": {"ip": "203.0.113.9"},
    "integrations": {"All": False, "Actions Customerio": True},
    "messageId": MSG,
}


def post(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=raw, headers={"content-type": "application/json", **headers})


def calls(client: httpx.Client, **query: str) -> list[dict[str, Any]]:
    return list(client.get("/_emulator/pipelines/calls", params=query).json())


def dropped(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/_emulator/pipelines/dropped").json())


def test_a_batch_is_answered_200_and_kept_exactly_as_sent(cdp: httpx.Client) -> None:
    response = post(
        cdp, "/v1/batch", {"batch": [IDENTIFY, TRACK], "sentAt": "2024-06-01T12:00:02Z"}
    )
    assert (response.status_code, response.content) == (200, b"{}")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    kept = calls(cdp)
    assert [c["call"] for c in kept] == [IDENTIFY, TRACK]
    assert [(c["seq"], c["type"], c["path"], c["batch_index"]) for c in kept] == [
        (1, "identify", "/v1/batch", 0),
        (2, "track", "/v1/batch", 1),
    ]
    assert [c["envelope"] for c in kept] == [{"sentAt": "2024-06-01T12:00:02Z"}] * 2
    assert [c["call"]["messageId"] for c in calls(cdp, type="track")] == [MSG]
    assert calls(cdp, userId="nobody") == []


def test_calls_are_applied_to_the_workspace_as_journeys_would(cdp: httpx.Client) -> None:
    post(cdp, "/v1/batch", {"batch": [IDENTIFY, TRACK]})
    person = cdp.get("/_emulator/people/u-123").json()
    assert (person["id"], person["email"], person["attributes"]) == (
        "u-123",
        "a@example.com",
        {"plan": "pro"},
    )
    assert person["anonymous_ids"] == ["anon-9"]
    (event,) = cdp.get("/_emulator/events", params={"person": "u-123"}).json()
    assert (event["name"], event["data"], event["id"], event["api"], event["timestamp"]) == (
        "Order Completed",
        {"total": 12.5},
        MSG,
        "pipelines",
        1717243201,
    )


def test_page_screen_group_and_alias_reach_the_workspace(cdp: httpx.Client) -> None:
    post(cdp, "/v1/identify", {"userId": "old", "traits": {"name": "Ann"}})
    post(cdp, "/v1/identify", {"userId": "new", "traits": {"email": "ann@example.com"}})
    post(cdp, "/v1/page", {"userId": "new", "properties": {"url": "https://x.io/a"}})
    post(cdp, "/v1/page", {"userId": "new", "name": "No URL"})  # accepted, Journeys drops it
    post(cdp, "/v1/screen", {"userId": "new", "name": "Home"})
    group = {"userId": "new", "groupId": "acme", "traits": {"objectTypeId": "2", "tier": "gold",
             "relationshipAttributes": {"role": "admin"}}}  # fmt: skip
    post(cdp, "/v1/group", group)
    post(cdp, "/v1/alias", {"userId": "new", "previousId": "old"})
    assert [c["type"] for c in calls(cdp)] == [
        "identify", "identify", "page", "page", "screen", "group", "alias"
    ]  # fmt: skip
    events = cdp.get("/_emulator/events", params={"person": "new"}).json()
    assert [(e["type"], e["name"]) for e in events] == [
        ("page", "https://x.io/a"),
        ("screen", "Home"),
    ]
    (obj,) = cdp.get("/_emulator/objects").json()
    assert (obj["object_type_id"], obj["object_id"], obj["attributes"]) == (
        "2",
        "acme",
        {"tier": "gold"},
    )
    people = cdp.get("/_emulator/people").json()
    assert [(p["id"], p["email"], p["attributes"]) for p in people] == [
        ("new", "ann@example.com", {"name": "Ann"})
    ]
    assert [r["attributes"] for r in people[0]["relationships"]] == [{"role": "admin"}]


def test_one_bad_call_is_dropped_alone_and_kept_with_its_reason(cdp: httpx.Client) -> None:
    bad = {"type": "track", "userId": "u-123"}
    response = post(cdp, "/v1/batch", {"batch": [IDENTIFY, bad, TRACK]})
    assert (response.status_code, response.content) == (200, b"{}")
    assert [c["batch_index"] for c in calls(cdp)] == [0, 2]
    (lost,) = dropped(cdp)
    assert (lost["status"], lost["batch_index"], lost["call"], lost["errors"]) == (
        200,
        1,
        bad,
        [{"code": "event_missing", "message": "batch[1].event: track requires event"}],
    )


def test_strict_mode_refuses_the_batch_with_400_and_keeps_nothing(cdp: httpx.Client) -> None:
    body = {"batch": [IDENTIFY, {"type": "track", "userId": "u-123"}]}
    response = post(cdp, "/v1/batch", body, **{"X-Strict-Mode": "1"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_request",
        "message": "batch[1].event: track requires event",
        "meta": {"errors": ["batch[1].event: track requires event"]},
    }
    assert calls(cdp) == []
    assert cdp.get("/_emulator/people").json() == []
    assert [(d["status"], d["batch_index"]) for d in dropped(cdp)] == [(400, 0), (400, 1)]


def test_a_wrong_key_is_401_when_strict_and_200_but_dropped_when_not(cdp: httpx.Client) -> None:
    other = httpx.Client(base_url=str(cdp.base_url), auth=("wrong-key", ""), timeout=10)
    with other:
        strict = post(other, "/v1/track", TRACK, **{"X-Strict-Mode": "1"})
        assert (strict.status_code, strict.json()["code"]) == (401, "unauthorized")
        lenient = post(other, "/v1/track", TRACK)
        assert (lenient.status_code, lenient.content) == (200, b"{}")
        anonymous = other.post("/v1/track", json=TRACK, auth=None, headers={"authorization": ""})
        assert anonymous.status_code == 200
    assert calls(cdp) == []
    assert [(d["status"], d["errors"][0]["code"]) for d in dropped(cdp)] == [
        (401, "unauthorized"),
        (200, "unauthorized"),
        (200, "unauthorized"),
    ]


def test_bearer_and_body_keys_are_accepted(cdp: httpx.Client) -> None:
    headers = {"authorization": f"Bearer {WRITE_KEY}", "x-strict-mode": "1"}
    bearer = cdp.post("/v1/batch", json={"batch": [TRACK]}, auth=None, headers=headers)
    assert bearer.status_code == 200
    page = {"type": "page", "anonymousId": "a-1", "properties": {"url": "https://x.io/"},
            "writeKey": WRITE_KEY, "messageId": "ajs-1"}  # fmt: skip
    browser = cdp.post("/v1/p", content=json.dumps(page), auth=None,
                       headers={"content-type": "text/plain", "x-strict-mode": "1"})  # fmt: skip
    assert browser.status_code == 200
    assert [c["call"] for c in calls(cdp)] == [
        TRACK,
        {k: v for k, v in page.items() if k != "writeKey"},
    ]
    recorded = cdp.get("/_emulator/requests").json()
    assert [r["headers"]["authorization"] for r in recorded[:1]] == ["[redacted]"]
    assert json.loads(recorded[1]["body"])["writeKey"] == "[redacted]"
    assert WRITE_KEY not in json.dumps(recorded)
    assert recorded[0]["response"] == "{}"


def test_a_browser_batch_has_every_key_redacted_in_the_log(cdp: httpx.Client) -> None:
    item = {"type": "track", "anonymousId": "a-1", "event": "E", "writeKey": WRITE_KEY}
    body = json.dumps({"batch": [item, item], "writeKey": WRITE_KEY})
    response = cdp.post("/v1/b", content=body, auth=None, headers={"x-strict-mode": "1"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    (recorded,) = cdp.get("/_emulator/requests").json()
    assert json.loads(recorded["body"]) == {
        "batch": [{**item, "writeKey": "[redacted]"}] * 2,
        "writeKey": "[redacted]",
    }


def test_gzip_bodies_are_read_and_a_bomb_is_refused(cdp: httpx.Client) -> None:
    zipped = gzip.compress(json.dumps({"batch": [TRACK]}).encode())
    ok = post(cdp, "/v1/batch", zipped, **{"Content-Encoding": "gzip", "X-Strict-Mode": "1"})
    assert ok.status_code == 200
    assert [c["call"] for c in calls(cdp)] == [TRACK]
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))
    refused = post(cdp, "/v1/batch", bomb, **{"Content-Encoding": "gzip", "X-Strict-Mode": "1"})
    assert (refused.status_code, refused.json()["meta"]["errors"]) == (
        400,
        ["request is larger than 500 KB once decompressed"],
    )
    lenient = post(cdp, "/v1/batch", bomb, **{"Content-Encoding": "gzip"})
    assert lenient.status_code == 200
    assert [d["errors"][0]["code"] for d in dropped(cdp)] == ["request_too_large"] * 2


def test_a_body_over_the_wire_cap_is_refused_unread(cdp: httpx.Client) -> None:
    huge = b'{"batch":[],"pad":"' + b"x" * m.MAX_WIRE_BYTES + b'"}'
    response = post(cdp, "/v1/batch", huge, **{"X-Strict-Mode": "1"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert response.headers["connection"] == "close"
    (record,) = cdp.get("/_emulator/requests").json()
    assert (record["body"], record["status"]) == ("", 400)


def test_repeated_message_ids_are_kept_once_and_counted(cdp: httpx.Client) -> None:
    for _ in range(3):
        assert post(cdp, "/v1/batch", {"batch": [TRACK]}).status_code == 200
    assert len(calls(cdp)) == 1
    assert len(cdp.get("/_emulator/events").json()) == 1
    stats = cdp.get("/_emulator/stats").json()
    assert (stats["pipelines_calls"], stats["pipelines_duplicates"], stats["requests"]) == (1, 2, 3)


def test_unknown_paths_and_methods(cdp: httpx.Client) -> None:
    missing = post(cdp, "/v1/delete", {})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = cdp.get("/v1/batch")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert post(cdp, "/v1/m", {"series": []}).content == b"{}"
    assert cdp.post("/_emulator/pipelines/calls").status_code == 405
    assert cdp.get("/_emulator/pipelines/other").status_code == 404


def test_faults_filtered_by_route_hit_only_that_pipelines_path(cdp: httpx.Client) -> None:
    config = {"status": 503, "retry_after": 2, "routes": ["/v1/batch"]}
    assert cdp.post("/_emulator/faults", json=config).status_code == 200
    faulted = post(cdp, "/v1/batch", {"batch": [TRACK]})
    assert (faulted.status_code, faulted.headers["retry-after"]) == (503, "2")
    assert faulted.json() == {
        "code": "service_unavailable",
        "message": "Service Unavailable",
        "meta": {"errors": ["Service Unavailable"]},
    }
    assert post(cdp, "/v1/track", TRACK).status_code == 200
    track_api = cdp.put("/api/v1/customers/7", json={}, auth=("emu-site", "emu-key"))
    assert track_api.status_code == 200
    assert [c["path"] for c in calls(cdp)] == ["/v1/track"]
    assert cdp.get("/_emulator/faults").json()["injected"] == 1


def test_any_key_is_accepted_when_the_emulator_has_none() -> None:
    from trackguard.contract.pipelines import WriteKey
    from trackguard.emulator.app import create_emulator

    emulator = create_emulator("s", "k")
    assert emulator.pipelines_key_accepted(WriteKey("anything", "basic"))
    assert not emulator.pipelines_key_accepted(None)
    keyed = create_emulator("s", "k", write_key="wk")
    assert keyed.pipelines_key_accepted(WriteKey("wk", "bearer"))
    assert not keyed.pipelines_key_accepted(WriteKey("wk2", "basic"))
