"""Shared fixtures: emulators served over real loopback HTTP(S), and TLS material for them.

One plain-HTTP and one TLS emulator serve the whole session (starting uvicorn costs ~50 ms);
``emu`` and ``emu_tls`` reset the workspace, log and faults before every test, so tests stay
independent. The TLS server's certificate comes from a throwaway ``trustme`` CA.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, settings

from trackguard import compiled
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.http.runner import RunningServer, start_in_thread

# Property tests check behaviour, never speed (benchmarks under bench/ do that): hypothesis's
# default 200 ms deadline and its too-slow health check only time the machine, and on a loaded
# 2-core CI runner they failed tests whose every assertion held.
settings.register_profile("trackguard", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("trackguard")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled core older than its source: the tests would pass or fail on
    code the sources no longer say (``make compiled`` again, or ``make pure``)."""
    stale = compiled.status().stale
    if stale:
        raise pytest.UsageError(f"the compiled core is older than its source: {', '.join(stale)}")


SITE_ID = "emu-site"
API_KEY = "emu-key-5ecret"


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@dataclass
class Emu:
    """A running emulator and a client that authenticates to it."""

    emulator: Emulator
    server: RunningServer
    client: httpx.Client
    context: ssl.SSLContext
    site_id: str = SITE_ID
    api_key: str = API_KEY

    @property
    def url(self) -> str:
        return self.server.url

    def person(self, identifier: str) -> Any:
        response = self.client.get(f"/_emulator/people/{identifier}")
        return response.json() if response.status_code == 200 else None

    def raw(self, **kwargs: Any) -> httpx.Client:
        """Another client to this emulator (no credentials unless given)."""
        return httpx.Client(base_url=self.url, verify=self.context, timeout=10, **kwargs)

    def people(self) -> Any:
        return self.client.get("/_emulator/people").json()

    def events(self, **filters: str) -> Any:
        return self.client.get("/_emulator/events", params=filters).json()

    def stats(self) -> Any:
        return self.client.get("/_emulator/stats").json()

    def failures(self) -> Any:
        return self.client.get("/_emulator/activity").json()["failures"]


@pytest.fixture(scope="session")
def emulator_auth() -> tuple[str, str]:
    """The shared emulators' (site id, API key)."""
    return SITE_ID, API_KEY


@pytest.fixture(scope="session")
def tls_context(tls_files: TLSFiles) -> ssl.SSLContext:
    return tls_files.context()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    files = TLSFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.private_key_pem.write_to_path(str(files.key))
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(files.cert), append=i > 0)
    return files


@pytest.fixture(scope="session")
def emu_session() -> Iterator[tuple[Emulator, RunningServer]]:
    emulator = create_emulator(SITE_ID, API_KEY)
    with start_in_thread(emulator) as server:
        yield emulator, server
    emulator.close()


@pytest.fixture(scope="session")
def emu_tls_session(tls_files: TLSFiles) -> Iterator[tuple[Emulator, RunningServer]]:
    emulator = create_emulator(SITE_ID, API_KEY)
    with start_in_thread(emulator, tls_cert=tls_files.cert, tls_key=tls_files.key) as server:
        yield emulator, server
    emulator.close()


def _fresh(emulator: Emulator) -> None:
    emulator.reset()
    emulator.faults.set(FaultConfig())


@pytest.fixture(scope="session")
def plain_context() -> ssl.SSLContext:
    """One client SSL context for plain-HTTP clients: httpx builds a slow one per client."""
    return ssl.create_default_context()


@pytest.fixture
def emu(
    emu_session: tuple[Emulator, RunningServer], plain_context: ssl.SSLContext
) -> Iterator[Emu]:
    emulator, server = emu_session
    _fresh(emulator)
    with httpx.Client(
        base_url=server.url, auth=(SITE_ID, API_KEY), verify=plain_context, timeout=10
    ) as client:
        yield Emu(emulator, server, client, plain_context)
    _fresh(emulator)


@pytest.fixture
def emu_tls(
    emu_tls_session: tuple[Emulator, RunningServer], tls_context: ssl.SSLContext
) -> Iterator[Emu]:
    emulator, server = emu_tls_session
    _fresh(emulator)
    with httpx.Client(
        base_url=server.url, auth=(SITE_ID, API_KEY), verify=tls_context, timeout=10
    ) as client:
        yield Emu(emulator, server, client, tls_context)
    _fresh(emulator)
