"""From a Verdict to what the store commits: outbox rows and quarantine records.

Pure: the gateway, replay and backfill all turn verdicts into writes here, so a rejected request
is kept the same way whichever door it came through. Contract errors keep the whole request;
plan rejections keep the request (v1) or the rejected item (v2 batch), each with its findings.
Pipelines requests keep each dropped or rejected call on its own (:func:`pipelines_write`).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from trackguard.contract.identifiers import is_email
from trackguard.contract.operations import Operation, Request
from trackguard.contract.pipelines import Dropped, PipelinesResult
from trackguard.core.keys import person_key
from trackguard.core.pipeline import Checker
from trackguard.core.pipelines import check_calls, contract_error
from trackguard.core.pipelines import learned as pipelines_learned
from trackguard.core.state import StateView
from trackguard.core.verdict import Verdict
from trackguard.delivery.convert import to_outbox_rows
from trackguard.plan.model import DedupePolicy
from trackguard.redact import REDACTED, redact_headers
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


def _event_name(op: Operation | None, body: Any, keys: tuple[str, ...] = ("name",)) -> str | None:
    """The name a quarantine record is listed under (stripped, at most 200 characters): the
    operation's, else the first of ``keys`` in the body that holds some text (a Pipelines
    call's ``event``, then its page or screen ``name``)."""
    if op is not None:
        return _clip(op.name)
    found = None
    if isinstance(body, dict):
        for key in keys:
            found = _clip(body.get(key))
            if found:
                break
    return found


def _clip(name: Any) -> str | None:
    return name.strip()[:200] if isinstance(name, str) else None


def _common(request: Request, verdict: Verdict, received_at: float) -> dict[str, Any]:
    """What every quarantine record of one request shares (headers redacted)."""
    return {
        "received_at": received_at,
        "method": request.method,
        "path": request.path,
        "headers": redact_headers(request.headers),
        "source": request.source,
        "plan_version": verdict.plan_version,
        "route": verdict.route,
        "status": verdict.status,
    }


def quarantine_records(
    request: Request, verdict: Verdict, received_at: float
) -> list[QuarantineRecord]:
    """Every part of ``request`` the verdict does not let through, kept whole."""
    if not verdict.contract_errors and not verdict.rejected:
        return []  # most requests: nothing kept, and the shared fields are not worth building
    common = _common(request, verdict, received_at)
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


#: The Track API actions that teach identities or anonymous activity (see :func:`learned`).
_TEACHING: Final = frozenset({"identify", "anonymous_event"})


def learned(
    verdict: Verdict,
) -> tuple[
    tuple[tuple[str, str], ...], tuple[tuple[str, str | None], ...], tuple[tuple[str, str], ...]
]:
    """What accepted operations teach: ``(email, id)`` bindings from identifies carrying both
    (not those flagged as a conflict), anonymous activity, and identifies' ``anonymous_id``s."""
    for op in verdict.operations:
        if op.api == "pipelines" or op.action in _TEACHING:
            break
    else:
        return (), (), ()  # most requests: events of known people teach nothing
    links: list[tuple[str, str]] = []
    anonymous: list[tuple[str, str | None]] = []
    anonymous_links: list[tuple[str, str]] = []
    conflicted = {v.batch_index for v in verdict.violations if v.code == "identity_conflict"}
    for op in verdict.operations:
        if op.api == "pipelines":
            taught = pipelines_learned(op, conflicted=op.batch_index in conflicted)
            links += taught.links
            anonymous += taught.anonymous
            anonymous_links += taught.anonymous_links
            continue
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
    quarantine = quarantine_records(request, verdict, received_at)
    return _write(request, verdict, received_at, dedupe, quarantine)


