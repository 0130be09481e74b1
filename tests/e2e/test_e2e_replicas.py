"""Two gateway replicas on one SQLite store, over real HTTP on loopback: what one learns (an
email's id, a person's latest order) reaches the other within a refresh interval, and when both
bind one email at the same moment they end up agreeing on the binding the store kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from e2e_env import PLAN

from trackguard.gateway.app import Gateway
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.base import OutboxRow
from trackguard.store.sqlite import SQLiteStore

SITE_ID = "replica-site"
API_KEY = "replica-key-0123"
HANG_GUARD = 30.0  # seconds; only a hung test ever waits this long
REFRESH = 0.05


def _plan(tmp_path: Path, replace: dict[str, str]) -> Path:
    text = PLAN.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@dataclass
class Replica:
    app: Gateway
    server: RunningServer
    log: Path
    client: httpx.Client

    def identify(self, ident: str, **attrs: Any) -> None:
        r = self.client.put(f"/api/v1/customers/{ident}", json=attrs)
        assert r.status_code == 200, r.text

    def track(self, ident: str, name: str, data: dict[str, Any], timestamp: int) -> None:
        body = {"name": name, "data": data, "timestamp": timestamp}
        r = self.client.post(f"/api/v1/customers/{ident}/events", json=body)
        assert r.status_code == 200, r.text

    def codes(self) -> list[list[str]]:
        """Each request's verdict codes (the request log is complete once stopped)."""
        self.server.stop()
        lines = self.log.read_bytes().splitlines()
        return [msgspec.json.decode(line).get("codes", []) for line in lines]


ReplicaFactory = Callable[..., Replica]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[ReplicaFactory]:
    made: list[Replica] = []

    def make(
        name: str, plan: Path, before_start: Callable[[Gateway], None] | None = None
    ) -> Replica:
        log = tmp_path / f"requests-{name}.jsonl"
        options = GatewayOptions(
            plan=plan,
            db=tmp_path / "tg.db",  # one store for every replica
            deliver=False,  # the outbox rows stay as committed, for exact assertions
            request_log=log,
            identity_refresh=REFRESH,
        )
        app = create_gateway(options, AuthConfig(upstream=Credentials(SITE_ID, API_KEY)))
        if before_start is not None:
            before_start(app)
        server = start_in_thread(app)
        client = httpx.Client(base_url=server.url, auth=(SITE_ID, API_KEY), timeout=10)
        replica = Replica(app, server, log, client)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.client.close()
        replica.server.stop()


def _outbox(db: Path) -> list[OutboxRow]:
    store = SQLiteStore(db)
    try:
        return sorted(store.outbox_list(limit=1000), key=lambda r: r.seq)
    finally:
        store.close()


def _identities(db: Path) -> list[tuple[str, str]]:
    store = SQLiteStore(db)
    try:
        return sorted(store.identities())
    finally:
        store.close()


def _v1(row: OutboxRow) -> tuple[str, str, str, dict[str, Any]]:
    v1 = msgspec.json.decode(row.payload)["v1"]
    return row.person, v1["method"], v1["path"], msgspec.json.decode(v1["body"])


def _event(row: OutboxRow) -> tuple[str, str | None, dict[str, Any]]:
    """The row's person, event name and payload item (its derived ULID checked and dropped)."""
    item = msgspec.json.decode(row.payload)["v2"]
    ulid = item.pop("id", None)
    assert ulid is None or (isinstance(ulid, str) and len(ulid) == 26)
    return row.person, row.event_name, item


CART = {"cart_id": "c1", "item_count": 1, "subtotal": 20.0, "currency": "USD"}


def test_an_email_bound_on_one_replica_is_rewritten_on_the_other(
    replicas: ReplicaFactory, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, {"email_keyed: warn": "email_keyed: fix"})
    a = replicas("a", plan)
    b = replicas("b", plan)
    assert b.app.parts.state.id_for_email("ana@example.com") is None
    a.identify("cus_1", email="ana@example.com")  # answered once committed
    _wait_until(
        lambda: b.app.parts.state.id_for_email("ana@example.com") == "cus_1",
        "replica b has read the binding replica a committed",
    )
    now = int(time.time())
    b.track("ana@example.com", "cart_updated", CART, now)
    b.track("bo@example.com", "cart_updated", CART, now + 1)  # nobody bound this one
    assert [_event(r) for r in _outbox(tmp_path / "tg.db")] == [
        (
            "id:cus_1",
            None,
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "cus_1"},
                "attributes": {"email": "ana@example.com"},
            },
        ),
        (
            "id:cus_1",  # rewritten by b to the id a learned: one person, not two
            "cart_updated",
            {
                "type": "person",
                "action": "event",
                "identifiers": {"id": "cus_1"},
                "name": "cart_updated",
                "timestamp": now,
                "attributes": CART,
            },
        ),
        (
            "email:bo@example.com",
            "cart_updated",
            {
                "type": "person",
                "action": "event",
                "identifiers": {"email": "bo@example.com"},
                "name": "cart_updated",
                "timestamp": now + 1,
                "attributes": CART,
            },
        ),
    ]
    assert b.codes() == [["identity_not_canonical"], ["identity_not_canonical"]]
    assert a.codes() == [[]]


