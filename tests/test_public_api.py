"""The public API re-exported from the package root is pinned: changing it is a decision."""

from __future__ import annotations

import importlib.metadata

import trackguard
from trackguard.contract import ContractError, Identifier, Operation, Request
from trackguard.core import OUTCOMES, Change, Checker, Verdict, Violation, check_request

EXPORTED = [
    "OUTCOMES",
    "Change",
    "Checker",
    "ContractError",
    "Identifier",
    "Operation",
    "Outcome",
    "Request",
    "Verdict",
    "Violation",
    "__version__",
    "check_request",
]


def test_all_is_pinned() -> None:
    assert trackguard.__all__ == EXPORTED


def test_all_is_sorted_and_unique() -> None:
    # isort-style order (ruff RUF022): SCREAMING_CASE, then CamelCase, then the rest.
    def key(name: str) -> tuple[int, str]:
        if name.isupper():
            return (0, name)
        return (1, name) if name[0].isupper() else (2, name)

    assert trackguard.__all__ == sorted(set(trackguard.__all__), key=key)


def test_every_name_resolves_to_its_home() -> None:
    namespace: dict[str, object] = {}
    exec("from trackguard import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPORTED)
    assert trackguard.Checker is Checker
    assert trackguard.check_request is check_request
    assert trackguard.Verdict is Verdict
    assert trackguard.Violation is Violation
    assert trackguard.Change is Change
    assert trackguard.OUTCOMES is OUTCOMES
    assert trackguard.Request is Request
    assert trackguard.Operation is Operation
    assert trackguard.Identifier is Identifier
    assert trackguard.ContractError is ContractError


def test_outcomes_in_order() -> None:
    assert OUTCOMES == ("accepted", "fixed", "warned", "rejected", "invalid")


def test_version_matches_the_distribution() -> None:
    assert trackguard.__version__ == importlib.metadata.version("trackguard")
