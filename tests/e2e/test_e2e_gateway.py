"""The gateway's HTTP behaviour over real TLS: auth, errors, quarantine, strict mode, logs,
operations endpoints."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import msgspec
from e2e_env import API_KEY, SITE_ID, GatewayFactory, Upstream

from trackguard.store.sqlite import open_store

V1_400_BLANK = (
    b'{\n  "meta": {\n    "errors": [\n      "event name must not be blank"\n    ]\n  }\n}\n'
)


def _quarantine(db: object) -> list[object]:
    store = open_store(str(db))
    try:
        return list(store.quarantine_list(limit=100))
    finally:
        store.close()


def test_success_answer_is_customerio_byte_for_byte(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client() as client:
        response = client.put("/api/v1/customers/42", json={"first_name": "Ana"})
    assert response.status_code == 200
    assert response.content == b"{}\n"
    assert response.headers["content-type"] == "application/json; charset=utf-8"


def test_wrong_or_missing_credentials_get_401_and_nothing_is_kept(
    gateway: GatewayFactory,
) -> None:
    gw = gateway()
    with gw.client(auth=(SITE_ID, "wrong")) as client:
        assert client.put("/api/v1/customers/42", json={}).status_code == 401
    with gw.client(auth=None) as client:
        response = client.put("/api/v1/customers/42", json={})
    assert response.status_code == 401
    assert json.loads(response.content) == {"meta": {"errors": ["Unauthorized request"]}}
    assert _quarantine(gw.db) == []


def test_url_safe_base64_credentials_are_accepted(gateway: GatewayFactory) -> None:
    """The Go SDK encodes Basic auth with the URL-safe alphabet."""
    gw = gateway(plan=None)
    token = base64.urlsafe_b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
    with gw.client(auth=None) as client:
        response = client.put(
            "/api/v1/customers/42", json={"a": 1}, headers={"authorization": f"Basic {token}"}
        )
    assert response.status_code == 200


def test_contract_error_answered_like_customerio_and_quarantined(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    body = b'{"name": "", "data": {"cart_id": "c1"}}'
    with gw.client() as client:
        response = client.post(
            "/api/v1/customers/42/events",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.content == V1_400_BLANK
    (record,) = _quarantine(gw.db)
    assert record.kind == "contract"  # type: ignore[attr-defined]
    assert record.body == body  # type: ignore[attr-defined]
    assert record.codes == ("event_name_blank",)  # type: ignore[attr-defined]
    headers = dict(record.headers)  # type: ignore[attr-defined]
    assert headers["authorization"] == "[redacted]"
    gw.drain()
    assert upstream.events() == []


def test_malformed_json_is_kept_whole(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client() as client:
        response = client.post("/api/v1/customers/42/events", content=b'{"name": "x", "data": {')
    assert response.status_code == 400
    (record,) = _quarantine(gw.db)
    assert record.body == b'{"name": "x", "data": {'  # type: ignore[attr-defined]
    assert record.codes == ("invalid_json",)  # type: ignore[attr-defined]


def test_plan_rejection_is_accepted_and_quarantined_by_default(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway()
    with gw.client() as client:
        response = client.post(
            "/api/v1/customers/42/events",
            json={"name": "order_completed", "data": {"total": 10, "currency": "USD"}},
        )
    assert response.status_code == 200
    (record,) = _quarantine(gw.db)
    assert record.kind == "plan"  # type: ignore[attr-defined]
    assert record.codes == ("property_missing",)  # type: ignore[attr-defined]
    assert record.event_name == "order_completed"  # type: ignore[attr-defined]
    gw.drain()
    assert upstream.events() == []


def test_strict_mode_answers_plan_rejections_400(gateway: GatewayFactory) -> None:
    gw = gateway(strict=True)
    with gw.client() as client:
        response = client.post(
            "/api/v1/customers/42/events",
            json={"name": "order_completed", "data": {"total": 10, "currency": "USD"}},
        )
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "meta": {"errors": ["required property 'order_id' is missing"]}
    }


def test_unknown_path_and_method(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client() as client:
        missing = client.get("/api/v1/nothing")
        wrong = client.get("/api/v1/customers/42/events")
    assert missing.status_code == 404
    assert json.loads(missing.content) == {"meta": {"errors": ["not found"]}}
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert json.loads(wrong.content) == {"meta": {"errors": ["method not allowed"]}}


def test_oversized_body_is_refused_before_it_is_read(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client() as client:
        response = client.post("/api/v1/customers/42/events", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert json.loads(response.content) == {"meta": {"errors": ["request body is too large"]}}


def test_request_log_has_every_request_and_no_credentials(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client() as client:
        client.put("/api/v1/customers/42", json={"first_name": "Ana"})
        client.post("/api/v1/customers/42/events", json={"name": "Order Completed"})
    gw.server.stop()  # flushes the log
    lines = [msgspec.json.decode(line) for line in gw.request_log.read_bytes().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("PUT", "/api/v1/customers/42", 200),
        ("POST", "/api/v1/customers/42/events", 200),
    ]
    assert lines[0]["headers"]["authorization"] == "[redacted]"
    assert lines[0]["body"] == '{"first_name":"Ana"}'
    assert lines[0]["outcome"] == "accepted"
    assert lines[1]["outcome"] == "rejected"
    assert lines[1]["codes"] == [
        "event_name_drift",
        "property_missing",
        "property_missing",
        "property_missing",
    ]
    assert API_KEY not in gw.request_log.read_text()


def test_operations_endpoints(gateway: GatewayFactory) -> None:
    gw = gateway()
    with gw.client(auth=None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
    with gw.client() as client:
        client.post("/api/v1/customers/42/events", json={"name": ""})
    gw.drain()
    with gw.client(auth=None) as client:
        metrics = client.get("/metrics").text
    assert (
        'trackguard_requests_total{route="POST /api/v1/customers/{identifier}/events",'
        'status="400"} 1.0'
    ) in metrics
    assert 'trackguard_findings_total{action="invalid",code="event_name_blank"} 1.0' in metrics
    assert 'trackguard_outbox_rows{state="pending"} 0.0' in metrics


def test_a_client_that_stalls_mid_body_gets_408(gateway: GatewayFactory) -> None:
    gw = gateway()
    gw.server.stop()  # rebuild with a short body timeout, served over plain HTTP
    from trackguard.gateway.build import GatewayOptions, create_gateway
    from trackguard.gateway.config import AuthConfig, Credentials
    from trackguard.http.runner import start_in_thread

    app = create_gateway(
        GatewayOptions(plan=None, db=gw.db, deliver=False),
        AuthConfig(upstream=Credentials(SITE_ID, API_KEY)),
    )
    app.parts.body_timeout = 0.3
    with start_in_thread(app) as server, socket.create_connection(("127.0.0.1", server.port)) as s:
        token = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()
        s.sendall(
            b"PUT /api/v1/customers/42 HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
            + f"authorization: Basic {token}\r\n\r\n".encode()
            + b'{"a": 1'
        )
        s.settimeout(5)
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(
        b'{\n  "meta": {\n    "errors": [\n'
        b'      "request body not received in time"\n    ]\n  }\n}\n'
    )


def test_client_keys_name_their_source(gateway: GatewayFactory, tmp_path: Path) -> None:
    """Each app may have its own key; its traffic is labelled with its source."""
    gw = gateway()
    gw.server.stop()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "upstream: {site_id: up, api_key: up-key}\n"
        "clients:\n"
        "  - {source: storefront, site_id: web, api_key: web-key}\n"
        "  - {source: backend, site_id: srv, api_key: srv-key}\n"
    )
    from trackguard.gateway.build import GatewayOptions, create_gateway
    from trackguard.http.runner import start_in_thread

    app = create_gateway(
        GatewayOptions(
            plan=None,
            db=gw.db,
            deliver=False,
            config=config,
            request_log=tmp_path / "clients.jsonl",
        )
    )
    with start_in_thread(app) as server:
        base = server.url
        ok = httpx.post(
            f"{base}/api/v1/customers/1/events", json={"name": "a"}, auth=("web", "web-key")
        )
        bad = httpx.post(
            f"{base}/api/v1/customers/1/events", json={"name": ""}, auth=("srv", "srv-key")
        )
        upstream_creds = httpx.post(
            f"{base}/api/v1/customers/1/events", json={"name": "a"}, auth=("up", "up-key")
        )
    assert (ok.status_code, bad.status_code, upstream_creds.status_code) == (200, 400, 401)
    lines = [msgspec.json.decode(x) for x in (tmp_path / "clients.jsonl").read_bytes().splitlines()]
    # The 401 is counted and summarised, not written to the request log.
    assert [line.get("source") for line in lines] == ["storefront", "backend"]
    (record,) = _quarantine(gw.db)
    assert record.source == "backend"  # type: ignore[attr-defined]


def test_metrics_count_traffic_by_schema_version(gateway: GatewayFactory) -> None:
    gw = gateway()
    order = {"order_id": "A-1", "total": 5.0, "currency": "USD"}
    v2 = {
        "order_id": "A-2",
        "total_cents": 500,
        "currency": "USD",
        "line_items": [{}],
        "schema_version": "2",
    }
    with gw.client() as client:
        client.post("/api/v1/customers/1/events", json={"name": "order_completed", "data": order})
        client.post("/api/v1/customers/1/events", json={"name": "order_completed", "data": v2})
    with gw.client(auth=None) as client:
        metrics = client.get("/metrics").text
    assert 'trackguard_event_versions_total{event="order_completed",version="2"} 1.0' in metrics
