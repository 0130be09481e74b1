"""A store filled by the real gateway and emulator, for the console's tests.

Thirty minutes of a D2C store's traffic go through a gateway (plan, monitor with a rate rule,
delivery to the emulator) on a fake clock, one tick of the monitor per minute. Minutes 20 to
22 are a broken release: its orders send ``orderId`` instead of ``order_id``, so the plan
rejects them and the invalid rate of ``order_completed`` spikes. The traffic also carries the
things a console must show safely: a rejected order whose person id and body hold
``<script>…``, an unplanned event, a drift variant (``Order Completed``) and a body that is not
JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from outbox_wait import drain
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import Emulator, create_emulator
from trackguard.gateway.app import Delivery, Gateway, GatewayParts
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.monitor import build_monitor
from trackguard.plan.loader import load_plan
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import open_store

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "examples" / "d2c-plan.yaml"
SITE_ID, API_KEY = "console-site", "console-key-0123"
T0 = dt.datetime(2026, 11, 4, 12, 0, tzinfo=dt.UTC).timestamp()
MINUTES = 30
BROKEN = range(20, 23)
SHOPPERS = 6
TOKEN = "console-token-0123456789"
XSS = "<script>alert(1)</script>"
XSS_PATH = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
RULES = """\
version: 1
settings:
  evaluate_every: 1m
  health_every: 5m
channels:
  log:
    type: log
rules:
  - name: orders-invalid-rate
    kind: rate
    events: [order_completed]
    outcomes: [invalid, rejected]
    window: 5m
    threshold: 0.2
    resolve: 0.1
    min_volume: 10
    severity: warning
    channels: [log]
"""


#: ``console(**overrides)`` starts a console over a copy of the filled store.
ConsoleFactory = Callable[..., RunningServer]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Filled:
    db: Path
    rules: Path
    upstream: RunningServer
    emulator: Emulator
    end: float
    broken_orders: list[str]
    sent: int

    def events(self, **params: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(
            self.upstream.url + "/_emulator/events", params=params, timeout=10
        ).json()
        return result


def _requests(minute: int) -> Iterator[tuple[str, Any]]:
    for k in range(SHOPPERS):
        person = f"cus_{k}"
        yield (
            f"/api/v1/customers/{person}/events",
            {
                "name": "product_viewed",
                "data": {
                    "product_id": f"P-{k}",
                    "price": 19.9,
                    "currency": "USD",
                    "url": f"https://shop.example/p/{k}?m={minute}",
                },
            },
        )
        yield (
            f"/api/v1/customers/{person}/events",
            {
                "name": "added_to_cart",
                "data": {"cart_id": f"C-{minute}-{k}", "product_id": f"P-{k}", "quantity": 1},
            },
        )
        order: dict[str, Any] = {"total": 49.9, "currency": "USD"}
        key = f"A-{minute}-{k}"
        if minute in BROKEN:
            order["orderId"] = key
        else:
            order["order_id"] = key
        name = "Order Completed" if k == 0 else "order_completed"
        yield f"/api/v1/customers/{person}/events", {"name": name, "data": order}
    yield "/api/v1/customers/cus_0/events", {"name": "wishlist_added", "data": {"m": minute}}
    if minute % 10 == 0:
        # Rejected (no order id): kept with its hostile id and body for the console to show.
        yield (
            f"/api/v1/customers/{XSS_PATH}/events",
            {
                "name": "order_completed",
                "data": {"total": 1, "currency": "USD", "note": XSS},
            },
        )
        yield "/api/v1/customers/cus_2/events", b'{"name": "order_completed", "data": '
        # Customer.io refuses a name over 100 bytes: the raw name is kept and shown.
        yield "/api/v1/customers/cus_3/events", {"name": XSS + "x" * 100, "data": {}}


def fill(folder: Path) -> Iterator[Filled]:
    """Run the traffic; yield while the emulator still serves (the store is closed)."""
    db = folder / "tg.db"
    rules = folder / "alerts.yaml"
    rules.write_text(RULES, encoding="utf-8")
    clock = FakeClock(T0)
    emulator = create_emulator(SITE_ID, API_KEY)
    with start_in_thread(emulator) as upstream:
        store = open_store(db, synchronous="NORMAL")
        committer = GroupCommitter(store, max_delay=0.0)
        metrics = GatewayMetrics()
        transport = HttpxTransport(upstream.url, SITE_ID, API_KEY)
        worker = DeliveryWorker(store, transport, rate=1000.0)
        monitor = build_monitor(
            db, rules, clock=clock, delivery_snapshot=worker.metrics.snapshot, interval=3600
        )
        parts = GatewayParts(
            checker=Checker(load_plan(PLAN)),
            store=store,
            committer=committer,
            auth=AuthConfig(upstream=Credentials(SITE_ID, API_KEY)),
            metrics=metrics,
            delivery=Delivery(worker.run, transport.close),
            monitor=monitor,
        )
        sent = 0
        broken: list[str] = []
        with (
            start_in_thread(Gateway(parts, clock=clock)) as gateway,
            httpx.Client(base_url=gateway.url, auth=(SITE_ID, API_KEY), timeout=10) as client,
        ):
            for minute in range(MINUTES):
                clock.now = T0 + minute * 60 + 5
                for path, body in _requests(minute):
                    if isinstance(body, bytes):
                        client.post(path, content=body)
                    else:
                        client.post(path, json=body)
                        if "orderId" in body.get("data", {}):
                            broken.append(body["data"]["orderId"])
                    sent += 1
                clock.now = T0 + minute * 60 + 59
                monitor.tick()
            drain(db)
            clock.now = T0 + MINUTES * 60
            monitor.tick()
        yield Filled(db, rules, upstream, emulator, clock.now, broken, sent)
