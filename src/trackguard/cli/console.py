"""``trackguard console``: the web console over a store."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from trackguard.cli.common import plan_or_exit
from trackguard.http.runner import parse_listen, run
from trackguard.monitor import RuleError, load_alerts


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(name="console")
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("trackguard.db"),
    show_default=True,
    help="SQLite store file a gateway writes.",
)
@click.option("--plan", type=click.Path(path_type=Path, dir_okay=False), help="Tracking plan YAML.")
@click.option(
    "--alerts",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Alert rules, to draw their thresholds and show their state.",
)
@click.option("--listen", default="127.0.0.1:8090", show_default=True, help="HOST:PORT.")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the login token (needed off loopback and for --allow-replay).",
)
@click.option(
    "--allow-replay", is_flag=True, help="Allow replaying quarantined records (needs a token)."
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key.")
def console_command(
    db: Path,
    plan: Path | None,
    alerts: Path | None,
    listen: str,
    token_file: Path | None,
    allow_replay: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the web console over a store: overview, quarantine, replay, plan, delivery.

    Read-only unless --allow-replay. It binds to loopback by default; any other address needs
    --token-file, and so does --allow-replay. Every asset is served from the package: the
    console works with no internet access.

    Example:

        trackguard console --db trackguard.db --plan examples/d2c-plan.yaml
    """
    try:
        from trackguard.console import Console, ConsoleConfig, ConsoleError
        from trackguard.console.auth import read_token
    except ImportError:
        raise click.ClickException(
            "the console needs its extra: pip install 'trackguard[console]'"
        ) from None
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    if not db.exists():
        raise click.ClickException(f"{db}: no such store (trackguard serve creates one)")
    if not _loopback(host) and token_file is None:
        raise click.ClickException(
            f"--listen {listen} is not loopback: give --token-file so the console asks for a login"
        )
    if allow_replay and token_file is None:
        raise click.ClickException("--allow-replay needs --token-file (replay needs a login)")
    if allow_replay and plan is None:
        raise click.ClickException("--allow-replay needs --plan (replay re-checks under it)")
    try:
        token = read_token(token_file) if token_file is not None else None
    except ConsoleError as exc:
        raise click.ClickException(str(exc)) from None
    loaded_plan = plan_or_exit(plan) if plan is not None else None
    try:
        rules = load_alerts(alerts, env=os.environ) if alerts is not None else None
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    app = Console(
        ConsoleConfig(
            store=os.fspath(db),
            plan=loaded_plan,
            alerts=rules,
            token=token,
            allow_replay=allow_replay,
            secure=tls_cert is not None,
        )
    )

    def ready(url: str) -> None:
        click.echo(f"trackguard console on {url}", err=True)

    run(app, host, port, tls_cert=tls_cert, tls_key=tls_key, ready=ready)
