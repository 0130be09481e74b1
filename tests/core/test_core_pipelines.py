"""The core over Pipelines calls: the plan applied to ``api="pipelines"`` operations, dedupe
keys (the plan's business key, else ``pipelines:messageId:<id>``), strict answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import evaluate
from trackguard.core.pipelines import check_calls
from trackguard.core.plancheck import CompiledPlan
from trackguard.plan.loader import load_plan

PLAN = CompiledPlan(load_plan(Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"))
AT = "2024-06-01T12:00:00.123+00:00"


def batch(*calls: dict[str, Any], strict: bool = False) -> Any:
    headers = (("x-strict-mode", "1"),) if strict else ()
    body = json.dumps({"batch": list(calls)}).encode()
    return evaluate(Request(method="POST", path="/v1/batch", body=body, headers=headers))


def track(event: str, props: dict[str, Any], mid: str, user: str = "cust-1") -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": props,
            "messageId": mid, "timestamp": AT}  # fmt: skip


ORDER = {"order_id": "A-1001", "total": "49.90", "currency": "usd"}


def test_track_calls_are_renamed_and_fixed_and_keep_their_iso_timestamp() -> None:
    verdict = check_calls(batch(track("Order Completed", ORDER, "m-1")), PLAN)
    (op,) = verdict.operations
    assert op.api == "pipelines"
    assert op.body == {
        "type": "track",
        "userId": "cust-1",
        "event": "order_completed",
        "properties": {"order_id": "A-1001", "total": 49.9, "currency": "USD"},
        "messageId": "m-1",
        "timestamp": AT,
    }
    assert op.dedupe_key == "order_completed:A-1001"  # the plan's business key wins
    assert op.derive_total is None
    assert [(c.path, c.before, c.after) for c in verdict.changes] == [
        ("event", "Order Completed", "order_completed"),
        ("properties.total", "49.90", 49.9),
        ("properties.currency", "usd", "USD"),
    ]
    assert (verdict.outcome, verdict.status, verdict.response) == ("fixed", 200, b"{}")
    assert verdict.route == "POST /v1/batch"
    assert verdict.plan_version == "2026-11-01"


def test_calls_without_a_business_key_are_keyed_by_message_id_whatever_their_type() -> None:
    calls = [
        {"type": "identify", "userId": "cust-1", "traits": {"email": "d@example.com"},
         "messageId": "m-id"},
        {"type": "page", "userId": "cust-1", "properties": {"url": "https://x.example"},
         "messageId": "m-page"},
        {"type": "alias", "userId": "cust-1", "previousId": "anon-1", "messageId": "m-alias"},
        {"type": "track", "userId": "cust-1", "event": "product_viewed",
         "properties": {"product_id": "P-1"}},
    ]  # fmt: skip
    verdict = check_calls(batch(*calls), PLAN)
    keys = [op.dedupe_key for op in verdict.operations]
    assert keys[:3] == [
        "pipelines:messageId:m-id",
        "pipelines:messageId:m-page",
        "pipelines:messageId:m-alias",
    ]
    assert keys[3] is not None and keys[3].startswith("retry:")  # no messageId: content hash


def test_without_a_plan_only_the_contract_decides() -> None:
    verdict = check_calls(batch(track("Order Completed", ORDER, "m-1"), track("", {}, "m-2")))
    (op,) = verdict.operations
    assert op.body is not None and op.body["event"] == "Order Completed"
    assert op.dedupe_key == "pipelines:messageId:m-1"
    assert [(e.code, e.field, e.batch_index) for e in verdict.contract_errors] == [
        ("event_invalid", "batch[1].event", 1)
    ]
    assert (verdict.outcome, verdict.status, verdict.response) == ("invalid", 200, b"{}")


class _Known:
    def id_for_email(self, email: str) -> str | None:
        return {"dana@example.com": "cust-9"}.get(email)

    def id_for_folded(self, folded: str) -> str | None:
        return None

    def last_order_at(self, person: str) -> int | None:
        return None


def _plan_with(identity: str) -> CompiledPlan:
    policy = msgspec.structs.replace(PLAN.plan.identity, email_keyed=identity)
    return CompiledPlan(msgspec.structs.replace(PLAN.plan, identity=policy))


def test_an_email_keyed_call_is_handled_per_the_identity_policy() -> None:
    cart = track("cart_updated", {"cart_id": "C-1"}, "m-cart", user="dana@example.com")
    warned = check_calls(batch(cart), PLAN)
    assert [(v.code, v.action) for v in warned.violations if v.rule != "contract"] == [
        ("identity_not_canonical", "warn")
    ]
    assert len(warned.operations) == 1
    rejected = check_calls(batch(cart), _plan_with("reject"))
    assert (rejected.operations, len(rejected.rejected), rejected.outcome) == ((), 1, "rejected")
    fixed = check_calls(batch(cart), _plan_with("fix"), state=_Known())
    (op,) = fixed.operations
    assert op.body is not None and op.body["userId"] == "cust-9"


def test_strict_mode_answers_plan_rejections_400_and_keeps_the_accepted_calls() -> None:
    bad = track("order_completed", {"total": 5}, "m-bad")  # no order_id, no currency
    good = track("product_viewed", {"product_id": "P-1"}, "m-good")
    verdict = check_calls(batch(good, bad, strict=True), PLAN)
    assert verdict.status == 400
    assert json.loads(verdict.response) == {
        "code": "plan_rejected",
        "message": "batch[1].properties.order_id: required property 'order_id' is missing",
        "meta": {
            "errors": [
                "batch[1].properties.order_id: required property 'order_id' is missing",
                "batch[1].properties.currency: required property 'currency' is missing",
            ]
        },
    }
    assert [op.batch_index for op in verdict.operations] == [0]
    assert [op.batch_index for op in verdict.rejected] == [1]
    assert check_calls(batch(good, bad), PLAN).status == 200  # permissive
    assert check_calls(batch(good, bad), PLAN, strict=True).status == 400  # --strict


_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_NAMES = st.sampled_from(["Order Completed", "order_completed", "cart_updated", "x y", ""])
_CALLS = st.fixed_dictionaries(
    {"type": st.sampled_from(["identify", "track", "page", "screen", "group", "alias", "x"])},
    optional={
        "userId": st.sampled_from(["cust-1", "d@example.com", "cio_1", ""]) | _ANY,
        "anonymousId": _ANY,
        "event": _NAMES | _ANY,
        "properties": st.dictionaries(st.sampled_from(["order_id", "total", "currency"]), _ANY)
        | _ANY,
        "traits": st.dictionaries(st.sampled_from(["email", "created_at"]), _ANY) | _ANY,
        "messageId": st.text(max_size=4) | _ANY,
        "timestamp": st.sampled_from([AT, "2024-02-30", "1717243200"]) | _ANY,
    },
)


@settings(max_examples=200)
@given(st.lists(_CALLS | _ANY, min_size=1, max_size=4), st.booleans())
def test_any_batch_gets_a_verdict_that_accounts_for_every_call(
    calls: list[Any], strict: bool
) -> None:
    verdict = check_calls(batch(*calls, strict=strict), PLAN)
    placed = {op.batch_index for op in (*verdict.operations, *verdict.rejected)}
    placed |= {e.batch_index for e in verdict.contract_errors}
    assert placed == set(range(len(calls)))
    assert verdict.status in (200, 400)
