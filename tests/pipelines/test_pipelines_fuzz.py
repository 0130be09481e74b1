"""Fuzz: the Pipelines contract never raises, and its results always hold together.

Arbitrary bytes (raw or gzipped), arbitrary JSON calls and arbitrary headers go through
``evaluate`` and ``outcome``. Whatever comes in: every call is either accepted exactly as sent
or dropped with at least one error, never both; strict answers are 200 with nothing dropped, or
401/400 with nothing kept; permissive answers are always 200 ``{}``.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pipelines_env import BASIC, STRICT, request

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import PipelinesResult, evaluate, outcome, to_operation
from trackguard.contract.pipelines import messages as m
from trackguard.contract.pipelines.check import full_iso8601, is_iso8601
from trackguard.contract.pipelines.routes import CALL_TYPES, ROUTES

PATHS = st.sampled_from([*ROUTES, "/v1/", "/v1/x", "/v1/batch/extra"])
KEYS = st.sampled_from(
    [
        "type", "userId", "anonymousId", "event", "name", "properties", "traits", "context",
        "integrations", "timestamp", "messageId", "groupId", "previousId", "sentAt", "writeKey",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
CALLS = st.dictionaries(KEYS, JSON | st.sampled_from(CALL_TYPES), max_size=8)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["authorization", "x-strict-mode", "content-encoding", "content-type"]),
        st.text(max_size=20),
    ),
    max_size=4,
)


def holds(req: Request, result: PipelinesResult) -> None:
    """The invariants of one result, under both judgements of its key."""
    indexes = [c.index for c in result.calls] + [d.index for d in result.dropped]
    assert len(indexes) == len(set(indexes)), "a call both accepted and dropped"
    assert all(d.errors for d in result.dropped)
    assert all(e.severity == "error" for e in result.errors)
    assert all(w.severity == "warning" for w in result.warnings)
    for call in result.calls:
        assert "writeKey" not in call.body
        assert call.body["type"] == call.type
        to_operation(call, req.path)
    for key_accepted in (True, False):
        done = outcome(result, key_accepted=key_accepted)
        assert done.status in (200, 400, 401, 404, 405)
        if done.status != 200:
            assert done.calls == ()
            parsed = json.loads(done.body)
            assert set(parsed) == {"code", "message", "meta"}
            assert parsed["meta"]["errors"]
        elif result.route is not None and result.route.kind != "metrics":
            assert done.body == b"{}"
            if not result.strict:
                assert done.calls == (result.calls if key_accepted else ())
            elif key_accepted:
                assert (done.calls, done.dropped) == (result.calls, ())


@settings(max_examples=300)
@given(path=PATHS, body=st.binary(max_size=300), headers=HEADERS, zipped=st.booleans())
@example(path="/v1/batch", body=b"\x1f\x8b\x08\x00", headers=[], zipped=False)
def test_arbitrary_bytes_never_raise(
    path: str, body: bytes, headers: list[tuple[str, str]], zipped: bool
) -> None:
    if zipped:
        body = gzip.compress(body)
        headers = [*headers, ("content-encoding", "gzip")]
    req = Request(method="POST", path=path, body=body, headers=tuple(headers))
    holds(req, evaluate(req))


@settings(max_examples=300)
@given(
    path=PATHS,
    calls=st.lists(CALLS | JSON, max_size=4),
    envelope=st.dictionaries(st.sampled_from(["context", "sentAt", "writeKey"]), JSON),
    strict=st.booleans(),
)
def test_arbitrary_json_calls_never_raise(
    path: str, calls: list[Any], envelope: dict[str, Any], strict: bool
) -> None:
    headers = (BASIC, STRICT) if strict else (BASIC,)
    body: Any = {"batch": calls, **envelope} if path.endswith("b") else (calls or [{}])[0]
    req = request(path, body, *headers)
    holds(req, evaluate(req))


@settings(max_examples=200)
@given(call=CALLS)
def test_a_call_is_judged_the_same_alone_and_inside_a_batch(call: dict[str, Any]) -> None:
    kind = call.get("type")
    in_batch = evaluate(request("/v1/batch", {"batch": [call]}, BASIC))
    if not isinstance(kind, str) or kind not in CALL_TYPES:
        assert [e.code for e in in_batch.errors][:1] == ["type_invalid"]
        return
    alone = evaluate(request(f"/v1/{kind}", call, BASIC))
    assert [(e.code, e.field) for e in alone.errors] == [
        (e.code, e.field.removeprefix("batch[0]").removeprefix(".")) for e in in_batch.errors
    ]
    assert len(alone.calls) == len(in_batch.calls)


@settings(max_examples=60)
@given(size=st.integers(m.MAX_CALL_BYTES - 40, m.MAX_CALL_BYTES + 40))
def test_a_call_is_dropped_exactly_when_it_is_over_32_kb(size: int) -> None:
    shell = {"type": "track", "userId": "u", "event": "E", "properties": {"p": ""}}
    pad = size - len(json.dumps(shell, separators=(",", ":")))
    call = {**shell, "properties": {"p": "x" * pad}}
    other = {"type": "track", "userId": "v", "event": "E"}
    result = evaluate(request("/v1/batch", {"batch": [other, call]}, BASIC))
    too_large = size > m.MAX_CALL_BYTES
    assert [e.code for e in result.errors] == (["call_too_large"] if too_large else [])
    assert [c.index for c in result.calls] == ([0] if too_large else [0, 1])


@settings(max_examples=100)
@given(
    key=st.text(
        st.characters(blacklist_characters=":", blacklist_categories=["Cs"]), min_size=1
    ).filter(lambda k: k.strip() == k and k != ""),
    password=st.text(st.characters(blacklist_categories=["Cs"])),
)
def test_basic_auth_yields_the_user_whatever_the_password(key: str, password: str) -> None:
    token = base64.b64encode(f"{key}:{password}".encode()).decode()
    result = evaluate(request("/v1/track", {}, ("authorization", f"Basic {token}")))
    assert result.write_key is not None
    assert (result.write_key.value, result.write_key.source) == (key, "basic")


SDK_TIMES = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".2", ".265", ".466172"]),
    st.sampled_from(["Z", "+00:00", "-05:30", "+23:59", "+24:00", "+05:60"]),
)


@settings(max_examples=300)
@given(value=SDK_TIMES | st.text(max_size=40))
def test_the_fast_timestamp_path_agrees_with_the_full_check(value: str) -> None:
    assert is_iso8601(value) is full_iso8601(value)


#: A valid call of each type, and the keys that each make it valid alone or together:
#: (type, call, groups); the call is accepted exactly when every group keeps one key.
REQUIRED: list[tuple[str, dict[str, Any], list[tuple[str, ...]]]] = [
    ("identify", {"userId": "u", "anonymousId": "a", "traits": {"email": "e@x.io"}},
     [("userId", "anonymousId", "traits")]),
    ("track", {"userId": "u", "anonymousId": "a", "event": "E"},
     [("userId", "anonymousId"), ("event",)]),
    ("page", {"userId": "u", "anonymousId": "a", "properties": {"url": "https://x.io"}},
     [("userId", "anonymousId")]),
    ("screen", {"userId": "u", "anonymousId": "a", "name": "Home"}, [("userId", "anonymousId")]),
    ("group", {"userId": "u", "groupId": "g"}, [("groupId",)]),
    ("alias", {"userId": "u", "previousId": "p"}, [("userId",), ("previousId",)]),
]  # fmt: skip


@settings(max_examples=200)
@given(case=st.sampled_from(REQUIRED), data=st.data())
def test_a_call_is_kept_exactly_when_its_required_fields_are(
    case: tuple[str, dict[str, Any], list[tuple[str, ...]]], data: st.DataObject
) -> None:
    kind, full, groups = case
    dropped = data.draw(st.sets(st.sampled_from(sorted(full))))
    call = {"type": kind, **{k: v for k, v in full.items() if k not in dropped}}
    kept = all(any(key not in dropped for key in group) for group in groups)
    result = evaluate(request("/v1/batch", {"batch": [call]}, BASIC))
    assert len(result.calls) == (1 if kept else 0)
    assert bool(result.errors) is not kept
