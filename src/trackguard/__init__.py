"""trackguard: a guard for the data path into Customer.io's Track API.

The library's public surface; the CLI (``trackguard``) is a thin layer over it.
"""

from trackguard.contract import ContractError, Identifier, Operation, Request
from trackguard.core import OUTCOMES, Change, Checker, Outcome, Verdict, Violation, check_request

__version__ = "0.1.0"

__all__ = [
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
