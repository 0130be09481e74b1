"""What the official SDKs really send is accepted.

Two halves. First, the wire quirks of the reference's §8 (Go's ``"data": null`` and string
``last_used``, Python/Ruby flat device attributes, bodiless DELETE/suppress, millisecond
timestamps, numeric ``anonymous_id``, Ruby's integer ``id``, non-ULID event ids, screen events
without ``anonymous_id``) written by hand. Second, the real ``customerio`` Python SDK from PyPI
drives a local HTTPS server over loopback; every request it makes is captured and must pass
``evaluate()`` with status 200. A guard that rejected official SDK traffic would break the
apps it protects.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import trustme
from customerio import CustomerIO  # type: ignore[import-untyped]

from trackguard.contract import Identifier, Request, evaluate, render

U1 = Identifier("id", "u1")
ULID = "01HZY3J5G1W8Q8XKJ6Z9YF7N2M"

# --- §8 quirks, by hand -------------------------------------------------------------------------

# (method, path, raw body, content of the one operation: (type, action, identifier, body))
QUIRKS: list[tuple[str, str, bytes, tuple[str, str, Identifier | None, Any]]] = [
    # Go: track with nil data sends "data": null.
    ("POST", "/api/v1/customers/u1/events", b'{"name":"signed_up","data":null}',
     ("person", "event", U1, {"name": "signed_up", "data": None})),
    # Python/Ruby: device attributes flattened into "device".
    ("PUT", "/api/v1/customers/u1/devices",
     b'{"device":{"app_version":"1.2","push_enabled":"true","last_used":1700000000,'
     b'"id":"tok","platform":"ios"}}',
     ("person", "add_device", U1, {"device": {"app_version": "1.2", "push_enabled": "true",
                                              "last_used": 1700000000, "id": "tok",
                                              "platform": "ios"}})),
    # Go: last_used as a string, custom keys nested under attributes.
    ("PUT", "/api/v1/customers/u1/devices",
     b'{"device":{"id":"tok","platform":"android","last_used":"1700000000",'
     b'"attributes":{"app_version":"1.2"}}}',
     ("person", "add_device", U1, {"device": {"id": "tok", "platform": "android",
                                              "last_used": "1700000000",
                                              "attributes": {"app_version": "1.2"}}})),
    # Python: DELETE with "{}"; Ruby/Go/Node: DELETE with no body.
    ("DELETE", "/api/v1/customers/u1", b"{}", ("person", "delete", U1, {})),
    ("DELETE", "/api/v1/customers/u1", b"", ("person", "delete", U1, None)),
    ("DELETE", "/api/v1/customers/u1/devices/tok", b"{}", ("person", "delete_device", U1, {})),
    ("DELETE", "/api/v1/customers/u1/devices/tok", b"", ("person", "delete_device", U1, None)),
    # Ruby/Go: suppress and unsuppress with no body and no content type.
    ("POST", "/api/v1/customers/u1/suppress", b"", ("person", "suppress", U1, None)),
    ("POST", "/api/v1/customers/u1/unsuppress", b"", ("person", "unsuppress", U1, None)),
    ("POST", "/api/v1/customers/u1/suppress", b"{}", ("person", "suppress", U1, {})),
    # A body Customer.io ignores is ignored, even when it is not JSON.
    ("DELETE", "/api/v1/customers/u1", b"not json", ("person", "delete", U1, None)),
    # Python SDK test: numeric anonymous_id.
    ("POST", "/api/v1/events", b'{"name":"viewed","data":{},"anonymous_id":123}',
     ("person", "anonymous_event", Identifier("anonymous_id", "123"),
      {"name": "viewed", "data": {}, "anonymous_id": 123})),
    # Ruby README: integer id in the identify body.
    ("PUT", "/api/v1/customers/5", b'{"id":5,"name":"Bob"}',
     ("person", "identify", Identifier("id", "5"), {"id": 5, "name": "Bob"})),
    # Go: screen events to the identified endpoint without anonymous_id.
    ("POST", "/api/v1/customers/u1/events", b'{"name":"Home","type":"screen"}',
     ("person", "screen", U1, {"name": "Home", "type": "screen"})),
    # Node: anonymous invite (no anonymous_id, data.recipient).
    ("POST", "/api/v1/events", b'{"name":"invite","data":{"recipient":"f@example.com"}}',
     ("person", "anonymous_event", None, {"name": "invite",
                                          "data": {"recipient": "f@example.com"}})),
    # Ruby: push metrics without the /api/v1 prefix.
    ("POST", "/push/events",
     b'{"delivery_id":"d1","event":"opened","device_id":"tok","timestamp":1700000000}',
     ("metric", "push_metric", None, {"delivery_id": "d1", "event": "opened",
                                      "device_id": "tok", "timestamp": 1700000000})),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "expected"), QUIRKS)
def test_sdk_quirks_are_accepted(
    method: str, path: str, body: bytes, expected: tuple[str, str, Identifier | None, Any]
) -> None:
    result = evaluate(Request(method=method, path=path, body=body))
    assert (result.status, result.errors, result.warnings) == (200, (), ())
    assert render(result) == (200, b"{}\n")
    (op,) = result.operations
    assert (op.type, op.action, op.identifier, op.body) == expected


@pytest.mark.parametrize(
    "timestamp", [1_700_000_000_000, 1_700_000_000_000_000, 1_700_000_000_000_000_000]
)
@pytest.mark.parametrize("path", ["/api/v1/customers/u1/events", "/api/v1/events"])
def test_subsecond_integer_timestamps_are_accepted(path: str, timestamp: int) -> None:
    """Customer.io has no timestamp error: only a timestamp warning may be recorded."""
    body = json.dumps({"name": "x", "timestamp": timestamp}).encode()
    result = evaluate(Request(method="POST", path=path, body=body))
    assert (result.status, result.errors) == (200, ())
    assert all(w.field == "timestamp" for w in result.warnings)
    assert result.operations[0].body == {"name": "x", "timestamp": timestamp}


def test_non_ulid_event_id_is_only_a_warning() -> None:
    body = b'{"name":"x","id":"segment-message-id-1"}'
    result = evaluate(Request(method="POST", path="/api/v1/customers/u1/events", body=body))
    assert (result.status, result.errors) == (200, ())
    assert [(w.code, w.field, w.message) for w in result.warnings] == [
        ("event_id_not_ulid", "id", "event id is not a ULID: Customer.io may not deduplicate on it")
    ]
    ulid = evaluate(
        Request(
            method="POST", path="/api/v1/events", body=b'{"name":"x","id":"%s"}' % ULID.encode()
        )
    )
    assert (ulid.status, ulid.warnings) == (200, ())


# --- the real Python SDK over loopback HTTPS ----------------------------------------------------

Captured = tuple[str, str, bytes, dict[str, str]]


class _CaptureHandler(BaseHTTPRequestHandler):
    """Records each request and answers like Customer.io: 200 ``{}``."""

    captured: list[Captured]

    def _capture(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).captured.append((self.command, self.path, body, headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_PUT = do_POST = do_DELETE = _capture

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CustomerIO, list[Captured]]]:
    ca = trustme.CA()
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    captured: list[Captured] = []
    handler = type("Handler", (_CaptureHandler,), {"captured": captured})
    server = HTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    cio = CustomerIO("site-1", "key-1", host="127.0.0.1", port=server.server_address[1], retries=0)
    cio.http.verify = str(ca_path)
    cio.http.trust_env = False  # loopback only: never an environment proxy
    try:
        yield cio, captured
    finally:
        cio.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# (SDK call, method, path, JSON body sent, operations: (type, action, identifier), warnings)
SdkCall = Callable[[CustomerIO], object]
SDK_CALLS: list[tuple[str, SdkCall, str, str, Any, list[tuple[str, str, Identifier | None]],
                      list[str]]] = [
    ("identify", lambda c: c.identify("u1", email="u1@example.com", plan="pro",
                                      created_at=datetime(2025, 11, 24, tzinfo=UTC)),
     "PUT", "/api/v1/customers/u1",
     {"email": "u1@example.com", "plan": "pro", "created_at": 1763942400},
     [("person", "identify", U1)], []),
    ("identify-email", lambda c: c.identify("bob@example.com", first_name="Bob"),
     "PUT", "/api/v1/customers/bob%40example.com", {"first_name": "Bob"},
     [("person", "identify", Identifier("email", "bob@example.com"))], []),
    ("identify-encoded", lambda c: c.identify("team a/b", n=1),
     "PUT", "/api/v1/customers/team%20a%2Fb", {"n": 1},
     [("person", "identify", Identifier("id", "team a/b"))], []),
    ("identify-int", lambda c: c.identify(5, name="Bob"),
     "PUT", "/api/v1/customers/5", {"name": "Bob"},
     [("person", "identify", Identifier("id", "5"))], []),
    ("identify-cio", lambda c: c.identify("cio_03000001", email="new@example.com"),
     "PUT", "/api/v1/customers/cio_03000001", {"email": "new@example.com"},
     [("person", "identify", Identifier("cio_id", "03000001"))], []),
    ("track", lambda c: c.track("u1", "order_completed", {"total": 49.9, "items": [{"sku": "a"}]},
                                id=ULID, timestamp=1_700_000_000),
     "POST", "/api/v1/customers/u1/events",
     {"name": "order_completed", "data": {"total": 49.9, "items": [{"sku": "a"}]}, "id": ULID,
      "timestamp": 1_700_000_000},
     [("person", "event", U1)], []),
    ("track-nan", lambda c: c.track("u1", "scored", {"score": float("nan")}),
     "POST", "/api/v1/customers/u1/events", {"name": "scored", "data": {"score": None}},
     [("person", "event", U1)], []),
    ("track-datetime", lambda c: c.track(
        "u1", "x", timestamp=datetime(2025, 11, 24, 9, 30, tzinfo=timezone(timedelta(hours=2)))),
     "POST", "/api/v1/customers/u1/events", {"name": "x", "data": {}, "timestamp": 1763969400},
     [("person", "event", U1)], []),
    ("track-ms", lambda c: c.track("u1", "x", timestamp=1_700_000_000_123),
     "POST", "/api/v1/customers/u1/events",
     {"name": "x", "data": {}, "timestamp": 1_700_000_000_123},
     [("person", "event", U1)], []),
    ("track-bad-timestamp", lambda c: c.track("u1", "x", timestamp="yesterday"),
     "POST", "/api/v1/customers/u1/events", {"name": "x", "data": {}},
     [("person", "event", U1)], []),
    ("track-non-ulid", lambda c: c.track("u1", "x", id="evt-1"),
     "POST", "/api/v1/customers/u1/events", {"name": "x", "data": {}, "id": "evt-1"},
     [("person", "event", U1)], ["event_id_not_ulid"]),
    ("track_anonymous", lambda c: c.track_anonymous("anon-1", "page_viewed", {"path": "/"}),
     "POST", "/api/v1/events",
     {"name": "page_viewed", "data": {"path": "/"}, "anonymous_id": "anon-1"},
     [("person", "anonymous_event", Identifier("anonymous_id", "anon-1"))], []),
    ("track_anonymous-int", lambda c: c.track_anonymous(123, "x"),
     "POST", "/api/v1/events", {"name": "x", "data": {}, "anonymous_id": 123},
     [("person", "anonymous_event", Identifier("anonymous_id", "123"))], []),
    ("track_anonymous-invite", lambda c: c.track_anonymous(
        "", "invite", {"recipient": "friend@example.com"}),
     "POST", "/api/v1/events", {"name": "invite", "data": {"recipient": "friend@example.com"}},
     [("person", "anonymous_event", None)], []),
    ("pageview", lambda c: c.pageview("u1", "https://example.com/pricing",
                                      referrer="https://google.com"),
     "POST", "/api/v1/customers/u1/events",
     {"type": "page", "name": "https://example.com/pricing",
      "data": {"referrer": "https://google.com"}},
     [("person", "page", U1)], []),
    ("backfill", lambda c: c.backfill("u1", "signed_up", 1_700_000_000, plan="pro"),
     "POST", "/api/v1/customers/u1/events",
     {"name": "signed_up", "data": {"plan": "pro"}, "timestamp": 1_700_000_000},
     [("person", "event", U1)], []),
    ("backfill-datetime", lambda c: c.backfill("u1", "signed_up",
                                               datetime(2025, 11, 24, tzinfo=UTC)),
     "POST", "/api/v1/customers/u1/events",
     {"name": "signed_up", "data": {}, "timestamp": 1763942400},
     [("person", "event", U1)], []),
    ("delete", lambda c: c.delete("u1"), "DELETE", "/api/v1/customers/u1", {},
     [("person", "delete", U1)], []),
    ("add_device", lambda c: c.add_device("u1", "tok-1", "ios", last_used=1_700_000_000,
                                          app_version="1.2.3", push_enabled="true"),
     "PUT", "/api/v1/customers/u1/devices",
     {"device": {"last_used": 1_700_000_000, "app_version": "1.2.3", "push_enabled": "true",
                 "id": "tok-1", "platform": "ios"}},
     [("person", "add_device", U1)], []),
    ("add_device-minimal", lambda c: c.add_device("u1", "tok-2", "android"),
     "PUT", "/api/v1/customers/u1/devices", {"device": {"id": "tok-2", "platform": "android"}},
     [("person", "add_device", U1)], []),
    ("delete_device", lambda c: c.delete_device("u1", "tok/1"),
     "DELETE", "/api/v1/customers/u1/devices/tok%2F1", {},
     [("person", "delete_device", U1)], []),
    ("suppress", lambda c: c.suppress("u1"), "POST", "/api/v1/customers/u1/suppress", {},
     [("person", "suppress", U1)], []),
    ("unsuppress", lambda c: c.unsuppress("u1"), "POST", "/api/v1/customers/u1/unsuppress", {},
     [("person", "unsuppress", U1)], []),
    ("merge_customers", lambda c: c.merge_customers("id", "u1", "email", "old@example.com"),
     "POST", "/api/v1/merge_customers",
     {"primary": {"id": "u1"}, "secondary": {"email": "old@example.com"}},
     [("person", "merge", None)], []),
    ("merge_customers-cio", lambda c: c.merge_customers("cio_id", "a3000001", "id", "u2"),
     "POST", "/api/v1/merge_customers",
     {"primary": {"cio_id": "a3000001"}, "secondary": {"id": "u2"}},
     [("person", "merge", None)], []),
]  # fmt: skip

BATCH_OPS: list[dict[str, Any]] = [
    {"type": "person", "action": "identify", "identifiers": {"id": "u1"},
     "attributes": {"plan": "pro", "joined": datetime(2025, 11, 24, tzinfo=UTC)}},
    {"type": "person", "action": "event", "identifiers": {"email": "a@example.com"},
     "name": "order_completed", "id": ULID, "attributes": {"total": 10}},
    {"type": "person", "action": "add_device", "identifiers": {"id": "u1"},
     "device": {"token": "tok", "platform": "ios"}},
    {"type": "object", "action": "identify",
     "identifiers": {"object_type_id": "1", "object_id": "acme"}, "attributes": {"name": "Acme"},
     "cio_relationships": [{"identifiers": {"id": "u1"}}]},
    {"type": "delivery", "action": "event", "identifiers": {"id": "dlv1"}, "name": "opened",
     "attributes": {"device_token": "tok"}},
    {"type": "person", "action": "merge", "primary": {"id": "u1"},
     "secondary": {"email": "old@example.com"}},
]  # fmt: skip

SDK_CALLS.append(
    (
        "batch",
        lambda c: c.batch(BATCH_OPS),
        "POST",
        "/api/v2/batch",
        {
            "batch": [
                {**BATCH_OPS[0], "attributes": {"plan": "pro", "joined": 1763942400}},
                *BATCH_OPS[1:],
            ]
        },
        [
            ("person", "identify", U1),
            ("person", "event", Identifier("email", "a@example.com")),
            ("person", "add_device", U1),
            ("object", "identify", Identifier("object", "1:acme")),
            ("delivery", "event", Identifier("delivery", "dlv1")),
            ("person", "merge", None),
        ],
        [],
    )
)


def test_every_track_client_method_is_driven() -> None:
    names = {case[0].split("-")[0] for case in SDK_CALLS}
    assert names == {
        "identify",
        "track",
        "track_anonymous",
        "pageview",
        "backfill",
        "delete",
        "add_device",
        "delete_device",
        "suppress",
        "unsuppress",
        "merge_customers",
        "batch",
    }


@pytest.mark.parametrize(
    ("sdk_call", "method", "path", "sent", "ops", "warnings"),
    [case[1:] for case in SDK_CALLS],
    ids=[case[0] for case in SDK_CALLS],
)
def test_official_python_sdk_requests_are_accepted(
    sdk: tuple[CustomerIO, list[Captured]],
    sdk_call: SdkCall,
    method: str,
    path: str,
    sent: Any,
    ops: list[tuple[str, str, Identifier | None]],
    warnings: list[str],
) -> None:
    cio, captured = sdk
    captured.clear()
    sdk_call(cio)
    assert len(captured) == 1
    got_method, got_path, body, headers = captured[0]
    assert (got_method, got_path) == (method, path)
    assert json.loads(body) == sent
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic c2l0ZS0xOmtleS0x"  # site-1:key-1
    assert headers["user-agent"].startswith("Customer.io Python Client/")

    request = Request(method=got_method, path=got_path, body=body, headers=tuple(headers.items()))
    result = evaluate(request)
    assert (result.status, result.errors) == (200, ())
    assert render(result) == (200, b"{}\n")
    assert [(op.type, op.action, op.identifier) for op in result.operations] == ops
    assert [w.code for w in result.warnings] == warnings
    assert [op.body for op in result.operations] == (
        sent["batch"] if path == "/api/v2/batch" else [sent]
    )
