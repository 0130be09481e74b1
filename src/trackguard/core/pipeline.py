"""The one pure function every door goes through: request → Verdict.

``Checker(plan).check(request)`` parses the request, checks Customer.io's contract, applies
the tracking plan (normalizing what it says to fix) and returns a :class:`Verdict`. It does
no I/O and never raises on input. Without a plan only the contract is checked.
"""

from __future__ import annotations

from typing import Final

import msgspec
from mypy_extensions import mypyc_attr

from trackguard.contract.check import ContractError, ContractResult, evaluate
from trackguard.contract.operations import Operation, Request
from trackguard.contract.responses import OK_BODY, pretty, render
from trackguard.contract.routes import NoRoute, RouteMatch, match
from trackguard.core.fastpath import FastContract, FastEvents
from trackguard.core.keys import fallback_key
from trackguard.core.plancheck import CompiledPlan, OpResult
from trackguard.core.state import NO_STATE, StateView
from trackguard.core.verdict import (
    Change,
    Outcome,
    Verdict,
    Violation,
    contract_warnings,
    worst,
)
from trackguard.plan.model import Plan

_NO_VIOLATIONS: Final[tuple[Violation, ...]] = ()


def _strict_body(result: ContractResult, rejected: list[Violation]) -> tuple[int, bytes]:
    """Strict mode: plan rejections answered like Customer.io answers contract errors.

    A v2 batch answers 207 listing every failed item: contract errors and plan rejections.
    """
    route = result.route
    if route is not None and route.api == "v2":
        status = 207 if route.action == "batch" else 400
        items: list[dict[str, object]] = []
        findings = [(e.batch_index, e.reason, e.field, e.message) for e in result.errors]
        findings += [(v.batch_index, v.code, v.path, v.message) for v in rejected]
        for index, reason, field, message in sorted(findings, key=lambda f: f[0] or 0):
            item: dict[str, object] = {}
            if status == 207 and index is not None:
                item["batch_index"] = index
            item.update(reason=reason, field=field, message=message)
            items.append(item)
        return status, pretty({"errors": items})
    body = {"meta": {"errors": [v.message for v in rejected]}}
    return 400, pretty(body)


def _keyed(op: Operation, fallback: bool = True) -> Operation:
    """An event with its dedupe key: the plan's, else its id, else its content's hash.

    With ``fallback`` False only the plan's key is kept (an event without one has none).
    """
    if not fallback or op.dedupe_key is not None or not op.is_event:
        return op
    return msgspec.structs.replace(op, dedupe_key=fallback_key(op))


