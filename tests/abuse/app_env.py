"""A gateway served over plain loopback HTTP for the abuse tests, and small raw-HTTP helpers.

A module of its own (not ``conftest``) so the tests import its names without clashing with
other folders' conftest modules.
"""

from __future__ import annotations

import base64
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.base import QuarantineRecord
from trackguard.store.sqlite import open_store

SITE_ID = "abuse-site"
API_KEY = "abuse-key-0123"
REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "examples" / "d2c-plan.yaml"
BASIC = "Basic " + base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()


@dataclass
class Gw:
    app: Gateway
    server: RunningServer
    db: Path
    request_log: Path | None

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, auth: bool = True, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, auth=(SITE_ID, API_KEY) if auth else None, timeout=10, **kwargs
        )

    def metrics(self, **headers: str) -> dict[str, float]:
        """Every sample of ``/metrics`` as ``name{a="x",b="y"}`` → value (labels sorted)."""
        text = httpx.get(f"{self.url}/metrics", headers=headers, timeout=10).text
        return parse_samples(text)

    def quarantine(self) -> list[QuarantineRecord]:
        store = open_store(self.db)
        try:
            return list(store.quarantine_list(limit=1000))
        finally:
            store.close()


def parse_samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@contextlib.contextmanager
def serve(tmp_path: Path, *, auth: AuthConfig | None = None, **overrides: Any) -> Iterator[Gw]:
    """A gateway without delivery; ``overrides`` are :class:`GatewayOptions` fields."""
    options = GatewayOptions(
        plan=overrides.pop("plan", PLAN),
        db=overrides.pop("db", tmp_path / "tg.db"),
        deliver=False,
        identity_refresh=0,
        **overrides,
    )
    app = create_gateway(options, auth or AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))
    server = start_in_thread(app)
    try:
        yield Gw(app, server, options.db, options.request_log)
    finally:
        server.stop()


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response's head and body (by its ``content-length``) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset), within the socket timeout."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