def _write(
    request: Request,
    verdict: Verdict,
    received_at: float,
    dedupe: DedupePolicy | None,
    quarantine: list[QuarantineRecord],
    kept_body: bytes | None = None,
) -> Write:
    """The write; ``kept_body`` is what a row whose dedupe key another person holds is kept
    from (default: the request's body)."""
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
    for row in outbox:
        if row.claim_until is None:
            continue
        kept_as = QuarantineRecord(
            kind="plan",
            received_at=received_at,
            method=request.method,
            path=request.path,
            headers=redact_headers(request.headers),
            body=request.body if kept_body is None else kept_body,
            source=request.source,
            plan_version=verdict.plan_version,
            route=verdict.route,
            status=verdict.status,
        )
        break  # one record, whichever row claims
    return Write(
        links=links,
        anonymous=anonymous,
        anonymous_links=anonymous_links,
        outbox=outbox,
        quarantine=tuple(quarantine),
        kept_as=kept_as,
    )


def _without_key(body: Any, secret: str | None) -> bytes:
    """A Pipelines body as JSON with no ``writeKey`` and no occurrence of the write key."""
    if isinstance(body, dict) and "writeKey" in body:
        body = {k: v for k, v in body.items() if k != "writeKey"}
    try:
        out = body if isinstance(body, bytes) else _encode(body)
    except (msgspec.EncodeError, RecursionError, TypeError):  # pragma: no cover - decoded JSON
        out = b""
    return out.replace(secret.encode(), REDACTED.encode()) if secret else out


def pipelines_write(
    request: Request,
    dropped: tuple[Dropped, ...],
    verdict: Verdict,
    received_at: float,
    dedupe: DedupePolicy | None = None,
    secret: str | None = None,
) -> Write:
    """What one Pipelines request commits: its accepted calls, and every call the contract
    dropped or the plan rejected as its own quarantine record (the call as sent, never the
    write key: ``secret`` is replaced wherever it appears)."""
    common = _common(request, verdict, received_at)
    records: list[QuarantineRecord] = []
    for gone in dropped:
        findings = [
            {"kind": "contract", **msgspec.structs.asdict(contract_error(e))} for e in gone.errors
        ]
        records.append(
            QuarantineRecord(
                kind="contract",
                body=_without_key(gone.body, secret),
                findings=_encode(findings),
                codes=tuple(sorted({e.code for e in gone.errors})),
                event_name=_event_name(None, gone.body, ("event", "name")),
                batch_index=gone.index,
                **common,
            )
        )
    for op in verdict.rejected:
        findings = _findings(verdict, op.batch_index, all_items=op.batch_index is None)
        records.append(
            QuarantineRecord(
                kind="plan",
                body=_without_key(op.body, secret),
                findings=_encode(findings),
                codes=tuple(sorted({f["code"] for f in findings})),
                event_name=_event_name(op, op.body),
                batch_index=op.batch_index,
                **common,
            )
        )
    return _write(request, verdict, received_at, dedupe, records, _accepted_body(verdict, secret))


def _accepted_body(verdict: Verdict, secret: str | None) -> bytes:
    """The accepted calls as a request body without the write key: a batch with each call at
    its own index (``dedupe_key_conflict`` records pick theirs from it), or the single call."""
    ops = verdict.operations
    if ops and ops[0].batch_index is None:
        return _without_key(ops[0].body, secret)
    items: list[Any] = [None] * (max((op.batch_index or 0) for op in ops) + 1 if ops else 0)
    for op in ops:
        items[op.batch_index or 0] = op.body
    return _without_key({"batch": items}, secret)


def decide_pipelines(
    request: Request,
    result: PipelinesResult,
    checker: Checker,
    state: StateView,
    received_at: float,
    dedupe: DedupePolicy | None,
    *,
    secret: str | None = None,
) -> tuple[Verdict, Write]:
    """The verdict for a judged request whose key was accepted, and what to commit for it:
    the one conversion of Pipelines calls into outbox rows and quarantine records, shared by
    the gateway's door, ``trackguard replay`` and ``trackguard backfill``."""
    verdict = check_calls(
        result, checker.compiled, strict=checker.strict, state=state, now=received_at
    )
    write = pipelines_write(request, result.dropped, verdict, received_at, dedupe, secret=secret)
    return verdict, write
