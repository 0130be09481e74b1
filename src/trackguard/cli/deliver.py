"""``trackguard deliver``: the delivery worker as its own process, beside the gateway."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

import click

from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import Seconds, db_option
from trackguard.cli.store import retention_options
from trackguard.delivery.circuit import CircuitPolicy
from trackguard.delivery.transport import (
    DEFAULT_PIPELINES_UPSTREAM,
    HttpxTransport,
    pipelines_transport,
)
from trackguard.delivery.worker import DeliveryReport, DeliveryWorker
from trackguard.gateway.build import check_region
from trackguard.gateway.config import load_auth
from trackguard.logs import configure_logging
from trackguard.store.retention import Pruner, Retention, alongside
from trackguard.store.sqlite import open_store

#: The shortest delivery lease: a leased batch must outlive the upstream request's timeout
#: (10 s), or a slow answer could see two deliverers send the same rows at the same time.
MIN_LEASE_SECONDS: Final = 15.0


@click.command(name="deliver", cls=TrackguardCommand)
@db_option()
@click.option(
    "--upstream",
    required=True,
    metavar="URL",
    help="Track API host: https://track.customer.io, https://track-eu.customer.io or an emulator.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Most requests per second sent upstream.",
)
@click.option(
    "--pipelines-upstream",
    default=DEFAULT_PIPELINES_UPSTREAM,
    show_default=True,
    metavar="URL",
    help="Pipelines API host (EU: https://cdp-eu.customer.io), used when "
    "TRACKGUARD_CDP_API_KEY is set.",
)
@click.option(
    "--lease-seconds",
    type=Seconds(min=MIN_LEASE_SECONDS),
    default=60.0,
    show_default=True,
    help="How long leased rows stay this deliverer's: after a crash, another deliverer sends"
    f" them once this has passed (at least {MIN_LEASE_SECONDS:g}: above the upstream timeout).",
)
@click.option("--once", is_flag=True, help="Deliver what is due now, then prune, then exit.")
@click.option(
    "--no-circuit",
    is_flag=True,
    help="No circuit breaker: quarantine every row Customer.io refuses at once, even when it"
    " refuses nearly everything (docs/delivery.md).",
)
@retention_options
def deliver_command(
    db: str,
    upstream: str,
    rate: float,
    pipelines_upstream: str,
    lease_seconds: float,
    once: bool,
    no_circuit: bool,
    retention: Retention,
    prune_every: float,
) -> None:
    """Send the outbox to Customer.io: batched, rate-limited, retried, in per-person order.

    Runs until SIGTERM or SIGINT, then finishes the request in flight and exits. Credentials
    come from TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY only (and the Pipelines write key from
    TRACKGUARD_CDP_API_KEY). With --once it exits 1 when
    upstream failed and rows are left to retry.

    Example:

    \b
        export TRACKGUARD_SITE_ID=... TRACKGUARD_API_KEY=...
        trackguard deliver --db trackguard.db --upstream https://track.customer.io
    """
    auth = load_auth(None)
    credentials = auth.upstream
    if auth.pipelines_key is not None:
        check_region(auth.pipelines_key, pipelines_upstream)
    store = open_store(db, create=False, lease_seconds=lease_seconds)
    configure_logging()
    transport = HttpxTransport(upstream, credentials.site_id, credentials.api_key)
    pipelines = (
        None
        if auth.pipelines_key is None
        else pipelines_transport(pipelines_upstream, auth.pipelines_key)
    )
    worker = DeliveryWorker(
        store,
        transport,
        rate=rate,
        circuit=None if no_circuit else CircuitPolicy(),
        pipelines=pipelines,
    )
    pruner = Pruner(store, retention, every=prune_every)
    try:
        if once:
            report = _drain(worker)
            pruner.prune_now()
            stats = store.outbox_stats()
            click.echo(
                f"delivered {report.delivered}, quarantined {report.failed}, "
                f"retried {report.retried}; {stats.pending} pending"
            )
            if report.retry_at is not None:
                raise SystemExit(1)
        else:
            _run_until_signalled(alongside(worker.run, pruner))
    finally:
        transport.close()
        if pipelines is not None:
            pipelines.close()
        store.close()


def _drain(worker: DeliveryWorker) -> DeliveryReport:
    """Rounds until nothing is due or upstream fails; the sum of their reports."""
    total = DeliveryReport()
    while True:
        report = worker.run_once()
        total = DeliveryReport(
            leased=total.leased + report.leased,
            requests=total.requests + report.requests,
            delivered=total.delivered + report.delivered,
            failed=total.failed + report.failed,
            retried=total.retried + report.retried,
            retry_at=report.retry_at,
            last_error=report.last_error or total.last_error,
        )
        if report.leased == 0 or report.retry_at is not None:
            return total


def _run_until_signalled(run: Callable[[threading.Event], None]) -> None:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("trackguard.delivery").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["deliver_command"]
