"""``trackguard demo``: the whole data path, end to end, on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from trackguard.bundled import EXAMPLE_PLAN
from trackguard.cli.base import TrackguardCommand
from trackguard.core.verdict import OUTCOMES
from trackguard.errors import UsageError


@click.command(name="demo", cls=TrackguardCommand)
@click.option(
    "--plan",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=EXAMPLE_PLAN,
    help="Tracking plan for the gateway [default: the D2C example plan shipped with trackguard].",
)
@click.option("--customers", default=60, show_default=True, help="How many shoppers to simulate.")
@click.option(
    "--keep",
    type=click.Path(path_type=Path, file_okay=False),
    help="Copy the store, request log and emulator record here.",
)
def demo_command(plan: Path, customers: int, keep: Path | None) -> None:
    """Run emulator + gateway on loopback and send a store's traffic through the official SDK.

    Prints what was accepted, fixed, quarantined and delivered, and what the emulator holds.

    Example:

    \b
        trackguard demo --customers 100 --keep demo-out/
    """
    try:
        from trackguard.demo import run_demo
    except ImportError as exc:  # pragma: no cover - depends on the install
        message = f"trackguard demo needs the demo extra: pip install 'trackguard[demo]' ({exc})"
        raise UsageError(message) from None
    console = Console()
    console.print(
        f"[bold]trackguard demo[/]: official customerio SDK → gateway (TLS, plan "
        f"{plan}) → local Customer.io emulator"
    )
    r = run_demo(plan, customers=customers, keep=keep)
    sent = Table(title="What the apps sent", show_edge=False)
    sent.add_column("")
    sent.add_column("count", justify="right")
    sent.add_row("SDK calls", str(r.sdk_calls))
    sent.add_row("raw requests from a broken client", str(r.raw_requests))
    sent.add_row("errors the SDK saw (Customer.io would answer 400)", str(r.client_errors))
    console.print(sent)
    decided = Table(title="What trackguard decided (per request)", show_edge=False)
    decided.add_column("outcome")
    decided.add_column("requests", justify="right")
    for outcome in OUTCOMES:
        decided.add_row(outcome, str(r.outcomes[outcome]))
    console.print(decided)
    codes = Table(title="Findings by code", show_edge=False)
    codes.add_column("code")
    codes.add_column("count", justify="right")
    codes.add_column("quarantined", justify="right")
    for code, count in sorted(r.codes.items(), key=lambda kv: (-kv[1], kv[0])):
        codes.add_row(code, str(count), str(r.quarantine_codes[code]))
    console.print(codes)
    held = Table(title="Delivery and what Customer.io (the emulator) holds", show_edge=False)
    held.add_column("")
    held.add_column("count", justify="right")
    held.add_row("operations delivered", str(r.delivered))
    held.add_row("operations still pending", str(r.pending))
    held.add_row("quarantine records (replayable)", str(r.quarantined))
    held.add_row("people in the emulator", str(r.people))
    for name, count in sorted(r.events.items()):
        held.add_row(f"events {name}", str(count))
    held.add_row("SDK retries answered 2xx and not sent again", str(r.duplicates_dropped))
    held.add_row("duplicates Customer.io (the emulator) had to drop", str(r.duplicates_ignored))
    console.print(held)
    if r.pending:
        console.print("[red]delivery did not finish[/]")
        sys.exit(1)
    console.print("[green]demo finished: every accepted operation was delivered[/]")
