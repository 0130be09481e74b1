"""A gateway over plain loopback HTTP in front of the shared emulator, for the data abuse tests.

A module of its own (not ``conftest``) so the tests import it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from outbox_wait import drain
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "examples" / "d2c-plan.yaml"


@dataclass
class Gateway:
    server: RunningServer
    db: Path
    client: httpx.Client
    metrics: Callable[[], bytes]

    def track(self, person: str, name: str, data: dict[str, Any], ts: int) -> httpx.Response:
        body = {"name": name, "data": data, "timestamp": ts}
        return self.client.post(f"/api/v1/customers/{person}/events", json=body)

    def drain(self, timeout: float = 15.0) -> None:
        """Wait until delivery has settled every outbox row."""
        drain(self.db, timeout)


def serve(
    tmp_path: Path, upstream: str, auth: tuple[str, str], **overrides: Any
) -> Iterator[Gateway]:
    """A running gateway (plan: examples/d2c-plan.yaml) until the generator is closed."""
    options = GatewayOptions(
        plan=overrides.pop("plan", PLAN), db=tmp_path / "tg.db", upstream=upstream, **overrides
    )
    app = create_gateway(options, AuthConfig(upstream=Credentials(*auth)))
    with (
        start_in_thread(app) as server,
        httpx.Client(base_url=server.url, auth=auth, timeout=10) as client,
    ):
        yield Gateway(server, options.db, client, app.parts.metrics.render)
