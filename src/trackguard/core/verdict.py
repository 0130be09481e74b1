"""The Verdict: everything the core decided about one request, as immutable data.

The shell (gateway, ``check``, ``audit``, ``replay``) acts on a verdict and never re-decides:
``operations`` go to the outbox, ``rejected`` operations and contract errors go to quarantine,
``violations`` and ``changes`` explain both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, Protocol

import msgspec

from trackguard.contract.check import ContractError
from trackguard.contract.operations import Operation

Outcome = Literal["accepted", "fixed", "warned", "rejected", "invalid"]
#: Outcomes from best to worst; a request's outcome is the worst of its parts.
OUTCOMES: Final[tuple[Outcome, ...]] = ("accepted", "fixed", "warned", "rejected", "invalid")
_RANK: Final = {o: i for i, o in enumerate(OUTCOMES)}


class Violation(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One finding of the tracking plan (or a contract warning).

    ``code`` is stable (documented in ``docs/violations.md``); ``rule`` names the plan rule
    (``events.order_completed.properties.total``); ``path`` is the JSON path in the request;
    ``action`` is what was done: ``reject``, ``fix`` or ``warn``.
    """

    code: str
    rule: str
    path: str
    message: str
    action: str
    batch_index: int | None = None


class ContractWarning(Protocol):
    """A contract warning of either API (a Track API :class:`ContractError`, a Pipelines
    ``Issue``): where it is and what it says."""

    @property
    def code(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def batch_index(self) -> int | None: ...


def contract_warnings(warnings: Iterable[ContractWarning]) -> list[Violation]:
    """The contract's warnings as violations of the verdict (rule ``contract``, ``warn``)."""
    return [
        Violation(
            code=w.code,
            rule="contract",
            path=w.field,
            message=w.message,
            action="warn",
            batch_index=w.batch_index,
        )
        for w in warnings
    ]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One normalization: the value at ``path`` went from ``before`` to ``after``."""

    path: str
    before: object
    after: object
    rule: str
    batch_index: int | None = None


class Verdict(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The decision about one request.

    ``status`` and ``response`` are what Customer.io would answer (the gateway answers the
    same, unless strict mode turns plan rejections into 400s). ``operations`` are the accepted
    operations as they would be sent, after fixes; ``rejected`` are operations the plan
    rejected (kept in quarantine, not sent).

    Not tracked by the cyclic garbage collector (``gc=False``): it holds operations and
    findings, none of which refers back to it.
    """

    outcome: Outcome
    status: int
    response: bytes
    route: str | None
    operations: tuple[Operation, ...] = ()
    rejected: tuple[Operation, ...] = ()
    contract_errors: tuple[ContractError, ...] = ()
    violations: tuple[Violation, ...] = ()
    changes: tuple[Change, ...] = ()
    plan_version: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        """Every finding's code: contract errors first, then violations."""
        return tuple(e.code for e in self.contract_errors) + tuple(v.code for v in self.violations)


def worst(a: Outcome, b: Outcome) -> Outcome:
    return a if _RANK[a] >= _RANK[b] else b


def _op_dict(op: Operation) -> dict[str, object]:
    out: dict[str, object] = {"api": op.api, "type": op.type, "action": op.action}
    if op.identifier is not None:
        out["identifier"] = {"kind": op.identifier.kind, "value": op.identifier.value}
    if op.batch_index is not None:
        out["batch_index"] = op.batch_index
    if op.dedupe_key is not None:
        out["dedupe_key"] = op.dedupe_key
    out["method"], out["path"], out["body"] = op.method, op.path, op.body
    return out


def verdict_to_dict(verdict: Verdict) -> dict[str, object]:
    """A JSON-ready view of a verdict (``check --format jsonl``, quarantine, reports)."""
    return {
        "outcome": verdict.outcome,
        "status": verdict.status,
        "response": verdict.response.decode("utf-8", "replace"),
        "route": verdict.route,
        "plan_version": verdict.plan_version,
        "contract_errors": [msgspec.structs.asdict(e) for e in verdict.contract_errors],
        "violations": [msgspec.structs.asdict(v) for v in verdict.violations],
        "changes": [msgspec.structs.asdict(c) for c in verdict.changes],
        "operations": [_op_dict(o) for o in verdict.operations],
        "rejected": [_op_dict(o) for o in verdict.rejected],
    }
