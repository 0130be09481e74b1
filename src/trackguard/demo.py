"""The end-to-end demo: official SDK → gateway (TLS) → local Customer.io emulator.

Everything runs on free loopback ports in a temporary directory that is removed afterwards:
an emulator, a gateway with ``examples/d2c-plan.yaml`` (or the plan given), and a D2C store's
traffic sent through the official ``customerio`` Python SDK, including the failure modes teams
ship: cart events keyed sometimes by id and sometimes by email, events with no name,
``Order Completed`` next to ``order_completed``, millisecond timestamps, money as strings, SDK
retries of the same order, an anonymous cart followed by a login, and a few raw requests a
broken client would send. It needs the ``demo`` extra (``customerio``, ``trustme``).
"""

from __future__ import annotations

import os
import random
import shutil
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.store.sqlite import SQLiteStore, open_store

SITE_ID = "demo-site"
API_KEY = "demo-key-not-secret"
#: Seconds between two shoppers' visits; a visit's events are a second or so apart.
VISIT_SPACING = 60


@dataclass
class DemoResult:
    """What the demo sent, what trackguard decided and what reached the emulator."""

    sdk_calls: int = 0
    raw_requests: int = 0
    client_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    quarantine_codes: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    pending: int = 0
    upstream_requests: int = 0
    people: int = 0
    events: Counter[str] = field(default_factory=Counter)
    duplicates_ignored: int = 0
    duplicates_dropped: int = 0


class _Sdk:
    """The official SDK pointed at the gateway; counts calls and client-side errors."""

    def __init__(self, port: int, result: DemoResult) -> None:
        from customerio import CustomerIO  # type: ignore[import-untyped]  # the demo extra

        self.cio = CustomerIO(SITE_ID, API_KEY, host="127.0.0.1", port=port, retries=0)
        self.result = result

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.result.sdk_calls += 1
        try:
            getattr(self.cio, method)(*args, **kwargs)
        except Exception:  # the SDK raises on 4xx: that is part of what the demo shows
            self.result.client_errors += 1


def traffic_start(now: float, customers: int) -> int:
    """When the first visit happens: the last one ends a minute before ``now``, so the traffic is
    recent (no ``event_late``) and never ahead of the clock (no ``event_future``)."""
    return int(now) - customers * VISIT_SPACING


def drive_traffic(
    sdk: Callable[..., None],
    raw: Callable[[str, str, bytes], None],
    customers: int,
    start: int,
    seed: int = 11,
) -> None:
    """A store's last hour of traffic from ``start``, defects included, deterministic for a
    seed."""
    rng = random.Random(seed)
    order = 5000
    for n in range(customers):
        cid, email = f"cus_{n:04d}", f"shopper{n}@example.com"
        t = start + n * VISIT_SPACING
        anon = f"anon-{n:04d}"
        if n % 5 == 0:  # browsing before login, then login links the anonymous cart
            sdk(
                "track_anonymous",
                anon,
                "added_to_cart",
                data={
                    "cart_id": f"cart_{n}",
                    "product_id": "tee",
                    "sku": "SKU-TEE-BLK",
                    "price": 24.0,
                    "quantity": 1,
                },
                timestamp=t,
            )
            sdk("identify", cid, email=email, anonymous_id=anon, first_name="Ana")
        else:
            sdk(
                "identify",
                cid,
                email=email if n % 7 else f"  {email.upper()} ",
                first_name=rng.choice(["Ana", "Bo", "Chen", "Dee"]),
            )
        sdk(
            "track",
            cid,
            "product_viewed",
            data={
                "product_id": "hood",
                "sku": "SKU-HOOD-GRY",
                "name": "Grey hoodie",
                "price": 59.9,
                "currency": "USD",
            },
            timestamp=t + 1,
        )
        cart_key = email if n % 4 == 1 else cid  # the same cart event keyed by email
        cart_name = "cart_updated" if n % 9 else ""  # a release that lost the event name
        sdk(
            "track",
            cart_key,
            cart_name or " ",
            data={"cart_id": f"cart_{n}", "item_count": 2, "subtotal": 119.8, "currency": "USD"},
            timestamp=t + 2,
        )
        if n % 3 == 0:
            continue  # an abandoned cart
        order += 1
        name = "Order Completed" if n % 6 == 2 else "order_completed"
        ts = (t + 3) * 1000 if n % 5 == 2 else t + 3  # milliseconds from one client
        total: Any = "119.80" if n % 4 == 2 else 119.8
        data = {"order_id": f"ORD-{order}", "total": total, "currency": "USD", "item_count": 2}
        if n % 10 == 4:  # the legacy checkout that forgets the order id: quarantined
            del data["order_id"]
        sdk("track", cid, name, data=data, timestamp=ts)
        if n % 8 == 1:  # an SDK retry after a timeout: the same order again
            sdk("track", cid, name, data=data, timestamp=ts)
    raw("POST", "/api/v1/customers/cus_0001/events", b'{"name": "cart_updated", "data": {')
    raw("POST", "/api/v1/customers/cus_0002/events", b'{"name": "cart_updated", "data": "x"}')
    raw("PUT", "/api/v1/customers/cus_0003", b'{"id": "cus_9999", "first_name": "Bo"}')


