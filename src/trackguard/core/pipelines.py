"""The core for Pipelines API calls: a contract result and a plan in, a :class:`Verdict` out.

The Pipelines contract (``trackguard.contract.pipelines``) has already judged each call on its
own; here every accepted call becomes an :class:`Operation` (``api="pipelines"``, its body the
call as sent, completed by its batch's ``sentAt`` and ``context`` so it can travel in any
batch), the tracking plan is applied to it as to a Track API operation (the plan's ``events:``
to track calls, ``pages:`` and ``screens:`` to page and screen calls, ``semantic_events`` to
semantic event names, ``identity:`` to the person of every call, a group's member and an
alias's userId included), and each gets its dedupe key:

1. the plan's business key (``order_completed:A-1001``), else
2. ``pipelines:messageId:<id>``: every SDK resends a batch with the same messageIds on a
   retry, and Customer.io passes the messageId on as the event ``id``, so it is never
   rewritten, else
3. for an event without a messageId, its content's hash
   (:func:`~trackguard.core.keys.fallback_key`).

Pure, like :mod:`trackguard.core.pipeline`: no I/O, never raises on input.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from trackguard.contract.check import ContractError
from trackguard.contract.identifiers import is_email
from trackguard.contract.operations import Identifier, Operation
from trackguard.contract.pipelines import Issue, PipelinesResult, outcome, to_operation
from trackguard.contract.pipelines.check import text_of
from trackguard.contract.pipelines.operations import with_envelope
from trackguard.core.keys import fallback_key, person_key
from trackguard.core.plancheck import CompiledPlan
from trackguard.core.state import NO_STATE, StateView
from trackguard.core.verdict import Change, Outcome, Verdict, Violation, contract_warnings, worst

MESSAGE_ID_PREFIX: Final = "pipelines:messageId:"


def route_key(result: PipelinesResult) -> str | None:
    """``POST /v1/batch``: the route label of a Pipelines request (None for an unknown path)."""
    return None if result.route is None else f"POST {result.route.path}"


def dedupe_key(op: Operation, business: str | None) -> str | None:
    """The plan's business key, else the call's messageId, else an event's content hash."""
    if business is not None:
        return business
    message_id = op.body.get("messageId") if op.body is not None else None
    if isinstance(message_id, str) and message_id:
        return MESSAGE_ID_PREFIX + message_id
    return fallback_key(op) if op.is_event else None


def contract_error(issue: Issue) -> ContractError:
    return ContractError(
        code=issue.code,
        message=issue.message,
        field=issue.field,
        reason=issue.code,
        batch_index=issue.index,
        verified=issue.verified,
    )


def _plan_line(v: Violation) -> str:
    """``batch[2].properties.total: ...``: placed like the contract's own lines."""
    where = v.path if v.batch_index is None else f"batch[{v.batch_index}].{v.path}"
    return f"{where.rstrip('.')}: {v.message}"