# Compiled (trackguard.compiled), a class refuses Python subclasses unless it says otherwise;
# the checker is the seam tests and embedders wrap.
@mypyc_attr(allow_interpreted_subclasses=True)
class Checker:
    """Checks requests against Customer.io's contract and, if given, a tracking plan.

    ``fast`` lets clean requests skip the full walk (the same verdict, see ``fastpath``).
    ``fallback_keys=False`` leaves an event without the plan's business key with
    ``dedupe_key=None`` instead of its ``id:`` or ``retry:`` key (for callers that ignore those,
    like ``trackguard audit``).
    """

    __slots__ = ("compiled", "fallback_keys", "fast", "plan", "strict")

    def __init__(
        self,
        plan: Plan | None = None,
        *,
        strict: bool = False,
        fast: bool = True,
        fallback_keys: bool = True,
    ):
        self.plan = plan
        self.compiled = CompiledPlan(plan) if plan is not None else None
        self.strict = strict
        self.fallback_keys = fallback_keys
        #: Clean planned events (or, without a plan, clean v1 track and identify calls) skip
        #: the full walk: the same verdict, see ``fastpath``.
        self.fast: FastEvents | FastContract | None = None
        if fast:
            self.fast = (
                FastContract(fallback_keys=fallback_keys)
                if plan is None
                else FastEvents(plan, fallback_keys=fallback_keys)
            )

    def check(
        self,
        request: Request,
        hit: RouteMatch | NoRoute | None = None,
        *,
        now: float | None = None,
        state: StateView = NO_STATE,
    ) -> Verdict:
        """The verdict for ``request``.

        ``hit`` is its route match when the caller has it; ``now`` is when it was received
        (events are judged for lateness only then); ``state`` is what earlier traffic taught
        (identities, last orders).
        """
        if hit is None:
            hit = match(request.method, request.path)
        if self.fast is not None:  # it declines a path that is not UTF-8, as any finding
            verdict = self.fast.check(request, hit, now)
            if verdict is not None:
                return verdict
        return self.full(request, hit, now=now, state=state)

    def full(
        self,
        request: Request,
        hit: RouteMatch | NoRoute,
        *,
        now: float | None = None,
        state: StateView = NO_STATE,
    ) -> Verdict:
        """The verdict without the fast path: what :meth:`check` answers when ``self.fast``
        declines (or is None). A caller that tries ``self.fast`` itself finishes here."""
        if isinstance(hit, RouteMatch) and hit.not_utf8:
            return _held_not_utf8(self._full(request, hit, now, state), hit.not_utf8)
        return self._full(request, hit, now, state)

    def _full(
        self, request: Request, hit: RouteMatch | NoRoute, now: float | None, state: StateView
    ) -> Verdict:
        """The verdict from the full walk: contract, then plan."""
        result = evaluate(request, hit)
        plan_version = self.plan.version if self.plan is not None else ""
        route_key = result.route.key if result.route is not None else None
        if not result.accepted:
            status, response = render(result)
            return Verdict(
                outcome="invalid",
                status=status,
                response=response,
                route=route_key,
                contract_errors=result.errors,
                violations=tuple(contract_warnings(result.warnings)),
                plan_version=plan_version,
            )
        outcome: Outcome = "invalid" if result.errors else "accepted"
        violations = contract_warnings(result.warnings)
        if violations:
            outcome = worst(outcome, "warned")
        if self.compiled is None:
            status, response = render(result)
            return Verdict(
                outcome=outcome,
                status=status,
                response=response,
                route=route_key,
                operations=tuple(_keyed(op, self.fallback_keys) for op in result.operations),
                contract_errors=result.errors,
                violations=tuple(violations),
                plan_version=plan_version,
            )
        return self._apply_plan(result, violations, outcome, route_key, plan_version, state, now)

    def _apply_plan(
        self,
        result: ContractResult,
        violations: list[Violation],
        outcome: Outcome,
        route_key: str | None,
        plan_version: str,
        state: StateView,
        now: float | None,
    ) -> Verdict:
        assert self.compiled is not None
        accepted: list[Operation] = []
        rejected: list[Operation] = []
        changes: list[Change] = []
        for op in result.operations:
            r: OpResult = self.compiled.apply(op, state, now)
            if r.changes:
                changed = {(c.batch_index, c.path) for c in r.changes}
                violations = [v for v in violations if (v.batch_index, v.path) not in changed]
            violations.extend(r.violations)
            changes.extend(r.changes)
            if r.rejected:
                rejected.append(r.operation)
                outcome = worst(outcome, "rejected")
            else:
                accepted.append(_keyed(r.operation, self.fallback_keys))
                if any(v.action == "warn" for v in r.violations):
                    outcome = worst(outcome, "warned")
                elif r.changes:
                    outcome = worst(outcome, "fixed")
        if outcome == "warned" and not any(v.action == "warn" for v in violations):
            outcome = "fixed" if changes else "accepted"  # the only warnings were fixed away
        status, response = render(result)
        if self.strict and rejected:
            plan_rejections = [v for v in violations if v.action == "reject"]
            status, response = _strict_body(result, plan_rejections)
        return Verdict(
            outcome=outcome,
            status=status,
            response=response,
            route=route_key,
            operations=tuple(accepted),
            rejected=tuple(rejected),
            contract_errors=result.errors,
            violations=tuple(violations) if violations else _NO_VIOLATIONS,
            changes=tuple(changes),
            plan_version=plan_version,
        )


#: The code of a request whose path holds percent-escapes that are not UTF-8.
CODE_PATH_NOT_UTF8: Final = "path_not_utf8"


def _held_not_utf8(verdict: Verdict, names: tuple[str, ...]) -> Verdict:
    """Keep, never send, operations addressed by a path value that is not UTF-8.

    ``%ff`` decodes to U+FFFD: sending that would address another person (or none) under an
    id the client never sent, and the original byte would be lost. Whether Customer.io accepts
    such a path is UNVERIFIED, so the answer stays the one the request would get otherwise
    (lenient, like a plan rejection in the default mode), and the request is kept whole, its
    path as sent (``%ff`` and all), in the quarantine.
    """
    if not verdict.operations:
        return verdict  # refused anyway (kept as a contract record) or nothing to deliver
    held = tuple(
        Violation(
            code=CODE_PATH_NOT_UTF8,
            rule="contract",
            path="",
            message=f"{name} in the path is not UTF-8 once percent-decoded; kept, not delivered",
            action="reject",
        )
        for name in names
    )
    return msgspec.structs.replace(
        verdict,
        outcome=worst(verdict.outcome, "rejected"),
        operations=(),
        rejected=verdict.rejected + verdict.operations,
        violations=verdict.violations + held,
    )


def check_request(request: Request, plan: Plan | None = None, *, strict: bool = False) -> Verdict:
    """Check one request (compiles the plan each call: use :class:`Checker` for many)."""
    return Checker(plan, strict=strict).check(request)


__all__ = ["OK_BODY", "Checker", "ContractError", "check_request"]
