"""Identity over Pipelines calls: a group's member and an alias's userId under the identity
policy, what accepted calls teach the store (anonymous activity, links at login and by alias),
and the batch envelope (``sentAt``, ``context``) carried onto every call."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import Call, evaluate, is_iso8601
from trackguard.contract.pipelines.operations import with_envelope
from trackguard.core.pipelines import Learned, check_calls, learned
from trackguard.core.plancheck import CompiledPlan
from trackguard.core.verdict import Verdict
from trackguard.ingest import pipelines_write
from trackguard.plan.loader import parse_plan

AT = "2024-06-01T12:00:00.123+00:00"
SENT = "2024-06-01T12:00:01.466172+00:00"


def compiled(
    identity: str = "{canonical: id, email_keyed: warn, anonymous: allow}",
) -> CompiledPlan:
    return CompiledPlan(parse_plan(f"version: 1\nidentity: {identity}\nevents: {{}}\n"))


def run(*calls: dict[str, Any], plan: CompiledPlan | None = None, **envelope: Any) -> Verdict:
    body = json.dumps({"batch": list(calls), **envelope}).encode()
    result = evaluate(Request(method="POST", path="/v1/batch", body=body))
    return check_calls(result, plan if plan is not None else compiled())


def plan_findings(verdict: Verdict) -> list[tuple[str, str, str, str]]:
    return [
        (v.code, v.path, v.action, v.message) for v in verdict.violations if v.rule != "contract"
    ]


class _Known:
    def id_for_email(self, email: str) -> str | None:
        return {"lee@example.com": "cust-7"}.get(email)

    def id_for_folded(self, folded: str) -> str | None:
        return None

    def last_order_at(self, person: str) -> int | None:
        return None


GROUP = {"type": "group", "groupId": "acme", "traits": {"objectTypeId": "1"}, "messageId": "g"}


def test_a_groups_member_keyed_by_email_is_flagged_and_the_object_stays_its_identifier() -> None:
    verdict = run({**GROUP, "userId": "lee@example.com"})
    assert plan_findings(verdict) == [
        (
            "identity_not_canonical",
            "userId",
            "warn",
            "person addressed by email; the plan's canonical identifier is id",
        )
    ]
    (op,) = verdict.operations
    assert (op.type, op.action, op.identifier) == ("object", "add_relationships", op.identifier)
    assert op.identifier is not None and op.identifier.value == "1:acme"


def test_a_groups_member_is_rewritten_to_the_known_id_under_email_keyed_fix() -> None:
    plan = compiled("{canonical: id, email_keyed: fix}")
    body = json.dumps({"batch": [{**GROUP, "userId": "lee@example.com"}]}).encode()
    result = evaluate(Request(method="POST", path="/v1/batch", body=body))
    verdict = check_calls(result, plan, state=_Known())
    (op,) = verdict.operations
    assert op.body is not None and op.body["userId"] == "cust-7"
    assert op.identifier is not None and op.identifier.value == "1:acme"
    assert [(c.path, c.before, c.after) for c in verdict.changes] == [
        ("userId", "lee@example.com", "cust-7")
    ]


def test_an_anonymous_group_member_takes_the_anonymous_policy() -> None:
    plan = compiled("{anonymous: reject}")
    verdict = run({**GROUP, "anonymousId": "anon-1"}, plan=plan)
    assert plan_findings(verdict) == [
        (
            "identity_anonymous",
            "anonymous_id",
            "reject",
            "anonymous event: the plan does not allow anonymous activity",
        )
    ]
    assert verdict.operations == ()


def test_an_alias_into_an_email_shaped_user_id_is_caught_by_the_identity_policy() -> None:
    plan = compiled("{canonical: id, email_keyed: reject}")
    alias = {"type": "alias", "userId": "lee@example.com", "previousId": "guest-7"}
    verdict = run(alias, plan=plan)
    assert [(f[0], f[1], f[2]) for f in plan_findings(verdict)] == [
        ("identity_not_canonical", "userId", "reject")
    ]
    assert verdict.operations == ()
    # previousId may be an id, an email or a cio_ id: merging an email-keyed profile into the
    # id is how such profiles are repaired, so it is not flagged.
    repair = run({"type": "alias", "userId": "cust-7", "previousId": "lee@example.com"}, plan=plan)
    assert plan_findings(repair) == []


def _taught(*calls: dict[str, Any]) -> list[Learned]:
    return [learned(op) for op in run(*calls).operations]


def test_login_links_the_anonymous_activity_and_binds_the_email() -> None:
    cart = {"type": "track", "anonymousId": "anon-cart", "event": "cart_updated"}
    login = {"type": "identify", "userId": "cust-7", "anonymousId": "anon-cart",
             "traits": {"email": " Lee@Example.com "}}  # fmt: skip
    page = {"type": "page", "anonymousId": "anon-2", "name": "Pricing"}
    assert _taught(cart, login, page) == [
        Learned(anonymous=(("anon-cart", "cart_updated"),)),
        Learned(
            links=(("lee@example.com", "cust-7"),), anonymous_links=(("anon-cart", "id:cust-7"),)
        ),
        Learned(anonymous=(("anon-2", "Pricing"),)),
    ]


def test_an_alias_links_its_previous_id_and_binds_an_email_previous_id() -> None:
    assert _taught(
        {"type": "alias", "userId": "cust-7", "previousId": "guest-7"},
        {"type": "alias", "userId": "cust-7", "previousId": "lee@example.com"},
        {"type": "alias", "userId": "lee@example.com", "previousId": "guest-8"},
    ) == [
        Learned(anonymous_links=(("guest-7", "id:cust-7"),)),
        Learned(
            links=(("lee@example.com", "cust-7"),),
            anonymous_links=(("lee@example.com", "id:cust-7"),),
        ),
        Learned(anonymous_links=(("guest-8", "email:lee@example.com"),)),
    ]


def test_identified_tracks_groups_and_anonymous_identifies_teach_nothing() -> None:
    assert _taught(
        {"type": "track", "userId": "cust-7", "anonymousId": "a", "event": "x"},
        {**GROUP, "userId": "cust-7"},
        {"type": "identify", "anonymousId": "a", "traits": {"email": "x@example.com"}},
    ) == [Learned(), Learned(), Learned()]


def test_a_conflicting_identify_binds_nothing_but_still_links_its_anonymous_id() -> None:
    (op,) = run({"type": "identify", "userId": "cust-8", "anonymousId": "a",
                 "traits": {"email": "lee@example.com"}}).operations  # fmt: skip
    assert learned(op, conflicted=True) == Learned(anonymous_links=(("a", "id:cust-8"),))


def test_the_store_write_carries_what_the_calls_taught() -> None:
    calls = [
        {"type": "track", "anonymousId": "anon-cart", "event": "cart_updated", "messageId": "1"},
        {"type": "identify", "userId": "cust-7", "anonymousId": "anon-cart",
         "traits": {"email": "lee@example.com"}, "messageId": "2"},
    ]  # fmt: skip
    body = json.dumps({"batch": calls}).encode()
    request = Request(method="POST", path="/v1/batch", body=body)
    result = evaluate(request)
    write = pipelines_write(request, result.dropped, check_calls(result, compiled()), 1.0)
    assert (write.links, write.anonymous, write.anonymous_links) == (
        (("lee@example.com", "cust-7"),),
        (("anon-cart", "cart_updated"),),
        (("anon-cart", "id:cust-7"),),
    )


# -- the batch envelope --------------------------------------------------------------------------


def test_the_batchs_sent_at_and_context_go_onto_every_call() -> None:
    calls = [
        {"type": "track", "userId": "u", "event": "x", "context": {"ip": "1.2.3.4"}},
        {"type": "track", "userId": "u", "event": "y", "sentAt": AT},
        {"type": "track", "userId": "u", "event": "z", "context": {"library": {"name": "own"}}},
    ]
    context = {"library": {"name": "batch"}, "locale": "fr-FR"}
    verdict = run(*calls, sentAt=SENT, context=context, _metadata={"x": 1})
    bodies = [op.body for op in verdict.operations]
    assert bodies == [
        {**calls[0], "context": {"library": {"name": "batch"}, "locale": "fr-FR", "ip": "1.2.3.4"},
         "sentAt": SENT},
        {**calls[1], "context": context},  # its own sentAt wins
        {**calls[2], "context": {"library": {"name": "own"}, "locale": "fr-FR"}, "sentAt": SENT},
    ]  # fmt: skip


def test_an_envelope_the_contract_refused_is_not_copied() -> None:
    verdict = run({"type": "track", "userId": "u", "event": "x"}, sentAt="yesterday", context=[1])
    (op,) = verdict.operations
    assert op.body == {"type": "track", "userId": "u", "event": "x"}
    assert [e.code for e in verdict.contract_errors] == ["timestamp_invalid", "not_an_object"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    body=st.dictionaries(st.sampled_from(["context", "sentAt", "event", "x"]), _json, max_size=4),
    envelope=st.dictionaries(
        st.sampled_from(["context", "sentAt", "_metadata"]), _json | st.just(SENT)
    ),
)
def test_with_envelope_only_fills_in_what_the_call_does_not_say(
    body: dict[str, Any], envelope: dict[str, Any]
) -> None:
    before = msgspec.json.encode(body)
    out = with_envelope(Call(type="track", body=body, index=3), envelope)
    assert msgspec.json.encode(body) == before  # the call as sent is never mutated
    assert (out.type, out.index) == ("track", 3)
    assert {k: v for k, v in out.body.items() if k not in ("context", "sentAt")} == {
        k: v for k, v in body.items() if k not in ("context", "sentAt")
    }
    sent_at = envelope.get("sentAt")
    if body.get("sentAt") is None and is_iso8601(sent_at):
        assert out.body["sentAt"] == sent_at
    else:
        assert out.body.get("sentAt", "absent") == body.get("sentAt", "absent")
    shared, own = envelope.get("context"), body.get("context")
    if isinstance(shared, dict) and shared:
        assert out.body["context"] == ({**shared, **own} if isinstance(own, dict) else shared)
    else:
        assert out.body.get("context", "absent") == body.get("context", "absent")
