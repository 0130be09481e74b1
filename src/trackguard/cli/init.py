"""``trackguard init DIR``: a starter tracking plan, alert rules and config file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trackguard.bundled import STARTER_FILES


@click.command(name="init")
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_command(directory: Path, force: bool) -> None:
    """Write a starter plan.yaml, alerts.yaml and trackguard.yaml into DIRECTORY (default: here).

    The plan is the D2C store's example plan (docs/plan.md), the alert rules watch its checkout
    and revenue events (docs/monitoring.md), the config file holds credentials only. Existing
    files are left alone unless --force is given.

    Example:

    \b
        trackguard init guard/ && trackguard plan lint guard/plan.yaml
    """
    if directory.exists() and not directory.is_dir():
        click.echo(f"Error: {directory} is not a directory", err=True)
        sys.exit(2)
    targets = {directory / name: source for name, source in STARTER_FILES.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        click.echo(
            f"Error: {', '.join(existing)} already exist{'s' if len(existing) == 1 else ''};"
            " nothing written (use --force to overwrite)",
            err=True,
        )
        sys.exit(2)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, source in targets.items():
            path.write_bytes(source.read_bytes())
    except OSError as exc:
        click.echo(f"Error: {exc.filename or directory}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    for path in targets:
        click.echo(f"wrote {path}")
    plan, alerts, config = (directory / name for name in STARTER_FILES)
    click.echo(
        "next: edit the plan, set TRACKGUARD_SITE_ID and TRACKGUARD_API_KEY (and the alert\n"
        "channels' SLACK_WEBHOOK_URL and PAGERDUTY_ROUTING_KEY), then\n"
        f"  trackguard serve --plan {plan} --alerts {alerts} --config {config}"
    )
