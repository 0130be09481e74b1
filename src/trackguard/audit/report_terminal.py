"""The terminal summary (rich): totals, findings by severity, drift clusters, censuses."""

from __future__ import annotations

from typing import Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trackguard.audit.model import AuditReport, DriftCluster

_STYLE: Final = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan"}
MAX_FINDINGS: Final = 40


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _evidence(c: DriftCluster, name: str) -> str:
    return next((m.evidence for m in c.matches if m.name == name), "")


def render_terminal(report: AuditReport, console: Console) -> None:
    """Print the audit summary on ``console``."""
    t = report.totals
    plan = f"plan {report.plan}" if report.plan else "contract only"
    console.print(
        Text("trackguard audit", style="bold")
        + Text(
            f" ({plan}): {t.records} records in {len(report.inputs)} file(s), "
            f"{t.bytes / 1e6:.1f} MB in {t.seconds:.1f} s"
        )
    )
    console.print(
        f"{t.requests} requests checked{t.pipelines_note}, {t.unreadable} unreadable, "
        f"{t.skipped} skipped (not Customer.io's APIs), {t.blank} blank; {t.events} events"
    )
    outcomes = ", ".join(f"{k} {v}" for k, v in report.outcomes.items())
    statuses = ", ".join(f"{k}: {v}" for k, v in report.statuses.items())
    console.print(Text(f"verdicts: {outcomes}"))
    console.print(Text(f"log statuses: {statuses}"))
    if report.findings:
        table = Table(title="Findings", show_edge=False)
        table.add_column("severity")
        table.add_column("finding")
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        table.add_column("example")
        for f in report.findings[:MAX_FINDINGS]:
            style = _STYLE[f.severity]
            example = f"{f.examples[0].where}: {f.examples[0].detail}" if f.examples else ""
            table.add_row(
                Text(f.severity, style=style),
                Text(f.title),
                str(f.count),
                f"{_pct(f.share)} of {f.of}",
                Text(example),
            )
        console.print(table)
        if len(report.findings) > MAX_FINDINGS:
            console.print(f"... and {len(report.findings) - MAX_FINDINGS} more (see --json)")
    else:
        console.print("[green]No findings.[/]")
    if report.drift:
        drift = Table(title="Naming drift", show_edge=False)
        drift.add_column("suggested name")
        drift.add_column("variants (events)")
        drift.add_column("possible (evidence)")
        for c in report.drift:
            firm, possible = [], []
            for v in c.variants:
                confidence = c.confidence_of(v.name)
                if confidence == "possible":
                    possible.append(f"{v.name} ({v.count}): {_evidence(c, v.name)}")
                elif confidence == "strong":
                    firm.append(f"{v.name} ({v.count}, strong: {_evidence(c, v.name)})")
                else:
                    firm.append(f"{v.name} ({v.count})")
            drift.add_row(Text(c.canonical), Text(", ".join(firm)), Text("; ".join(possible)))
        console.print(drift)
    if report.timestamps:
        stamps = ", ".join(f"{k} {v}" for k, v in report.timestamps.items())
        recency = ", ".join(f"{k} {v}" for k, v in report.recency.items())
        console.print(Text(f"timestamps: {stamps}; recency: {recency}"))
    if report.identifiers:
        kinds = ", ".join(f"{k} {v}" for k, v in report.identifiers.items())
        console.print(Text(f"identifiers: {kinds}"))
    for note in report.caps:
        console.print(Text("limit reached: ", style="yellow") + Text(note))
