"""Assembling a gateway from options: plan, store, credentials, delivery, request log."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import (
    DEFAULT_PIPELINES_UPSTREAM,
    HttpxTransport,
    Transport,
    pipelines_transport,
)
from trackguard.delivery.worker import PIPELINES_RATE, DeliveryWorker
from trackguard.gateway.app import OPEN_MAX_BODY, Delivery, Gateway, GatewayParts
from trackguard.gateway.config import AuthConfig, ConfigError, load_auth
from trackguard.gateway.cors import OriginError, normalize_origin
from trackguard.gateway.guards import OPEN_QUARANTINE_BUDGET
from trackguard.gateway.labels import EventLabels
from trackguard.gateway.metrics import GatewayMetrics
from trackguard.http import requestlog
from trackguard.http.limits import ConnectionLimits, ConnectionStats
from trackguard.http.requestlog import RequestLog, RequestLogPolicy
from trackguard.monitor import build_monitor, load_alerts
from trackguard.monitor.leader import leadership_for
from trackguard.plan.loader import load_plan
from trackguard.plan.model import DedupePolicy
from trackguard.store.base import Store
from trackguard.store.group import GroupCommitter
from trackguard.store.retention import DEFAULT_PRUNE_EVERY, Pruner, Retention, alongside
from trackguard.store.sqlite import SQLiteStore, Synchronous, open_store
from trackguard.store.view import GatewayState

DEFAULT_UPSTREAM = "https://track.customer.io"


@dataclass(frozen=True)
class GatewayOptions:
    """Everything ``trackguard serve`` can be told (secrets come from ``auth``, never flags)."""

    plan: Path | None = None
    #: A SQLite path, ``sqlite:///path`` or ``postgresql://…`` (``open_store``).
    db: Path | str = Path("trackguard.db")
    upstream: str = DEFAULT_UPSTREAM
    upstream_ca: str | None = None
    strict: bool = False
    deliver: bool = True
    rate: float = 100.0
    #: Customer.io's Pipelines API (EU: ``https://cdp-eu.customer.io``), used when
    #: ``TRACKGUARD_CDP_API_KEY`` is set; its own requests per second.
    pipelines_upstream: str = DEFAULT_PIPELINES_UPSTREAM
    pipelines_rate: float = PIPELINES_RATE
    #: Page origins whose browsers may use the Pipelines door (None: any origin).
    pipelines_origins: tuple[str, ...] | None = None
    request_log: Path | None = None
    config: Path | None = None
    #: How long a commit waits for more writes when idle; 0 commits at once, and batches still
    #: form by themselves under load (writes queue while the previous commit runs).
    commit_delay: float = 0.0
    #: The least time between the end of one commit and the start of the next, so writes that
    #: arrive meanwhile share its fsync (``GroupCommitter.min_gap``). None: 2 ms on a SQLite
    #: store with FULL, which fsyncs every commit, else 0 (docs/store.md#group-commit).
    commit_gap: float | None = None
    #: NORMAL: a 2xx survives a crash of the process (kill -9) but not of the machine; FULL
    #: also survives power loss, at one fsync per group commit (docs/store.md).
    synchronous: Synchronous = "NORMAL"
    #: Alert rules (``docs/monitoring.md``); without them counters are still kept.
    alerts: Path | None = None
    #: Seconds between reads of the identity bindings and latest orders other writers (gateway
    #: replicas on the same store, identity imports) committed; 0 turns it off.
    identity_refresh: float = 1.0
    #: How long finished outbox rows and anonymous activity are kept; applied every
    #: ``prune_every`` seconds beside in-process delivery (docs/store.md#retention).
    retention: Retention = field(default_factory=lambda: Retention(monitor=None))
    prune_every: float = DEFAULT_PRUNE_EVERY
    #: A failing request log fails ``/readyz`` (``fail``) or is only reported (``best-effort``).
    request_log_policy: RequestLogPolicy = "best-effort"
    #: Rotate the request log at this size (0: never) and keep this many rotated files.
    request_log_max_bytes: int = requestlog.MAX_BYTES
    request_log_keep: int = requestlog.KEEP
    #: Body cap of the routes served without credentials, and the quarantine records they may
    #: add per minute (beyond it they are dropped, counted and summarised in the log).
    open_max_body: int = OPEN_MAX_BODY
    open_quarantine_budget: int = OPEN_QUARANTINE_BUDGET
    #: Header, body, keep-alive and connection limits of the server (docs/gateway.md, Limits).
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    #: Whether this process runs the monitor's store-wide duties (data health, its pruning,
    #: alert evaluation); ``serve --workers`` gives them to one worker (docs/operations.md).
    singletons: bool = True


def _check(options: GatewayOptions) -> None:
    if not options.identity_refresh >= 0:
        raise ConfigError(
            f"identity_refresh must be a number of seconds >= 0, not {options.identity_refresh!r}"
        )
    for name in ("request_log_max_bytes", "request_log_keep", "open_quarantine_budget"):
        if getattr(options, name) < 0:
            raise ConfigError(f"{name} must be >= 0, not {getattr(options, name)!r}")
    if options.commit_gap is not None and not options.commit_gap >= 0:
        raise ConfigError(f"commit_gap must be >= 0 seconds, not {options.commit_gap!r}")
    if not options.pipelines_rate > 0:
        raise ConfigError(f"pipelines_rate must be > 0, not {options.pipelines_rate!r}")
    if options.open_max_body < 0:
        raise ConfigError(f"open_max_body must be >= 0, not {options.open_max_body!r}")
    for origin in options.pipelines_origins or ():
        try:
            normalize_origin(origin)
        except OriginError as exc:
            raise ConfigError(f"--pipelines-origin: {exc}") from None
    if options.request_log_policy not in requestlog.POLICIES:
        raise ConfigError(
            f"request_log_policy must be one of {', '.join(requestlog.POLICIES)}, "
            f"not {options.request_log_policy!r}"
        )


#: Customer.io's Pipelines hosts by region; a key sent to the other region is answered 200 and
#: its data dropped, so a key whose prefix names a region must go to that region's host.
PIPELINES_HOSTS: Final = {"us": "cdp.customer.io", "eu": "cdp-eu.customer.io"}


def check_region(write_key: str, upstream: str) -> None:
    """Refuse an ``sk_eu_``/``pk_eu_`` key with the US host, or a ``_us_`` key with the EU host
    (other keys and other hosts, an emulator's, are not judged)."""
    host = urlsplit(upstream).hostname or ""
    region = write_key[3:5] if write_key[:3] in ("sk_", "pk_") and write_key[5:6] == "_" else ""
    other = {"us": "eu", "eu": "us"}.get(region)
    if other is not None and host == PIPELINES_HOSTS[other]:
        raise ConfigError(
            f"TRACKGUARD_CDP_API_KEY is a {region.upper()} key but --pipelines-upstream is "
            f"Customer.io's {other.upper()} host: use https://{PIPELINES_HOSTS[region]}"
        )


def _close_all(*transports: Transport | None) -> None:
    for transport in transports:
        if transport is not None:
            transport.close()


def _open_request_log(options: GatewayOptions) -> RequestLog | None:
    if options.request_log is None:
        return None
    try:
        return RequestLog(
            options.request_log,
            max_bytes=options.request_log_max_bytes,
            keep=options.request_log_keep,
        )
    except OSError as exc:
        raise ConfigError(
            f"{options.request_log}: cannot open the request log: {exc.strerror or exc}"
        ) from None


#: ``commit_gap`` by default where every commit fsyncs (docs/store.md#group-commit).
FULL_COMMIT_GAP: Final = 0.002


def commit_gap(options: GatewayOptions, store: Store) -> float:
    """The gap between commits: ``options.commit_gap``, else :data:`FULL_COMMIT_GAP` on a
    SQLite store with ``synchronous=FULL`` and 0 otherwise (a NORMAL commit does not fsync, and
    a PostgreSQL server shares its WAL flushes itself)."""
    if options.commit_gap is not None:
        return options.commit_gap
    full = isinstance(store, SQLiteStore) and store.synchronous == "FULL"
    return FULL_COMMIT_GAP if full else 0.0


def create_gateway(
    options: GatewayOptions,
    auth: AuthConfig | None = None,
    clock: Callable[[], float] = time.time,
) -> Gateway:
    """A ready-to-serve gateway (the ASGI lifespan starts its committer and delivery);
    ``clock`` (Unix seconds) is what the checks, delivery and the monitor read as now."""
    _check(options)
    auth = auth if auth is not None else load_auth(options.config)
    if auth.pipelines_key is not None:
        check_region(auth.pipelines_key, options.pipelines_upstream)
    plan = load_plan(options.plan) if options.plan is not None else None
    alerts = load_alerts(options.alerts) if options.alerts is not None else None  # fail early
    request_log = _open_request_log(options)
    store = open_store(options.db, synchronous=options.synchronous)
    committer = GroupCommitter(
        store, max_delay=options.commit_delay, min_gap=commit_gap(options, store)
    )
    metrics = GatewayMetrics(EventLabels(plan))
    delivery: Delivery | None = None
    worker: DeliveryWorker | None = None
    if options.deliver:
        verify = options.upstream_ca if options.upstream_ca else True
        transport = HttpxTransport(
            options.upstream, auth.upstream.site_id, auth.upstream.api_key, verify=verify
        )
        pipelines: Transport | None = None
        if auth.pipelines_key is not None:
            pipelines = pipelines_transport(
                options.pipelines_upstream, auth.pipelines_key, verify=verify
            )
        worker = DeliveryWorker(
            store,
            transport,
            rate=options.rate,
            clock=clock,
            pipelines=pipelines,
            pipelines_rate=options.pipelines_rate,
        )
        run: Callable[[threading.Event], None] = worker.run
        pruner = Pruner(store, options.retention, every=options.prune_every)
        run = alongside(worker.run, pruner)
        metrics.registry.register(pruner.collector())
        delivery = Delivery(run, functools.partial(_close_all, transport, pipelines))
    snapshot = lambda: worker.metrics.snapshot() if worker else None  # noqa: E731
    # The monitor's tables live in the store's database; every gateway adds its counts there.
    monitor = build_monitor(
        options.db,
        None,
        clock=clock,
        delivery_snapshot=snapshot,
        config=alerts,
        counts_only=not options.singletons,
    )
    # Several gateways on one PostgreSQL store: one evaluates the alert rules at a time.
    monitor.leader = leadership_for(store) if alerts is not None else None
    metrics.bind_store(store.outbox_stats, committer, snapshot)
    metrics.bind_events(monitor.collector())
    state = GatewayState.load(store)
    metrics.bind_state(state)
    if request_log is not None:
        metrics.bind_request_log(request_log)
        log = request_log
        monitor.watch_request_log(lambda: (log.dropped, log.error))
    connections = ConnectionStats()
    metrics.registry.register(connections.collector())
    parts = GatewayParts(
        checker=Checker(plan, strict=options.strict),
        store=store,
        committer=committer,
        auth=auth,
        metrics=metrics,
        delivery=delivery,
        request_log=request_log,
        request_log_policy=options.request_log_policy,
        open_max_body=options.open_max_body,
        open_quarantine_budget=options.open_quarantine_budget,
        metrics_token=auth.metrics_token,
        upstream_url=options.upstream,
        monitor=monitor,
        dedupe=plan.dedupe if plan is not None else DedupePolicy(),
        state=state,
        identity_refresh=options.identity_refresh,
        # The server's body limits answer first and count the trip; this is the backstop
        # under a server without them.
        body_timeout=options.limits.body_gap_timeout + 2 * options.limits.sweep_interval,
        connections=connections,
        pipelines_origins=options.pipelines_origins,
    )
    return Gateway(parts, clock)
