"""``trackguard serve``: run the gateway."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Literal

import click

from trackguard.cli.common import configure_logging
from trackguard.gateway.build import DEFAULT_UPSTREAM, GatewayOptions, create_gateway
from trackguard.gateway.config import ConfigError
from trackguard.http.runner import parse_listen, run
from trackguard.monitor import RuleError
from trackguard.plan.loader import PlanError
from trackguard.store.base import StoreError


@click.command(name="serve")
@click.option("--plan", type=click.Path(path_type=Path, dir_okay=False), help="Tracking plan YAML.")
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("trackguard.db"),
    show_default=True,
    help="SQLite store file.",
)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT.")
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
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key.")
@click.option("--strict", is_flag=True, help="Answer plan rejections 400 instead of 200.")
@click.option(
    "--request-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append one JSON line per request (read by trackguard audit).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML with upstream credentials and client keys (else TRACKGUARD_* env).",
)
@click.option("--rate", default=100.0, show_default=True, help="Upstream requests per second.")
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
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between reads of identity bindings and orders other gateways on the same "
    "store committed (0: never).",
)
def serve_command(
    plan: Path | None,
    db: Path,
    listen: str,
    upstream: str,
    upstream_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    strict: bool,
    request_log: Path | None,
    config: Path | None,
    rate: float,
    alerts: Path | None,
    synchronous: Literal["NORMAL", "FULL"],
    no_deliver: bool,
    identity_refresh: float,
    log_level: str,
) -> None:
    """Run the gateway: a drop-in Track API endpoint in front of Customer.io.

    Apps keep their official SDK and credentials and change only the host. Upstream
    credentials come from TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY (or --config).

    Example:

    \b
        export TRACKGUARD_SITE_ID=... TRACKGUARD_API_KEY=...
        trackguard serve --plan examples/d2c-plan.yaml --listen 0.0.0.0:8443 \\
            --tls-cert cert.pem --tls-key key.pem --request-log requests.jsonl
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        host, port = parse_listen(listen)
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
        request_log=request_log,
        config=config,
        synchronous=synchronous,
        alerts=alerts,
        identity_refresh=identity_refresh,
    )
    try:
        app = create_gateway(options)
    except (ConfigError, PlanError, StoreError, RuleError) as exc:
        click.echo(f"trackguard serve: {exc}", err=True)
        sys.exit(2)
    configure_logging(getattr(logging, log_level.upper()))
    run(
        app,
        host,
        port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        # uvicorn's access log says less than --request-log: only at debug is it wanted.
        log_level=log_level if log_level in ("debug", "error") else "warning",
        ready=lambda url: click.echo(f"trackguard gateway listening on {url}", err=True),
    )
