"""The ``trackguard`` command: a thin click layer over the library.

Its conventions (docs/cli.md): exit 0 when clean, 1 for the findings or failures a command
exists to report, 2 for usage and input errors. Every error is one ``Error: ...`` line on
stderr; a traceback shows only with ``--debug`` or ``TRACKGUARD_DEBUG=1``.
"""

from __future__ import annotations

import click

from trackguard import __version__, compiled
from trackguard.cli.audit import audit_command
from trackguard.cli.backfill import backfill_command
from trackguard.cli.base import DEBUG_ENV, TrackguardGroup
from trackguard.cli.check import check_command, sample_command
from trackguard.cli.console import console_command
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
from trackguard.cli.store import store_group
from trackguard.errors import TrackguardError


@click.group(cls=TrackguardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trackguard")
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG_ENV,
    help="Show the traceback behind an error (also TRACKGUARD_DEBUG=1).",
)
def main(debug: bool) -> None:
    """trackguard: a guard for the data path into Customer.io's Track API.

    Exit status: 0 clean, 1 findings or failures the command reports, 2 usage or input
    errors (one "Error: ..." line on stderr). See docs/cli.md.
    """
    stale = compiled.status().stale
    if stale:  # the extensions would run code the sources no longer say
        raise TrackguardError(
            f"the compiled core is older than its source ({', '.join(stale)}): "
            "run make compiled again, or make pure"
        )


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
main.add_command(store_group)
main.add_command(console_command)
main.add_command(init_command)

__all__ = ["DEBUG_ENV", "TrackguardGroup", "main"]
