"""HttpxTransport over real loopback HTTP(S): headers, keep-alive, errors; Retry-After parsing."""

from __future__ import annotations

import base64
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from trackguard import __version__
from trackguard.delivery.transport import (
    ConnectFailed,
    HttpxTransport,
    MockTransport,
    TransportError,
    UpstreamRequestRecord,
    UpstreamResponse,
    UpstreamTimeout,
    retry_after_seconds,
)

SITE, KEY = "site-1", "k3y-secret-value"


class Upstream(ThreadingHTTPServer):
    """Records each request; answers 200 ``{}``, or what ``answer`` says, after ``delay``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self.answer: tuple[int, list[tuple[str, str]], bytes] = (200, [], b"{}\n")
        self.delay = 0.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "port": self.client_address[1],
            }
        )
        time.sleep(self.server.delay)
        status, headers, payload = self.server.answer
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(name="upstream")
def _upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: Upstream, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


def test_sends_basic_auth_user_agent_json_and_keeps_the_connection(upstream: Upstream) -> None:
    transport = HttpxTransport(url(upstream), SITE, KEY)
    try:
        first = transport.send("POST", "/api/v2/batch", b'{"batch":[]}')
        second = transport.send("DELETE", "/api/v1/customers/a%2Fb/devices/t%201", None)
    finally:
        transport.close()
    assert (first.status, first.body, first.header("Content-Length")) == (200, b"{}\n", "3")
    assert second.status == 200
    a, b = upstream.seen
    token = base64.b64encode(f"{SITE}:{KEY}".encode()).decode()
    assert (a["method"], a["path"], a["body"]) == ("POST", "/api/v2/batch", b'{"batch":[]}')
    assert a["headers"]["authorization"] == f"Basic {token}"
    assert a["headers"]["user-agent"] == f"trackguard/{__version__}"
    assert a["headers"]["content-type"] == "application/json"
    assert (b["method"], b["path"], b["body"]) == (
        "DELETE",
        "/api/v1/customers/a%2Fb/devices/t%201",
        None,
    )
    assert "content-type" not in b["headers"]  # no body, no content type
    assert a["port"] == b["port"]  # one keep-alive connection


def test_any_status_is_a_response_with_its_headers(upstream: Upstream) -> None:
    upstream.answer = (429, [("Retry-After", "3")], b'{"meta":{"error":"slow down"}}')
    transport = HttpxTransport(url(upstream) + "/", SITE, KEY)
    response = transport.send("PUT", "/api/v1/customers/42", b"{}")
    transport.close()
    assert (response.status, response.header("retry-after"), response.body) == (
        429,
        "3",
        b'{"meta":{"error":"slow down"}}',
    )
    assert upstream.seen[0]["path"] == "/api/v1/customers/42"  # no double slash


def test_timeout_raises_upstream_timeout(upstream: Upstream) -> None:
    upstream.delay = 0.5
    transport = HttpxTransport(url(upstream), SITE, KEY, timeout=0.1)
    with pytest.raises(UpstreamTimeout, match="ReadTimeout on POST /api/v2/batch"):
        transport.send("POST", "/api/v2/batch", b"{}")
    transport.close()


def test_refused_connection_raises_connect_failed() -> None:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there now
    transport = HttpxTransport(f"http://127.0.0.1:{port}", SITE, KEY)
    with pytest.raises(ConnectFailed, match=f"cannot connect to http://127.0.0.1:{port}") as info:
        transport.send("POST", "/api/v2/batch", b"{}")
    transport.close()
    assert isinstance(info.value, TransportError)
    assert KEY not in str(info.value) and KEY not in repr(transport)


def test_tls_with_a_ca_bundle_path(upstream: Upstream, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    upstream.socket = context.wrap_socket(upstream.socket, server_side=True)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    trusted = HttpxTransport(url(upstream, "https"), SITE, KEY, verify=str(bundle))
    assert trusted.send("POST", "/api/v2/batch", b"{}").status == 200
    trusted.close()
    untrusted = HttpxTransport(url(upstream, "https"), SITE, KEY)
    with pytest.raises(ConnectFailed):
        untrusted.send("POST", "/api/v2/batch", b"{}")
    untrusted.close()


def test_mock_transport_hands_the_request_to_its_handler() -> None:
    seen: list[UpstreamRequestRecord] = []

    def handler(request: UpstreamRequestRecord) -> UpstreamResponse:
        seen.append(request)
        return UpstreamResponse(204)

    mock = MockTransport(handler)
    assert mock.send("POST", "/api/v1/forms/f/submit", b"{}") == UpstreamResponse(204, (), b"")
    assert seen == [UpstreamRequestRecord("POST", "/api/v1/forms/f/submit", b"{}")]


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP date
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


@given(value=st.text(max_size=40))
def test_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    result = retry_after_seconds(value, NOW)
    assert result is None or result >= 0.0


@given(seconds=st.integers(0, 10**9))
def test_retry_after_delta_seconds_round_trip(seconds: int) -> None:
    assert retry_after_seconds(str(seconds), NOW) == float(seconds)
