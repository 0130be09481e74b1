"""What a Pipelines request commits (``ingest.pipelines_write``): every call accounted for once,
as an outbox row or a quarantine record, and the write key in neither, whatever the calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate
from trackguard.core.pipelines import check_calls
from trackguard.core.plancheck import CompiledPlan
from trackguard.ingest import pipelines_write
from trackguard.plan.loader import load_plan

PLAN = CompiledPlan(load_plan(Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"))
SECRET = "wk-secret-0123456789"
_VALUE = st.none() | st.booleans() | st.integers() | st.text(max_size=6)
_CALL = st.fixed_dictionaries(
    {"type": st.sampled_from(["identify", "track", "page", "group", "alias", "nope"])},
    optional={
        "userId": st.sampled_from(["cust-1", "x@example.com"]) | _VALUE,
        "event": st.sampled_from(["Order Completed", "", "cart_updated"]) | _VALUE,
        "properties": st.dictionaries(st.sampled_from(["order_id", "total"]), _VALUE) | _VALUE,
        "messageId": st.text(min_size=1, max_size=4) | _VALUE,
        "writeKey": st.just(SECRET),
        "groupId": _VALUE,
        "previousId": _VALUE,
    },
)


@settings(max_examples=200)
@given(st.lists(_CALL | _VALUE, max_size=5), st.booleans(), st.booleans())
def test_every_call_is_kept_once_and_the_key_nowhere(
    calls: list[Any], strict: bool, single: bool
) -> None:
    body: dict[str, Any] = {"batch": calls, "writeKey": SECRET}
    path = "/v1/b"
    if single and calls and isinstance(calls[0], dict):
        body, path = {**calls[0], "writeKey": SECRET}, "/v1/t"
    headers = (("x-strict-mode", "1"),) if strict else ()
    request = Request(method="POST", path=path, body=json.dumps(body).encode(), headers=headers)
    result = evaluate(request)
    assert result.write_key is not None and result.write_key.value == SECRET
    verdict = check_calls(result, PLAN)
    write = pipelines_write(request, result.dropped, verdict, 1.0, PLAN.plan.dedupe, SECRET)
    n = 1 if path == "/v1/t" else len(calls)
    assert len(write.outbox) + len(write.quarantine) == n
    kept = [r.batch_index for r in write.quarantine] + [op.batch_index for op in verdict.operations]
    assert sorted(kept, key=lambda i: -1 if i is None else i) == (
        [None] if path == "/v1/t" else list(range(n))
    )
    for blob in [r.payload for r in write.outbox] + [r.body + r.findings for r in write.quarantine]:
        assert SECRET.encode() not in blob


def test_a_dropped_call_is_listed_under_its_event_else_its_page_or_screen_name() -> None:
    calls = [
        {"type": "track", "event": "  Order Completed  "},
        {"type": "page", "name": " Home ", "event": "   "},
        {"type": "screen", "name": "Cart"},
        {"type": "track", "event": "", "name": 7},
        {"type": "track", "event": "x" * 300},
    ]
    body = {"batch": calls, "writeKey": SECRET}  # no userId nor anonymousId: all dropped
    request = Request(method="POST", path="/v1/b", body=json.dumps(body).encode())
    result = evaluate(request)
    verdict = check_calls(result, PLAN)
    write = pipelines_write(request, result.dropped, verdict, 1.0, PLAN.plan.dedupe, SECRET)
    assert [(r.batch_index, r.event_name) for r in write.quarantine] == [
        (0, "Order Completed"),
        (1, "Home"),
        (2, "Cart"),
        (3, None),
        (4, "x" * 200),
    ]
