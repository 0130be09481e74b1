"""The pure core: request → parse → contract → plan → normalize → Verdict."""

from trackguard.core.pipeline import Checker, check_request
from trackguard.core.verdict import OUTCOMES, Change, Outcome, Verdict, Violation

__all__ = ["OUTCOMES", "Change", "Checker", "Outcome", "Verdict", "Violation", "check_request"]
