"""The runtime naming fix renames by words only: never across opposite names.

The audit may suggest that two names a small edit apart are one event; the gateway never acts on
distance. These tests pin that, for every opposite pair and prefix in the lexicon
(``trackguard/plan/opposites.txt``), an event sent under the opposite name of a planned event is
not renamed to it, with the naming action ``fix`` and every convention.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from trackguard.contract.check import evaluate
from trackguard.contract.operations import Request
from trackguard.core.plancheck import CompiledPlan
from trackguard.plan.model import Convention, EventSpec, NamingPolicy, Plan
from trackguard.plan.naming import name_key, to_convention
from trackguard.plan.similarity import opposite

CONVENTIONS: tuple[Convention, ...] = ("snake_case", "camelCase", "PascalCase", "kebab-case")


def _pairs() -> list[tuple[str, str]]:
    """Every opposite pair of the lexicon as written, and each prefix on three words."""
    text = resources.files("trackguard.plan").joinpath("opposites.txt").read_text("utf-8")
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    pairs = {(a, b) for a, b in lines if a not in ("prefix", "negation")}
    prefixes = [b for a, b in lines if a == "prefix"]
    pairs |= {(w, p + w) for p in prefixes for w in ("installed", "subscribed", "viewed")}
    return sorted(pairs)


PAIRS = _pairs()


def _renamed_to(compiled: CompiledPlan, sent: str) -> str | None:
    body = {"name": sent, "data": {}}
    path = "/api/v1/customers/cus_1/events"
    result = evaluate(Request(method="POST", path=path, body=json.dumps(body).encode()))
    (op,) = result.operations
    r = compiled.apply(op)
    assert r.operation.body is not None
    name = r.operation.body["name"]
    return name if name != sent else None


def test_the_pairs_cover_the_lexicon() -> None:
    assert len(PAIRS) == 184 + 12 * 3


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_an_opposite_name_is_never_renamed_to_the_planned_event(convention: Convention) -> None:
    wrong = []
    for a, b in PAIRS:
        for planned, sent in ((a, b), (b, a)):
            event = to_convention(f"item {planned}", convention)
            plan = Plan(
                name="t",
                naming=NamingPolicy(convention=convention, action="fix"),
                events={event: EventSpec(name=event)},
            )
            compiled = CompiledPlan(plan)
            # the fix is on: the planned event written differently is renamed
            assert _renamed_to(compiled, f"ITEM {planned.upper()}") == event
            for written in (f"Item {sent.title()}", f"item_{sent}", f"item{sent.title()}"):
                renamed = _renamed_to(compiled, written)
                if renamed is not None and name_key(renamed) == name_key(event):
                    wrong.append((written, renamed))
    assert wrong == []


def test_the_words_differ_and_the_guard_sees_the_opposite() -> None:
    # the property the runtime rests on: opposite names never share a name key
    for a, b in PAIRS:
        assert name_key(f"item {a}") != name_key(f"item {b}")
        assert opposite(f"item {a}", f"item {b}") is not None, (a, b)
