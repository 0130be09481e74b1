"""Customer.io's Track API contract: routes, operations, limits, exact errors and responses."""

from trackguard.contract.check import ContractError, ContractResult, evaluate
from trackguard.contract.identifiers import classify, is_email
from trackguard.contract.operations import Identifier, Operation, Request
from trackguard.contract.responses import render

__all__ = [
    "ContractError",
    "ContractResult",
    "Identifier",
    "Operation",
    "Request",
    "classify",
    "evaluate",
    "is_email",
    "render",
]