def test_replicas_that_bind_one_email_to_two_ids_agree_on_the_one_the_store_kept(
    replicas: ReplicaFactory, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, {"email_keyed: warn": "email_keyed: fix"})
    gate = threading.Event()  # holds replica b's refreshes back until both have bound

    def hold_refreshes(app: Gateway) -> None:
        store = app.parts.store
        read = store.identities_since

        def gated(after: int, limit: int = 10_000) -> list[tuple[int, str, str]]:
            assert gate.wait(HANG_GUARD), "the gate was never opened"
            return read(after, limit)

        store.identities_since = gated  # type: ignore[method-assign]

    a = replicas("a", plan)
    b = replicas("b", plan, before_start=hold_refreshes)
    try:
        a.identify("cus_1", email="ana@example.com")
        b.identify("cus_2", email="ana@example.com")  # b has not heard of a's binding
        # The store kept the first committed binding; b still holds its own, provisionally.
        assert _identities(tmp_path / "tg.db") == [("ana@example.com", "cus_1")]
        assert a.app.parts.state.id_for_email("ana@example.com") == "cus_1"
        assert b.app.parts.state.id_for_email("ana@example.com") == "cus_2"
    finally:
        gate.set()
    _wait_until(
        lambda: b.app.parts.state.id_for_email("ana@example.com") == "cus_1",
        "replica b has taken the store's binding",
    )
    assert b.app.parts.state.id_for_folded("cus_1") == "cus_1"
    assert a.app.parts.state.id_for_email("ana@example.com") == "cus_1"
    now = int(time.time())
    a.track("ana@example.com", "cart_updated", CART, now)
    b.track("ana@example.com", "cart_updated", CART, now + 1)
    carts = [_event(r) for r in _outbox(tmp_path / "tg.db") if r.event_name == "cart_updated"]
    assert [(person, item["identifiers"], item["timestamp"]) for person, _, item in carts] == [
        ("id:cus_1", {"id": "cus_1"}, now),
        ("id:cus_1", {"id": "cus_1"}, now + 1),
    ]
    metrics = b.client.get("/metrics").text
    assert "trackguard_identity_bindings_learned_total 1.0" in metrics
    # One email, and both ids the replicas were sent (the store's and the race's loser).
    assert 'trackguard_identity_state_entries{map="emails"} 1.0' in metrics
    assert 'trackguard_identity_state_entries{map="folded_ids"} 2.0' in metrics
    assert 'trackguard_identity_state_entries{map="orders"} 0.0' in metrics
    assert a.codes() == [[], ["identity_not_canonical"]]
    assert b.codes() == [[], ["identity_not_canonical"]]


def test_an_order_on_one_replica_flags_a_stale_cart_on_the_other(
    replicas: ReplicaFactory, tmp_path: Path
) -> None:
    plan = _plan(
        tmp_path,
        {
            "timestamps:\n": "timeliness:\n  stale_after_purchase: {events: [cart_updated]}\n"
            "timestamps:\n",
        },
    )
    a = replicas("a", plan)
    b = replicas("b", plan)
    now = int(time.time())
    order = {"order_id": "ORD-9", "total": 20.0, "currency": "USD"}
    a.track("cus_3", "order_completed", order, now)
    _wait_until(
        lambda: b.app.parts.state.last_order_at("id:cus_3") == now,
        "replica b has read the order replica a committed",
    )
    b.track("cus_3", "cart_updated", CART, now - 300)  # happened before the order
    b.track("cus_3", "cart_updated", CART, now + 5)  # a new cart after it
    b.track("cus_4", "cart_updated", CART, now - 300)  # someone who never ordered
    assert a.codes() == [[]]
    assert b.codes() == [["stale_after_purchase"], [], []]
