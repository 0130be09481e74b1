"""``attribute``'s one-operation fast path gives exactly the keys of the general walk."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.check import ContractError
from trackguard.contract.operations import Operation
from trackguard.core.verdict import Verdict, Violation
from trackguard.monitor.tally import NO_SOURCE, UNKNOWN, attribute, walk

_INDEX = st.none() | st.integers(0, 2)


def _verdict(
    ops: list[Operation],
    violations: list[Violation],
    rejected: list[Operation] | None = None,
    errors: list[ContractError] | None = None,
) -> Verdict:
    return Verdict(
        outcome="warned",
        status=200,
        response=b"{}",
        route="r",
        operations=tuple(ops),
        rejected=tuple(rejected or ()),
        contract_errors=tuple(errors or ()),
        violations=tuple(violations),
    )


@st.composite
def _operations(draw: st.DrawFn) -> Operation:
    action = draw(st.sampled_from(["event", "identify", "page"]))
    name = draw(st.none() | st.sampled_from(["order_completed", "", "x" * 120]) | st.integers())
    return Operation(
        api="v1",
        type="person",
        action=action,
        route="POST /api/v1/customers/{identifier}/events",
        method="POST",
        path="/api/v1/customers/1/events",
        body={} if name is None else {"name": name},
        batch_index=draw(_INDEX),
        data_key="data",
    )


_VIOLATIONS = st.builds(
    Violation,
    code=st.sampled_from(["event_late", "property_type", "event_unplanned"]),
    rule=st.just("r"),
    path=st.just("p"),
    message=st.just("m"),
    action=st.sampled_from(["warn", "fix", "reject", "other"]),
    batch_index=_INDEX,
)
_ERRORS = st.builds(
    ContractError,
    code=st.sampled_from(["name_missing", "data_not_object"]),
    message=st.just("m"),
    batch_index=_INDEX,
)


@given(
    ops=st.lists(_operations(), max_size=3),
    rejected=st.lists(_operations(), max_size=2),
    violations=st.lists(_VIOLATIONS, max_size=3),
    errors=st.lists(_ERRORS, max_size=2),
    hint=st.none() | st.sampled_from(["", "checkout_started"]),
    source=st.none() | st.just("shop"),
)
def test_every_verdict_gets_the_walks_keys(
    ops: list[Operation],
    rejected: list[Operation],
    violations: list[Violation],
    errors: list[ContractError],
    hint: str | None,
    source: str | None,
) -> None:
    verdict = _verdict(ops, violations, rejected, errors)
    fallback = hint[:100] if hint else UNKNOWN
    expected = walk(verdict, "r", source or NO_SOURCE, 7, fallback)
    assert attribute(verdict, "r", source, 7, hint) == expected


@given(op=_operations(), violations=st.lists(_VIOLATIONS, max_size=3), hint=st.none())
def test_one_operation_gets_the_walks_keys(
    op: Operation, violations: list[Violation], hint: None
) -> None:
    """The fast path's own case, drawn directly (the test above reaches it rarely)."""
    verdict = _verdict([op], violations)
    assert attribute(verdict, "r", None, 7, hint) == walk(verdict, "r", NO_SOURCE, 7, UNKNOWN)


def test_a_late_event_counts_its_outcome_and_its_finding() -> None:
    op = Operation(
        api="v1",
        type="person",
        action="event",
        route="r",
        method="POST",
        path="/api/v1/customers/1/events",
        body={"name": "order_completed"},
        data_key="data",
    )
    late = Violation(
        code="event_late", rule="timeliness.max_age", path="timestamp", message="m", action="warn"
    )
    verdict = _verdict([op], [late])
    assert attribute(verdict, "r", None, 3, None) == [
        (3, "order_completed", "r", "-", "outcome", "warned"),
        (3, "order_completed", "r", "-", "code", "event_late"),
    ]
