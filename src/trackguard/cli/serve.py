"""``trackguard serve``: run the gateway."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from trackguard import compiled
from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import (
    Seconds,
    db_option,
    listen_errors,
    listen_option,
    plan_option,
    resolve,
    tls_options,
    tls_pair,
)
from trackguard.cli.store import retention_options
from trackguard.delivery.transport import DEFAULT_PIPELINES_UPSTREAM
from trackguard.delivery.worker import PIPELINES_RATE
from trackguard.errors import TrackguardError
from trackguard.gateway.app import OPEN_MAX_BODY
from trackguard.gateway.build import DEFAULT_UPSTREAM, GatewayOptions, create_gateway
from trackguard.gateway.guards import OPEN_QUARANTINE_BUDGET
from trackguard.gateway.workers import Serving, serve_workers
from trackguard.http import requestlog
from trackguard.http.limits import ConnectionLimits
from trackguard.http.requestlog import RequestLogPolicy
from trackguard.http.runner import parse_listen, run
from trackguard.http.supervisor import MAX_RESTARTS_PER_MINUTE
from trackguard.logs import configure_logging
from trackguard.store.retention import Retention

F = TypeVar("F", bound=Callable[..., Any])


def _limit(flag: str, help: str) -> Callable[[F], F]:
    """An option for one field of :class:`ConnectionLimits`, with its default."""
    default = getattr(ConnectionLimits, flag[2:].replace("-", "_"))
    kind = click.IntRange(min=1) if isinstance(default, int) else Seconds(0, min_open=True)
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


def _whole_number(flag: str, default: int, text: str) -> Callable[[F], F]:
    """An option taking a whole number >= 0, its default shown in ``--help``."""
    return click.option(
        flag, type=click.IntRange(min=0), default=default, show_default=True, help=text
    )


@click.command(name="serve", cls=TrackguardCommand)
@plan_option(load=False)
@db_option(create=True)
@listen_option("127.0.0.1:8080")
@click.option(
    "--upstream",
    default=DEFAULT_UPSTREAM,
    show_default=True,
    help="Customer.io Track API base URL (or an emulator).",
)
@click.option(
    "--upstream-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle to trust for the upstream (an emulator's self-signed CA).",
)
@tls_options
@click.option("--strict", is_flag=True, help="Answer plan rejections 400 instead of 200.")
@click.option(
    "--request-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append one JSON line per request (read by trackguard audit).",
)
@click.option(
    "--request-log-policy",
    type=click.Choice(requestlog.POLICIES),
    default="best-effort",
    show_default=True,
    help="When the request log cannot write: fail /readyz (fail) or only report it.",
)
@_whole_number(
    "--request-log-max-bytes",
    requestlog.MAX_BYTES,
    "Rotate the request log at this size (0: never).",
)
@_whole_number(
    "--request-log-keep", requestlog.KEEP, "Rotated request-log files kept (FILE.1 is the newest)."
)
@_whole_number(
    "--open-max-body",
    OPEN_MAX_BODY,
    "Body cap in bytes of the routes served without credentials (metrics, unsubscribe).",
)
@_whole_number(
    "--open-quarantine-budget",
    OPEN_QUARANTINE_BUDGET,
    "Quarantine records per minute from the routes served without credentials; "
    "beyond it they are dropped and counted.",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML with upstream credentials and client keys (else TRACKGUARD_* env).",
)
@click.option("--rate", default=100.0, show_default=True, help="Upstream requests per second.")
@click.option(
    "--pipelines-upstream",
    default=DEFAULT_PIPELINES_UPSTREAM,
    show_default=True,
    metavar="URL",
    help="Customer.io Pipelines API base URL (EU: https://cdp-eu.customer.io; or an emulator); "
    "used when TRACKGUARD_CDP_API_KEY is set.",
)
@click.option(
    "--pipelines-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=PIPELINES_RATE,
    show_default=True,
    help="Pipelines API requests per second (Customer.io's soft limit: 3000 per 3 s).",
)
@click.option(
    "--pipelines-origin",
    "pipelines_origins",
    multiple=True,
    metavar="ORIGIN",
    help="A page origin (https://shop.example) whose browsers may post to the Pipelines API; "
    "repeat for more. Default: any origin. Others are refused 403 (docs/pipelines.md).",
)
@click.option(
    "--alerts",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Alert rules and channels (docs/monitoring.md); e.g. examples/alerts.yaml.",
)
@click.option(
    "--synchronous",
    type=click.Choice(["NORMAL", "FULL"]),
    default="NORMAL",
    show_default=True,
    help="NORMAL: acknowledged data survives a process crash; FULL: power loss too (slower).",
)
@click.option(
    "--commit-gap",
    type=Seconds(min=0),
    default=None,
    help="Least seconds from one commit's end to the next's start, so writes arriving "
    "meanwhile share its fsync. Default: 0.002 with --synchronous FULL on SQLite, else 0.",
)
@click.option(
    "--no-deliver", is_flag=True, help="Do not deliver in-process (run trackguard deliver)."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe log lines written to stderr (no level logs credentials or webhook URLs).",
)
@click.option(
    "--identity-refresh",
    type=Seconds(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between reads of identity bindings and orders other gateways on the same "
    "store committed (0: never).",
)
@click.option(
    "--admin-listen",
    help="HOST:PORT of a second, plain-HTTP listener for /healthz, /readyz and /metrics only, "
    "outside --max-connections (the public port keeps answering them too).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes serving the port (one per core); limits apply to each. With more "
    "than 1, /metrics of all of them together is on --admin-listen (docs/operations.md).",
)
@_limit(
    "--max-connections",
    "Open connections on the public port (per worker); more are closed at once.",
)
@_limit("--max-header-bytes", "Request line plus headers; larger is answered 431.")
@_limit("--header-timeout", "Seconds to send a request's headers; slower is answered 408.")
@_limit(
    "--body-gap-timeout", "Seconds a client may pause while sending a body; longer is answered 408."
)
@_limit("--body-timeout", "Seconds to send a whole body after the headers; slower is answered 408.")
@_limit("--keep-alive-timeout", "Seconds an idle keep-alive connection stays open.")
@retention_options
def serve_command(
    plan: Path | None,
    db: str,
    listen: tuple[str, int],
    upstream: str,
    upstream_ca: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    strict: bool,
    request_log: Path | None,
    request_log_policy: RequestLogPolicy,
    request_log_max_bytes: int,
    request_log_keep: int,
    open_max_body: int,
    open_quarantine_budget: int,
    config: Path | None,
    rate: float,
    pipelines_upstream: str,
    pipelines_rate: float,
    pipelines_origins: tuple[str, ...],
    alerts: Path | None,
    synchronous: Literal["NORMAL", "FULL"],
    commit_gap: float | None,
    no_deliver: bool,
    identity_refresh: float,
    log_level: str,
    retention: Retention,
    prune_every: float,
    admin_listen: str | None,
    workers: int,
    max_connections: int,
    max_header_bytes: int,
    header_timeout: float,
    body_gap_timeout: float,
    body_timeout: float,
    keep_alive_timeout: float,
) -> None:
    """Run the gateway: a drop-in Track API endpoint in front of Customer.io.

    Apps keep their official SDK and credentials and change only the host. Upstream
    credentials come from TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY (or --config). With
    TRACKGUARD_CDP_API_KEY (the Pipelines write key) it serves the Pipelines API (/v1/...) too.

    Example:

    \b
        export TRACKGUARD_SITE_ID=... TRACKGUARD_API_KEY=...
        trackguard serve --plan examples/d2c-plan.yaml --listen 0.0.0.0:8443 \\
            --tls-cert cert.pem --tls-key key.pem --request-log requests.jsonl
    """
    host, port = listen
    tls_pair(tls_cert, tls_key)
    resolve(host, port)
    try:
        admin = parse_listen(admin_listen) if admin_listen is not None else None
        limits = ConnectionLimits(
            max_header_bytes=max_header_bytes,
            header_timeout=header_timeout,
            body_gap_timeout=body_gap_timeout,
            body_timeout=body_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_connections=max_connections,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = GatewayOptions(
        plan=plan,
        db=db,
        upstream=upstream,
        upstream_ca=upstream_ca,
        strict=strict,
        deliver=not no_deliver,
        rate=rate,
        pipelines_upstream=pipelines_upstream,
        pipelines_rate=pipelines_rate,
        pipelines_origins=pipelines_origins or None,
        request_log=request_log,
        config=config,
        synchronous=synchronous,
        commit_gap=commit_gap,
        alerts=alerts,
        identity_refresh=identity_refresh,
        retention=retention,
        prune_every=prune_every,
        request_log_policy=request_log_policy,
        request_log_max_bytes=request_log_max_bytes,
        request_log_keep=request_log_keep,
        open_max_body=open_max_body,
        open_quarantine_budget=open_quarantine_budget,
        limits=limits,
    )
    level = getattr(logging, log_level.upper())
    configure_logging(level)
    also = None if admin is None else f"{admin[0]}:{admin[1]} (--admin-listen)"
    build = compiled.status().describe()
    announce = lambda url: click.echo(f"trackguard gateway listening on {url} ({build})", err=True)  # noqa: E731
    if workers > 1:
        serving = Serving(host, port, tls_cert, tls_key, limits, level)
        with listen_errors(host, port, also):
            code = serve_workers(options, serving, workers, admin_listen=admin, ready=announce)
        if code != 0:
            raise TrackguardError(
                f"workers kept dying: more than {MAX_RESTARTS_PER_MINUTE} restarts within a "
                "minute (see the log above)"
            )
        return
    app = create_gateway(options)
    with listen_errors(host, port, also):
        run(
            app,
            host,
            port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            # uvicorn's access log says less than --request-log: only at debug is it wanted.
            log_level=log_level if log_level in ("debug", "error") else "warning",
            ready=announce,
            limits=limits,
            stats=app.parts.connections,
            admin_listen=admin,
        )
