"""Assembling a gateway from options: plan, store, credentials, delivery, request log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.gateway.app import Delivery, Gateway, GatewayParts
from trackguard.gateway.config import AuthConfig, ConfigError, load_auth
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http.limits import ConnectionLimits, ConnectionStats
from trackguard.http.requestlog import RequestLog
from trackguard.monitor import build_monitor, load_alerts
from trackguard.plan.loader import load_plan
from trackguard.plan.model import DedupePolicy
from trackguard.store.group import GroupCommitter
from trackguard.store.sqlite import Synchronous, open_store
from trackguard.store.view import GatewayState

DEFAULT_UPSTREAM = "https://track.customer.io"


@dataclass(frozen=True)
class GatewayOptions:
    """Everything ``trackguard serve`` can be told (secrets come from ``auth``, never flags)."""

    plan: Path | None = None
    db: Path = Path("trackguard.db")
    upstream: str = DEFAULT_UPSTREAM
    upstream_ca: str | None = None
    strict: bool = False
    deliver: bool = True
    rate: float = 100.0
    request_log: Path | None = None
    config: Path | None = None
    #: How long a commit waits for more writes when idle; 0 commits at once, and batches still
    #: form by themselves under load (writes queue while the previous commit runs).
    commit_delay: float = 0.0
    #: NORMAL: a 2xx survives a crash of the process (kill -9) but not of the machine; FULL
    #: also survives power loss, at one fsync per group commit (docs/store.md).
    synchronous: Synchronous = "NORMAL"
    #: Alert rules (``docs/monitoring.md``); without them counters are still kept.
    alerts: Path | None = None
    #: Seconds between reads of the identity bindings and latest orders other writers (gateway
    #: replicas on the same store, identity imports) committed; 0 turns it off.
    identity_refresh: float = 1.0
    #: Header, body, keep-alive and connection limits of the server (docs/gateway.md, Limits).
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


def create_gateway(options: GatewayOptions, auth: AuthConfig | None = None) -> Gateway:
    """A ready-to-serve gateway (the ASGI lifespan starts its committer and delivery)."""
    if not options.identity_refresh >= 0:
        raise ConfigError(
            f"identity_refresh must be a number of seconds >= 0, not {options.identity_refresh!r}"
        )
    auth = auth if auth is not None else load_auth(options.config)
    plan = load_plan(options.plan) if options.plan is not None else None
    alerts = load_alerts(options.alerts) if options.alerts is not None else None  # fail early
    store = open_store(options.db, synchronous=options.synchronous)
    committer = GroupCommitter(store, max_delay=options.commit_delay)
    metrics = GatewayMetrics()
    delivery: Delivery | None = None
    worker: DeliveryWorker | None = None
    if options.deliver:
        transport = HttpxTransport(
            options.upstream,
            auth.upstream.site_id,
            auth.upstream.api_key,
            verify=options.upstream_ca if options.upstream_ca else True,
        )
        worker = DeliveryWorker(store, transport, rate=options.rate)
        delivery = Delivery(worker.run, transport.close)
    snapshot = lambda: worker.metrics.snapshot() if worker else None  # noqa: E731
    monitor = build_monitor(options.db, None, delivery_snapshot=snapshot, config=alerts)
    metrics.bind_store(store.outbox_stats, committer, snapshot)
    metrics.registry.register(monitor.collector())
    state = GatewayState.load(store)
    metrics.bind_state(state)
    connections = ConnectionStats()
    metrics.registry.register(connections.collector())
    parts = GatewayParts(
        checker=Checker(plan, strict=options.strict),
        store=store,
        committer=committer,
        auth=auth,
        metrics=metrics,
        delivery=delivery,
        request_log=RequestLog(options.request_log) if options.request_log else None,
        upstream_url=options.upstream,
        monitor=monitor,
        dedupe=plan.dedupe if plan is not None else DedupePolicy(),
        state=state,
        identity_refresh=options.identity_refresh,
        # The server's body limits answer first and count the trip; this is the backstop
        # under a server without them.
        body_timeout=options.limits.body_gap_timeout + 2 * options.limits.sweep_interval,
        connections=connections,
    )
    return Gateway(parts)