def check_calls(
    result: PipelinesResult,
    plan: CompiledPlan | None = None,
    *,
    strict: bool = False,
    state: StateView = NO_STATE,
    now: float | None = None,
) -> Verdict:
    """The verdict for a Pipelines request whose write key was accepted.

    ``strict`` (the gateway's ``--strict``) answers plan rejections with a 400, as
    ``X-Strict-Mode: 1`` does; the calls the plan accepts are kept either way, so a client
    that resends the batch after fixing it is deduplicated by messageId.
    """
    done = outcome(result, key_accepted=True)
    status, response = done.status, done.body
    violations = contract_warnings(result.warnings)
    verdict_outcome: Outcome = "invalid" if result.errors else "accepted"
    if violations:
        verdict_outcome = worst(verdict_outcome, "warned")
    accepted: list[Operation] = []
    rejected: list[Operation] = []
    changes: list[Change] = []
    path = result.route.path if result.route is not None else ""
    for call in result.calls:
        op = to_operation(with_envelope(call, result.envelope), path)
        business = None
        if plan is not None:
            applied = plan.apply(op, state, now)
            op, business = applied.operation, applied.dedupe_key
            violations.extend(applied.violations)
            changes.extend(applied.changes)
            if applied.rejected:
                rejected.append(op)
                verdict_outcome = worst(verdict_outcome, "rejected")
                continue
            if any(v.action == "warn" for v in applied.violations):
                verdict_outcome = worst(verdict_outcome, "warned")
            elif applied.changes:
                verdict_outcome = worst(verdict_outcome, "fixed")
        accepted.append(
            msgspec.structs.replace(op, dedupe_key=dedupe_key(op, business), derive_total=None)
        )
    if rejected and status == 200 and (strict or result.strict):
        lines = [v for v in violations if v.action == "reject"]
        status = 400
        response = _plan_body(lines)
    return Verdict(
        outcome=verdict_outcome,
        status=status,
        response=response,
        route=route_key(result),
        operations=tuple(accepted),
        rejected=tuple(rejected),
        contract_errors=tuple(contract_error(e) for e in result.errors),
        violations=tuple(violations),
        changes=tuple(changes),
        plan_version=plan.plan.version if plan is not None else "",
    )


class Learned(msgspec.Struct, frozen=True, kw_only=True):
    """What one accepted call teaches the store (the Track API's identifies teach the same)."""

    #: ``(email, id)``: an identify with an email trait, an alias of an email into an id.
    links: tuple[tuple[str, str], ...] = ()
    #: ``(anonymousId, name)``: anonymous activity (a track, page or screen without userId).
    anonymous: tuple[tuple[str, str | None], ...] = ()
    #: ``(anonymousId, person key)``: an identify carrying both ids links the anonymous
    #: activity to the person, as does an alias of ``previousId`` into ``userId``.
    anonymous_links: tuple[tuple[str, str], ...] = ()


NOTHING_LEARNED: Final = Learned()


def learned(op: Operation, *, conflicted: bool = False) -> Learned:
    """What an accepted Pipelines call teaches; ``conflicted``: its identify binds an email
    already bound to another id (``identity_conflict``), so that binding is not learned."""
    ident, body = op.identifier, op.body
    if ident is None or body is None or op.type != "person":
        return NOTHING_LEARNED
    if ident.kind == "anonymous_id":
        if op.is_event:
            name = op.name
            return Learned(anonymous=((ident.value, name if isinstance(name, str) else None),))
        return NOTHING_LEARNED
    if op.action == "identify":
        email = op.data.get("email") if isinstance(op.data, dict) else None
        links = _binding(email, ident) if not conflicted else ()
        return Learned(links=links, anonymous_links=_linked(body.get("anonymousId"), op))
    if op.action == "merge":
        previous = text_of(body.get("previousId"))
        return Learned(links=_binding(previous, ident), anonymous_links=_linked(previous, op))
    return NOTHING_LEARNED


def _binding(email: Any, ident: Identifier) -> tuple[tuple[str, str], ...]:
    if ident.kind != "id" or not isinstance(email, str) or not is_email(email.strip()):
        return ()
    return ((email.strip().lower(), ident.value),)


def _linked(anonymous: Any, op: Operation) -> tuple[tuple[str, str], ...]:
    value = text_of(anonymous)
    return () if value is None else ((value, person_key(op)),)


def _plan_body(rejections: list[Violation]) -> bytes:
    """The strict answer to plan rejections, shaped like the contract's own 400."""
    lines = [_plan_line(v) for v in rejections]
    return msgspec.json.encode(
        {"code": "plan_rejected", "message": lines[0] if lines else "", "meta": {"errors": lines}}
    )


__all__ = [
    "MESSAGE_ID_PREFIX",
    "Learned",
    "check_calls",
    "contract_error",
    "dedupe_key",
    "learned",
    "route_key",
]
