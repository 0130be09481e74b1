"""Whole-system test environment: the official SDK → gateway (TLS) → emulator, over loopback.

A module of its own (not ``conftest``) so the tests can import its names without clashing
with other folders' conftest modules; ``conftest.py`` registers its fixtures.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from customerio import CustomerIO

from outbox_wait import drain
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread

SITE_ID = "e2e-site"
API_KEY = "e2e-key-0123"
REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "examples" / "d2c-plan.yaml"


@dataclass(frozen=True)
class Tls:
    ca: Path
    pem: Path  # key and certificate chain in one file


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("e2e-tls")
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return Tls(folder / "ca.pem", folder / "server.pem")


@dataclass
class Upstream:
    emulator: Emulator
    server: RunningServer

    def get(self, path: str, **params: str) -> Any:
        return httpx.get(self.server.url + path, params=params, timeout=10).json()

    def events(self, **filters: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/_emulator/events", **filters)
        return result

    def person(self, identifier: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.server.url}/_emulator/people/{identifier}", timeout=10)
        return response.json() if response.status_code == 200 else None


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    emulator = create_emulator(SITE_ID, API_KEY)
    with start_in_thread(emulator) as server:
        yield Upstream(emulator, server)


@dataclass
class Gw:
    server: RunningServer
    db: Path
    request_log: Path
    tls: Tls
    clients: list[CustomerIO]

    @property
    def url(self) -> str:
        return self.server.url

    def sdk(self) -> CustomerIO:
        cio = CustomerIO(SITE_ID, API_KEY, host="127.0.0.1", port=self.server.port, retries=0)
        self.clients.append(cio)  # closed at teardown: requests keeps a pooled session
        return cio

    def client(self, auth: tuple[str, str] | None = (SITE_ID, API_KEY)) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.tls.ca))
        return httpx.Client(base_url=self.url, verify=verify, auth=auth, timeout=10)

    def drain(self, timeout: float = 15.0) -> None:
        """Wait until delivery has settled every outbox row."""
        drain(self.db, timeout)


GatewayFactory = Callable[..., Gw]


@pytest.fixture
def gateway(
    tmp_path: Path, tls: Tls, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GatewayFactory]:
    # The SDK speaks HTTPS only and uses requests: trust the test CA the way users would.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca))
    running: list[RunningServer] = []

    def make(**overrides: Any) -> Gw:
        options = GatewayOptions(
            plan=overrides.pop("plan", PLAN),
            db=tmp_path / "tg.db",
            upstream=upstream.server.url,
            request_log=tmp_path / "requests.jsonl",
            **overrides,
        )
        app = create_gateway(options, AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))
        server = start_in_thread(app, tls_cert=tls.pem, tls_key=tls.pem)
        running.append(server)
        gw = Gw(server, options.db, tmp_path / "requests.jsonl", tls, [])
        made.append(gw)
        return gw

    made: list[Gw] = []
    yield make
    for gw in made:
        for cio in gw.clients:
            cio.http.close()
    for server in running:
        server.stop()
