"""The ``trackguard`` command: a thin click layer over the library."""

from __future__ import annotations

import click

from trackguard import __version__
from trackguard.cli.audit import audit_command
from trackguard.cli.backfill import backfill_command
from trackguard.cli.check import check_command, sample_command
from trackguard.cli.deliver import deliver_command
from trackguard.cli.demo import demo_command
from trackguard.cli.emulate import emulate_command
from trackguard.cli.identity import identity_group
from trackguard.cli.init import init_command
from trackguard.cli.monitor import alerts_group, health_command, stats_command
from trackguard.cli.outbox import outbox_group
from trackguard.cli.plan import plan_group
from trackguard.cli.quarantine import quarantine_group
from trackguard.cli.replay import replay_command
from trackguard.cli.serve import serve_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trackguard")
def main() -> None:
    """trackguard: a guard for the data path into Customer.io's Track API."""


main.add_command(check_command)
main.add_command(sample_command)
main.add_command(plan_group)
main.add_command(serve_command)
main.add_command(deliver_command)
main.add_command(outbox_group)
main.add_command(identity_group)
main.add_command(quarantine_group)
main.add_command(replay_command)
main.add_command(backfill_command)
main.add_command(stats_command)
main.add_command(health_command)
main.add_command(alerts_group)
main.add_command(emulate_command)
main.add_command(audit_command)
main.add_command(demo_command)
main.add_command(init_command)

__all__ = ["main"]
