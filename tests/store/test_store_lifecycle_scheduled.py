"""The running processes prune on a schedule: the gateway beside in-process delivery, and
``trackguard deliver`` (the serve flags: tests/cli/test_cli_serve.py), on a SQLite file and on
a PostgreSQL schema."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from trackguard.cli.deliver import deliver_command
from trackguard.emulator.app import create_emulator
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import start_in_thread
from trackguard.store.base import OutboxRow, Write
from trackguard.store.sqlite import open_store

SITE, KEY = "retention-site", "retention-key"
DAY = 86_400.0
PAYLOAD = b'{"v2":{"type":"person","action":"identify","identifiers":{"id":"1"}}}'


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's ``--db``: a SQLite file, or a PostgreSQL URL with a schema of its own."""
    if request.param == "sqlite":
        return str(tmp_path / "tg.db")
    url, schema = request.getfixturevalue("pg_schema")
    return f"{url}?schema={schema}"


def _aged(db: str, now: float) -> None:
    """Two rows delivered 8 days ago, one delivered just now."""
    store = open_store(db)
    try:
        rows = tuple(
            OutboxRow(received_at=now - 8 * DAY, person=f"p{i}", payload=PAYLOAD) for i in range(3)
        )
        store.commit([Write(outbox=rows)])
        store.mark_delivered([1, 2], now=now - 8 * DAY)
        store.mark_delivered([3], now=now)
    finally:
        store.close()


def _seqs(db: str) -> list[int]:
    store = open_store(db, readonly=True)
    try:
        return [r.seq for r in store.outbox_list()]
    finally:
        store.close()


def test_a_running_gateway_prunes_beside_delivery(db: str) -> None:
    _aged(db, time.time())
    emulator = create_emulator(SITE, KEY)
    with start_in_thread(emulator) as upstream:
        options = GatewayOptions(db=db, upstream=upstream.url, prune_every=3600.0)
        app = create_gateway(options, AuthConfig(upstream=Credentials(SITE, KEY)))
        with start_in_thread(app) as server:
            deadline = time.monotonic() + 10  # the first prune runs as delivery starts
            while _seqs(db) != [3] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _seqs(db) == [3]
            metrics = httpx.get(server.url + "/metrics", timeout=10).text
    emulator.close()
    assert 'trackguard_store_pruned_rows_total{table="outbox"} 2.0' in metrics
    assert "trackguard_store_prune_failures_total 0.0" in metrics


def test_deliver_once_prunes_after_delivering(db: str) -> None:
    _aged(db, time.time())
    emulator = create_emulator(SITE, KEY)
    env = {"TRACKGUARD_SITE_ID": SITE, "TRACKGUARD_API_KEY": KEY}
    with start_in_thread(emulator) as upstream:
        args = ["--db", db, "--upstream", upstream.url, "--once"]
        kept = CliRunner().invoke(deliver_command, [*args, "--outbox-retention", "9d"], env=env)
        assert (kept.exit_code, _seqs(db)) == (0, [3, 2, 1])
        result = CliRunner().invoke(deliver_command, args, env=env)
    emulator.close()
    assert (result.exit_code, result.output) == (
        0,
        "delivered 0, quarantined 0, retried 0; 0 pending\n",
    )
    assert _seqs(db) == [3]
