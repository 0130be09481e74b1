"""Customer.io's Pipelines API contract (``cdp.customer.io/v1``): routes, the write key, gzip,
every call's required fields, exact messages (:mod:`.messages`) and the answers, strict or
permissive. Pure, like the Track API contract beside it; see ``docs/pipelines.md``."""

from trackguard.contract.pipelines.check import (
    Call,
    Dropped,
    Issue,
    PipelinesResult,
    evaluate,
    is_iso8601,
)
from trackguard.contract.pipelines.operations import to_operation
from trackguard.contract.pipelines.responses import Outcome, outcome
from trackguard.contract.pipelines.routes import PipelinesRoute, is_pipelines_path, route_for
from trackguard.contract.pipelines.wire import WriteKey

__all__ = [
    "Call",
    "Dropped",
    "Issue",
    "Outcome",
    "PipelinesResult",
    "PipelinesRoute",
    "WriteKey",
    "evaluate",
    "is_iso8601",
    "is_pipelines_path",
    "outcome",
    "route_for",
    "to_operation",
]
