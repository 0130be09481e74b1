"""From a Verdict to what the store commits: outbox rows and quarantine records.

Pure: the gateway, replay and backfill all turn verdicts into writes here, so a rejected request
is kept the same way whichever door it came through. Contract errors keep the whole request;
plan rejections keep the request (v1) or the rejected item (v2 batch), each with its findings.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trackguard.contract.identifiers import is_email
from trackguard.contract.operations import Operation, Request
from trackguard.core.keys import person_key
from trackguard.core.verdict import Verdict
from trackguard.delivery.convert import to_outbox_rows
from trackguard.plan.model import DedupePolicy
from trackguard.redact import redact_headers
from trackguard.store.base import QuarantineRecord, Write

_encode = msgspec.json.encode


def _findings(verdict: Verdict, batch_index: int | None, *, all_items: bool) -> list[Any]:
    out: list[Any] = []
    for e in verdict.contract_errors:
        if all_items or e.batch_index == batch_index:
            out.append({"kind": "contract", **msgspec.structs.asdict(e)})
    for v in verdict.violations:
        if all_items or v.batch_index == batch_index:
            out.append({"kind": "plan", **msgspec.structs.asdict(v)})
    return out


def _event_name(op: Operation | None, body: Any) -> str | None:
    name = op.name if op is not None else (body.get("name") if isinstance(body, dict) else None)
    return name.strip()[:200] if isinstance(name, str) else None


def quarantine_records(
    request: Request, verdict: Verdict, received_at: float
) -> list[QuarantineRecord]:
    """Every part of ``request`` the verdict does not let through, kept whole."""
    headers = redact_headers(request.headers)
    common: dict[str, Any] = {
        "received_at": received_at,
        "method": request.method,
        "path": request.path,
        "headers": headers,
        "source": request.source,
        "plan_version": verdict.plan_version,
        "route": verdict.route,
        "status": verdict.status,
    }
    records: list[QuarantineRecord] = []
    if verdict.contract_errors:
        whole = verdict.status != 207
        if whole:
            body_name = None
            try:
                decoded = msgspec.json.decode(request.body) if request.body else None
                body_name = _event_name(None, decoded)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                pass
            findings = _findings(verdict, None, all_items=True)
            records.append(
                QuarantineRecord(
                    kind="contract",
                    body=request.body,
                    findings=_encode(findings),
                    codes=tuple(sorted({f["code"] for f in findings})),
                    event_name=body_name,
                    **common,
                )
            )
        else:
            items = _batch_items(request.body)
            for index in sorted(
                {e.batch_index for e in verdict.contract_errors if e.batch_index is not None}
            ):
                item = items[index] if index < len(items) else None
                findings = _findings(verdict, index, all_items=False)
                records.append(
                    QuarantineRecord(
                        kind="contract",
                        body=_encode(item),
                        findings=_encode(findings),
                        codes=tuple(sorted({f["code"] for f in findings})),
                        event_name=_event_name(None, item),
                        batch_index=index,
                        **common,
                    )
                )
    for op in verdict.rejected:
        per_item = op.batch_index is not None
        findings = _findings(verdict, op.batch_index, all_items=not per_item)
        records.append(
            QuarantineRecord(
                kind="plan",
                body=_encode(op.body) if per_item else request.body,
                findings=_encode(findings),
                codes=tuple(sorted({f["code"] for f in findings})),
                event_name=_event_name(op, op.body),
                batch_index=op.batch_index,
                **common,
            )
        )
    return records


def _batch_items(body: bytes) -> list[Any]:
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return []
    items = decoded.get("batch") if isinstance(decoded, dict) else None
    return items if isinstance(items, list) else []


def learned(
    verdict: Verdict,
) -> tuple[
    tuple[tuple[str, str], ...], tuple[tuple[str, str | None], ...], tuple[tuple[str, str], ...]
]:
    """What accepted operations teach: ``(email, id)`` bindings from identifies carrying both
    (not those flagged as a conflict), anonymous activity, and identifies' ``anonymous_id``s."""
    links: list[tuple[str, str]] = []
    anonymous: list[tuple[str, str | None]] = []
    anonymous_links: list[tuple[str, str]] = []
    conflicted = {v.batch_index for v in verdict.violations if v.code == "identity_conflict"}
    for op in verdict.operations:
        ident = op.identifier
        if op.action == "anonymous_event" and ident is not None and ident.kind == "anonymous_id":
            name = op.name
            anonymous.append((ident.value, name if isinstance(name, str) else None))
            continue
        if op.action != "identify" or op.type != "person" or ident is None:
            continue
        attrs = op.data if isinstance(op.data, dict) else {}
        email = attrs.get("email")
        if (
            ident.kind == "id"
            and isinstance(email, str)
            and is_email(email.strip())
            and op.batch_index not in conflicted
        ):
            links.append((email.strip().lower(), ident.value))
        anonymous_id = attrs.get("anonymous_id")
        if isinstance(anonymous_id, str | int) and not isinstance(anonymous_id, bool):
            anonymous_links.append((str(anonymous_id), person_key(op)))
    return tuple(links), tuple(anonymous), tuple(anonymous_links)


def to_write(
    request: Request,
    verdict: Verdict,
    received_at: float,
    dedupe: DedupePolicy | None = None,
) -> Write:
    """Everything one request commits: its accepted operations and its quarantine records.

    With a ``dedupe`` policy the store drops events the same person sent before within the
    policy's windows, and keeps in the quarantine an event whose key another person holds.
    Every outbox row and quarantine record carries the verdict's route key and plan version.
    """
    links, anonymous, anonymous_links = learned(verdict)
    outbox = to_outbox_rows(
        verdict.operations,
        received_at=received_at,
        source=request.source,
        dedupe=dedupe,
        route=verdict.route,
        plan_version=verdict.plan_version,
    )
    kept_as = None
    if any(row.claim_until is not None for row in outbox):
        kept_as = QuarantineRecord(
            kind="plan",
            received_at=received_at,
            method=request.method,
            path=request.path,
            headers=redact_headers(request.headers),
            body=request.body,
            source=request.source,
            plan_version=verdict.plan_version,
            route=verdict.route,
            status=verdict.status,
        )
    return Write(
        links=links,
        anonymous=anonymous,
        anonymous_links=anonymous_links,
        outbox=outbox,
        quarantine=tuple(quarantine_records(request, verdict, received_at)),
        kept_as=kept_as,
    )
