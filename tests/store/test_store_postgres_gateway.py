"""The gateway on a PostgreSQL store, over real HTTP on loopback: two replicas share one
schema (a binding learned on one rewrites the other's requests), a request is answered 503 and
``/readyz`` is not ready while the database is unreachable, and both recover by themselves once
it is back; ``serve`` with an unreachable database is one ``Error:`` line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from click.testing import CliRunner

from trackguard.cli import main as cli
from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.base import OutboxRow, Write
from trackguard.store.postgres import PostgresStore

SITE_ID = "pg-site"
API_KEY = "pg-key-0123"
PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
CART = {"cart_id": "c1", "item_count": 1, "subtotal": 20.0, "currency": "USD"}
HANG_GUARD = 30.0  # seconds; only a hung test ever waits this long


Replica = tuple[Gateway, RunningServer, httpx.Client]


@pytest.fixture
def replicas(pg_schema: tuple[str, str]) -> Iterator[Callable[..., Replica]]:
    url, schema = pg_schema
    made: list[Replica] = []

    def make(plan: Path | None = None) -> Replica:
        options = GatewayOptions(
            plan=plan,
            db=f"{url}?schema={schema}&application_name=tg-{schema}",
            deliver=False,
            identity_refresh=0.05,
        )
        app = create_gateway(options, AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))
        server = start_in_thread(app)
        client = httpx.Client(base_url=server.url, auth=(SITE_ID, API_KEY), timeout=10)
        made.append((app, server, client))
        return app, server, client

    yield make
    for _, server, client in made:
        client.close()
        server.stop()


def store_of(app: Gateway) -> PostgresStore:
    store = app.parts.store
    assert isinstance(store, PostgresStore)
    return store


def test_two_replicas_share_bindings_through_one_schema(
    replicas: Callable[..., Replica], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.read_text().replace("email_keyed: warn", "email_keyed: fix"))
    (a, _, ca), (b, _, cb) = replicas(plan), replicas(plan)
    r = ca.put("/api/v1/customers/cus_1", json={"email": "ana@example.com"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + HANG_GUARD
    while b.parts.state.id_for_email("ana@example.com") != "cus_1":
        assert time.monotonic() < deadline, "b never read the binding a committed"
        time.sleep(0.01)
    body = {"name": "cart_updated", "data": CART, "timestamp": int(time.time())}
    r = cb.post("/api/v1/customers/ana@example.com/events", json=body)
    assert r.status_code == 200, r.text
    rows = sorted(store_of(a).outbox_list(), key=lambda row: row.seq)
    # b rewrote the email to the id a learned: one person, not two.
    assert [(r.seq, r.person, r.event_name) for r in rows] == [
        (1, "id:cus_1", None),
        (2, "id:cus_1", "cart_updated"),
    ]
    assert store_of(b).identities_since(0) == [(1, "ana@example.com", "cus_1")]


def test_an_unreachable_database_is_503_and_not_ready_then_both_recover(
    replicas: Callable[..., Replica],
) -> None:
    app, _, client = replicas()

    def event(url: str) -> dict[str, object]:
        return {"name": "page_viewed", "data": {"url": url}}

    assert client.post("/api/v1/customers/42/events", json=event("/a")).status_code == 200
    assert client.get("/readyz").status_code == 200
    store = store_of(app)
    reachable = store._conninfo
    store._conninfo = "postgresql://postgres@127.0.0.1:1/test"  # the server goes away...
    with psycopg.connect(reachable.split("?")[0], autocommit=True) as admin:  # ...and its links
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"tg-{store.schema}",),
        )
    r = client.post("/api/v1/customers/42/events", json=event("/b"))
    assert r.status_code == 503, r.text
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "store" in msgspec.json.decode(ready.content)["problems"][0]
    store._conninfo = reachable  # the server is back: nothing to restart
    assert client.post("/api/v1/customers/42/events", json=event("/c")).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert [r.person for r in store.outbox_list()] == ["id:42", "id:42"]
    stats = store.outbox_stats()
    assert (stats.pending, store.quarantine_count()) == (2, 0)  # the 503 stored nothing


def test_serve_with_an_unreachable_database_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRACKGUARD_SITE_ID", SITE_ID)
    monkeypatch.setenv("TRACKGUARD_API_KEY", API_KEY)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["serve", "--db", "postgresql://tg:s3cret@127.0.0.1:1/test", "--no-deliver"]
    )
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "Error: postgresql://tg@127.0.0.1:1/test: cannot connect to PostgreSQL: "
    )
    assert "s3cret" not in result.output + result.stderr


def test_outbox_commands_read_a_postgresql_store_and_never_create_one(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    result = CliRunner().invoke(cli, ["outbox", "stats", "--db", target])
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: no store at {target} (trackguard serve creates one)\n",
    )
    store = PostgresStore(target)
    try:
        store.commit([Write(outbox=(OutboxRow(received_at=5.0, person="id:1", payload=b"{}"),))])
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["outbox", "stats", "--db", target, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    stats = msgspec.json.decode(result.stdout)
    assert (stats["pending"], stats["delivered"], stats["failed"]) == (1, 0, 0)


def test_deliver_once_sends_a_postgresql_outbox_to_the_emulator(
    pg_schema: tuple[str, str], emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema = pg_schema
    target = f"{url}?schema={schema}"
    item = {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "cus_9"},
        "name": "page_viewed",
        "timestamp": 1_764_000_000,
    }
    store = PostgresStore(target)
    try:
        rows = tuple(
            OutboxRow(received_at=1.0, person="id:cus_9", payload=msgspec.json.encode({"v2": item}))
            for _ in range(3)
        )
        store.commit([Write(outbox=rows)])
    finally:
        store.close()
    monkeypatch.setenv("TRACKGUARD_SITE_ID", emu.site_id)
    monkeypatch.setenv("TRACKGUARD_API_KEY", emu.api_key)
    result = CliRunner().invoke(cli, ["deliver", "--once", "--db", target, "--upstream", emu.url])
    assert (result.exit_code, result.stdout) == (
        0,
        "delivered 3, quarantined 0, retried 0; 0 pending\n",
    )
    assert [e["name"] for e in emu.events()] == ["page_viewed"] * 3