@contextmanager
def _servers(
    work: Path, plan: Path, clock: Callable[[], float]
) -> Iterator[tuple[RunningServer, Emulator]]:
    import trustme  # the demo extra

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(work / "tls.pem"))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    emulator = create_emulator(SITE_ID, API_KEY, record=work / "emulator.jsonl", clock=clock)
    with (
        closing(emulator),
        start_in_thread(emulator, tls_cert=work / "tls.pem", tls_key=work / "tls.pem") as emu,
    ):
        options = GatewayOptions(
            plan=plan,
            db=work / "trackguard.db",
            upstream=emu.url,
            upstream_ca=str(work / "ca.pem"),
            request_log=work / "requests.jsonl",
            rate=100.0,
        )
        auth = AuthConfig(upstream=Credentials(SITE_ID, API_KEY))
        gateway = create_gateway(options, auth, clock=clock)
        with start_in_thread(gateway, tls_cert=work / "tls.pem", tls_key=work / "tls.pem") as gw:
            yield gw, emulator


def _wait_delivered(db: Path, timeout: float) -> None:
    store = open_store(db)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and store.outbox_stats().pending:
            time.sleep(0.1)
    finally:
        store.close()


def run_demo(
    plan: Path,
    customers: int = 60,
    keep: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> DemoResult:
    """Run the whole demo and return its figures; ``keep`` copies the work files there.

    Every time is read from ``clock`` (the traffic's timestamps, the gateway's checks, delivery
    and the emulator), so the figures are the same whatever day the demo runs.
    """
    result = DemoResult()
    work = Path(tempfile.mkdtemp(prefix="trackguard-demo-"))
    saved_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    try:
        with _servers(work, plan, clock) as (gw, emulator):
            os.environ["REQUESTS_CA_BUNDLE"] = str(work / "ca.pem")
            sdk = _Sdk(gw.port, result)
            with httpx.Client(
                base_url=gw.url,
                verify=ssl.create_default_context(cafile=str(work / "ca.pem")),
                auth=(SITE_ID, API_KEY),
            ) as client:

                def raw(method: str, path: str, body: bytes) -> None:
                    result.raw_requests += 1
                    client.request(
                        method, path, content=body, headers={"content-type": "application/json"}
                    )

                drive_traffic(sdk, raw, customers, traffic_start(clock(), customers))
            _wait_delivered(work / "trackguard.db", timeout=30)
            _collect(result, work, emulator)
        if keep is not None:
            shutil.copytree(work, keep, dirs_exist_ok=True)
    finally:
        if saved_bundle is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved_bundle
        shutil.rmtree(work, ignore_errors=True)
    return result


def _collect(result: DemoResult, work: Path, emulator: Emulator) -> None:
    for line in (work / "requests.jsonl").read_bytes().splitlines():
        entry = msgspec.json.decode(line)
        result.outcomes[entry.get("outcome", "unauthorized")] += 1
        result.codes.update(entry.get("codes", ()))
    store = SQLiteStore(work / "trackguard.db")
    try:
        stats = store.outbox_stats()
        result.delivered, result.pending = stats.delivered, stats.pending
        result.quarantined = store.quarantine_count()
        result.duplicates_dropped = store.duplicate_count()
        for record in store.quarantine_list(limit=100_000):
            result.quarantine_codes.update(record.codes)
    finally:
        store.close()
    counts = emulator.state.counts()
    result.people = counts.get("people", 0)
    result.duplicates_ignored = counts.get("duplicates", 0)
    for event in emulator.state.events_view():
        result.events[str(event.get("name"))] += 1
