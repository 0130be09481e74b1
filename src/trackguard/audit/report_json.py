"""The JSON report for CI: the :class:`AuditReport` encoded as is, plus the fail decision."""

from __future__ import annotations

import msgspec

from trackguard.audit.model import AuditReport

SCHEMA_VERSION = 1


def render_json(report: AuditReport, *, fail_on: str | None = None) -> bytes:
    """Indented JSON; ``failed`` says whether ``--fail-on`` would exit 1."""
    document = {
        "schema": SCHEMA_VERSION,
        "worst_severity": report.worst(),
        "fail_on": fail_on,
        "failed": report.fails(fail_on) if fail_on is not None else False,
        "report": report,
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"
