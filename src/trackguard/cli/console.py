"""``trackguard console``: the web console over a store."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from trackguard.cli.base import TrackguardCommand
from trackguard.cli.options import (
    db_option,
    listen_errors,
    listen_option,
    plan_option,
    resolve,
    tls_options,
    tls_pair,
)
from trackguard.errors import ConfigError, UsageError
from trackguard.http.runner import run
from trackguard.monitor import load_alerts
from trackguard.plan.model import Plan
from trackguard.store.urls import store_location


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(name="console", cls=TrackguardCommand)
@db_option()
@plan_option()
@click.option(
    "--alerts",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Alert rules, to draw their thresholds and show their state.",
)
@listen_option("127.0.0.1:8090")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the login token (needed off loopback and for --allow-replay).",
)
@click.option(
    "--allow-replay", is_flag=True, help="Allow replaying quarantined records (needs a token)."
)
@tls_options
def console_command(
    db: str,
    plan: Plan | None,
    alerts: Path | None,
    listen: tuple[str, int],
    token_file: Path | None,
    allow_replay: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve the web console over a store: overview, quarantine, replay, plan, delivery.

    --db is a SQLite file or a PostgreSQL URL (postgresql://user@host/db?schema=NAME).
    Read-only unless --allow-replay. It binds to loopback by default; any other address
    needs --token-file, and so does --allow-replay. Every asset is served from the package:
    the console works with no internet access.

    Example:

    \b
        trackguard console --db trackguard.db --plan examples/d2c-plan.yaml
    """
    try:
        from trackguard.console import Console, ConsoleConfig
        from trackguard.console.auth import read_token
    except ImportError:
        raise ConfigError(
            "the console needs its extra: pip install 'trackguard[console]'"
        ) from None
    host, port = listen
    store = store_location(db)
    if not _loopback(host) and token_file is None:
        raise UsageError(
            f"--listen {host}:{port} is not loopback: give --token-file so the console asks"
            " for a login"
        )
    if allow_replay and token_file is None:
        raise UsageError("--allow-replay needs --token-file (replay needs a login)")
    if allow_replay and plan is None:
        raise UsageError("--allow-replay needs --plan (replay re-checks under it)")
    tls_pair(tls_cert, tls_key)
    resolve(host, port)
    token = read_token(token_file) if token_file is not None else None
    rules = load_alerts(alerts, env=os.environ) if alerts is not None else None
    app = Console(
        ConsoleConfig(
            store=store,
            plan=plan,
            alerts=rules,
            token=token,
            allow_replay=allow_replay,
            secure=tls_cert is not None,
        )
    )
    with listen_errors(host, port):
        run(
            app,
            host,
            port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            ready=lambda url: click.echo(f"trackguard console on {url}", err=True),
        )
