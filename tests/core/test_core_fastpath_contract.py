"""Without a plan, the contract-only fast path gives the full pipeline's verdict, or none.

``Checker(None)`` answers clean v1 track and identify calls without the full contract walk.
These tests run it beside ``Checker(None, fast=False)`` over the sample traffic, the contract
tests' own cases and generated bodies full of edge values, and compare whole verdicts (with and
without fallback dedupe keys). They also pin how often the fast path answers, so it cannot
silently stop firing.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trackguard.check.inputs import record_to_request
from trackguard.check.samples import BASE_TIME, DEMO_DEFECT_RATE, d2c_traffic
from trackguard.contract import messages as m
from trackguard.contract.operations import Request
from trackguard.contract.routes import ROUTES, match
from trackguard.core import fastpath
from trackguard.core.fastpath import FastContract
from trackguard.core.keys import ID_PREFIX, RETRY_PREFIX
from trackguard.core.pipeline import Checker
from trackguard.core.verdict import Verdict
from trackguard.plan.loader import load_plan
from trackguard.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]
FAST = Checker(None)
SLOW = Checker(None, fast=False)
FAST_NO_KEYS = Checker(None, fallback_keys=False)
SLOW_NO_KEYS = Checker(None, fast=False, fallback_keys=False)
EVENTS = "/api/v1/customers/u1/events"
U1 = "/api/v1/customers/u1"
ULID = "01HZY3J5G1W8Q8XKJ6Z9YF7N2M"
T = 1_764_000_000
EVENT_ROUTE = "POST /api/v1/customers/{identifier}/events"
IDENTIFY_ROUTE = "PUT /api/v1/customers/{identifier}"


def _fast(request: Request, checker: Checker = FAST) -> Verdict | None:
    """What the fast path alone answers (None: it leaves the request to the full path)."""
    assert isinstance(checker.fast, FastContract)
    return checker.fast.check(request, match(request.method, request.path))


def _same(a: Verdict, b: Verdict) -> None:
    """Field by field (operations too), so a failure names the field that differs."""
    assert msgspec.structs.asdict(a).keys() == msgspec.structs.asdict(b).keys()
    for name, value in msgspec.structs.asdict(a).items():
        other = getattr(b, name)
        if name in ("operations", "rejected"):
            assert len(value) == len(other), name
            for x, y in zip(value, other, strict=True):
                assert msgspec.structs.asdict(x) == msgspec.structs.asdict(y), name
        assert value == other, name
    assert a == b


def _compare(request: Request) -> Verdict | None:
    """Both paths agree, with and without fallback keys; returns what the fast path answered."""
    full = SLOW.check(request)
    _same(FAST.check(request), full)
    _same(FAST_NO_KEYS.check(request), SLOW_NO_KEYS.check(request))
    answered = _fast(request)
    if answered is not None:
        assert (answered.outcome, answered.status, answered.violations) == ("accepted", 200, ())
    return answered


def _clean(request: Request) -> bool:
    """A v1 track or identify call the contract finds nothing in."""
    verdict = SLOW.check(request)
    return (
        verdict.route in (EVENT_ROUTE, IDENTIFY_ROUTE)
        and verdict.outcome == "accepted"
        and not verdict.violations
    )


def _should_answer(request: Request) -> bool:
    """Clean, and not one of the clean calls the fast path leaves to the full path on purpose
    (an event named by a number, or a body over the event data limit)."""
    if not _clean(request):
        return False
    if SLOW.check(request).route == IDENTIFY_ROUTE:
        return True
    name = msgspec.json.decode(request.body).get("name")
    return isinstance(name, str) and len(request.body) <= m.MAX_EVENT_DATA_BYTES


def _requests(n: int, seed: int, rate: float) -> list[Request]:
    out = []
    for record in d2c_traffic(n, seed, rate, base_time=BASE_TIME):
        request = record_to_request(record, "sample")
        assert isinstance(request, Request)
        out.append(request)
    return out


# --- the sample traffic -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7, 11])
@pytest.mark.parametrize("rate", [DEMO_DEFECT_RATE, 0.1, 0.02])
def test_sample_traffic_same_verdicts_and_every_clean_call_is_fast(seed: int, rate: float) -> None:
    taken = clean = 0
    for request in _requests(1500, seed, rate):
        answered = _compare(request) is not None
        is_clean = _clean(request)
        assert answered == is_clean, request  # every clean call, and nothing else
        taken += answered
        clean += is_clean
    assert taken == clean > 1000


def test_how_many_sample_calls_take_the_fast_path() -> None:
    """A fixed corpus, a fixed count: fails if the fast path stops answering (or answers more)."""
    requests = _requests(3000, 11, DEMO_DEFECT_RATE)
    answered = [r for r in requests if _fast(r) is not None]
    assert (len(requests), len(answered)) == (3000, 2715)
    assert sum(r.method == "PUT" for r in answered) == 297  # every identify
    no_keys = [r for r in requests if _fast(r, FAST_NO_KEYS) is not None]
    assert len(no_keys) == len(answered)


def test_fast_answers_carry_fallback_keys_only_when_asked() -> None:
    for request in _requests(500, 3, 0.05):
        with_keys, without = _fast(request), _fast(request, FAST_NO_KEYS)
        if with_keys is None:
            assert without is None
            continue
        assert without is not None
        (op,) = with_keys.operations
        (bare,) = without.operations
        if op.action == "identify":
            assert op.dedupe_key is None
        else:
            assert op.dedupe_key is not None and op.dedupe_key.startswith(RETRY_PREFIX)
        assert bare.dedupe_key is None
        assert msgspec.structs.replace(op, dedupe_key=None) == bare


# --- the contract tests' own cases --------------------------------------------------------------


def _load(name: str) -> ModuleType:
    """A contract test module by path (test folders are not packages)."""
    path = ROOT / "tests" / "contract" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_fastpath_cases_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wire(body: Any) -> bytes:
    """As the contract tests send a body: bytes kept, None empty, else compact JSON."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _contract_cases() -> list[tuple[str, str, bytes]]:
    errors = _load("test_contract_errors")
    routes = _load("test_contract_routes")
    sdk = _load("test_contract_sdk_bodies")
    fuzz = _load("test_contract_fuzz")
    cases = [(c[0], c[1], _wire(c[2])) for c in [*errors.VERIFIED, *errors.UNVERIFIED]]
    cases += [(c[0], c[1], _wire(c[2])) for c in routes.VALID_CALLS]
    cases += [(c[0], c[1], c[2]) for c in sdk.QUIRKS]
    cases += [(m, p, b) for m, p in fuzz.BODY_ROUTES for b in fuzz.SPECIAL_BODIES]
    return cases


CONTRACT_CASES = _contract_cases()


def test_contract_test_cases_same_verdicts() -> None:
    assert len(CONTRACT_CASES) > 500
    answered = 0
    for method, path, body in CONTRACT_CASES:
        request = Request(method=method, path=path, body=body)
        taken = _compare(request) is not None
        assert taken == _should_answer(request), request
        answered += taken
    assert answered > 5


def _event(path: str = EVENTS, **body: Any) -> Request:
    return Request(method="POST", path=path, body=_wire(body))


def _identify(path: str = U1, body: Any = None) -> Request:
    return Request(method="PUT", path=path, body=_wire(body))


def _big_attributes(n: int) -> dict[str, Any]:
    return {f"a{i}": i for i in range(n)}


def _sized_event(size: int) -> bytes:
    """A clean track body of exactly ``size`` bytes."""
    body = b'{"name":"big","data":{"k":"' + b'"}}'
    return body[:-3] + b"x" * (size - len(body)) + body[-3:]


# (request, the fast path answers it)
BOUNDARIES: list[tuple[Request, bool]] = [
    (_event(name="e" * 100), True),
    (_event(name="e" * 101), False),
    (_event(name="€" * 33 + "e"), True),  # 100 bytes
    (_event(name="€" * 33 + "ee"), False),
    (_event(name="😀" * 25), True),
    (_event(name="  " + "e" * 100 + "  "), True),  # trimmed, no finding
    (_event(name="\te\n"), True),
    (_event(name=" \t "), False),
    (_event(name=""), False),
    (_event(name="e" * 500), False),
    (_event(name=123), False),  # accepted by the full path: numbers are stringified
    (_event(name=1.5), False),
    (_event(name=True), False),
    (_event(name="x", data=None), True),
    (_event(name="x", data={}), True),
    (_event(name="x", data=[]), False),
    (_event(name="x", data="sku=1"), False),
    (_event(name="x", type="event"), True),
    (_event(name="x", type="page"), True),
    (_event(name="x", type="screen"), True),
    (_event(name="x", type="track"), False),
    (_event(name="x", type=None), True),
    (_event(name="x", timestamp=T), True),
    (_event(name="x", timestamp=T * 1000), True),  # milliseconds: no contract finding
    (_event(name="x", timestamp=-1), True),
    (_event(name="x", timestamp=float(T)), False),
    (_event(name="x", timestamp=str(T)), False),
    (_event(name="x", timestamp=True), False),
    (_event(name="x", timestamp=None), True),
    (_event(name="x", id=ULID), True),
    (_event(name="x", id=ULID.lower()), True),
    (_event(name="x", id="8" + ULID[1:]), False),
    (_event(name="x", id="evt-1"), False),
    (_event(name="x", id=5), False),
    (_event(name="x", id=None), True),
    (_event("/api/v1/customers/a%40b.co/events", name="x"), True),
    (_event("/api/v1/customers/a@b.co/events", name="x"), True),
    (_event("/api/v1/customers/cio_abc/events", name="x"), True),
    (_event("/api/v1/customers/5/events", name="x"), True),
    (_event("/api/v1/customers/" + "x" * 150 + "/events", name="x"), True),
    (_event("/api/v1/customers/" + "x" * 151 + "/events", name="x"), False),
    (_event("/api/v1/customers/" + "%E2%82%AC" * 50 + "/events", name="x"), True),
    (_event("/api/v1/customers/" + "%E2%82%AC" * 50 + "x/events", name="x"), False),
    (_event("/api/v1/customers/cio_" + "x" * 151 + "/events", name="x"), True),
    (_event("/api/v1/customers/a%2Fb/events", name="x"), True),
    (_event("/api/v1/customers/u1/events?x=1", name="x"), True),
    (_event("/api/v1/customers//events", name="x"), False),
    (Request(method="post", path=EVENTS, body=b'{"name":"x"}'), True),
    (Request(method="POST", path=EVENTS, body=b'{"name":"a","name":"b"}'), True),
    (Request(method="POST", path=EVENTS, body=b'{"name":"a","name":""}'), False),
    (Request(method="POST", path=EVENTS, body=b'{"name":"","name":"a"}'), True),
    (Request(method="POST", path=EVENTS, body=b'{"name":"x","id":"e","id":null}'), True),
    (Request(method="POST", path=EVENTS, body=_sized_event(100_000)), True),
    (Request(method="POST", path=EVENTS, body=_sized_event(100_001)), False),
    (
        Request(method="POST", path=EVENTS, body=_wire({"name": "x", "data": {"k": "x" * 99_993}})),
        False,
    ),
    (
        Request(
            method="POST",
            path=EVENTS,
            body=b'{"name":"x","data":' + b'{"a":' * 63 + b"1" + b"}" * 64,
        ),
        True,
    ),  # 64 levels
    (
        Request(
            method="POST",
            path=EVENTS,
            body=b'{"name":"x","data":' + b'{"a":' * 64 + b"1" + b"}" * 65,
        ),
        False,
    ),  # 65 levels: invalid JSON
    (_identify(), True),
    (Request(method="PUT", path=U1, body=b" \n"), True),
    (_identify(body={}), True),
    (_identify(body={"id": None}), True),
    (_identify(body={"id": "u1"}), True),
    (_identify(body={"id": "U1"}), False),
    (_identify(body={"id": ""}), False),
    (_identify(body={"id": True}), False),
    (_identify(body={"id": 1.5}), False),
    (_identify("/api/v1/customers/5", {"id": 5}), True),
    (_identify("/api/v1/customers/5", {"id": 6}), False),
    (_identify("/api/v1/customers/bob%40x.com", {"id": "u2"}), True),
    (_identify("/api/v1/customers/cio_abc", {"id": "u2"}), True),
    (_identify("/api/v1/customers/" + "x" * 150, {"a": 1}), True),
    (_identify("/api/v1/customers/" + "x" * 151, {"a": 1}), False),
    (_identify(body=_big_attributes(300)), True),
    (_identify(body=_big_attributes(301)), False),
    (_identify(body={"n" * 150: 1}), True),
    (_identify(body={"n" * 151: 1}), False),
    (_identify(body={"€" * 50: 1}), True),
    (_identify(body={"€" * 50 + "n": 1}), False),
    (_identify(body={"plan": "x" * 1000}), True),
    (_identify(body={"plan": "x" * 1001}), False),
    (_identify(body={"plan": "€" * 333 + "x"}), True),
    (_identify(body={"plan": "€" * 333 + "xx"}), False),
    (_identify(body={"plan": ["x" * 996]}), True),
    (_identify(body={"plan": ["x" * 997]}), False),
    (_identify(body={"plan": {"k": "x" * 992}}), True),
    (_identify(body={"plan": {"k": "x" * 993}}), False),
    (_identify(body={"cio_relationships": {"r": "y" * 2000}}), True),
    (_identify(body={"cio_subscription_preferences": {"t": "y" * 2000}}), True),
    (Request(method="PUT", path=U1, body=b"[]"), False),
    (Request(method="PUT", path=U1, body=b"{"), False),
    (Request(method="PUT", path=U1, body=b'{"id":"u2","id":"u1"}'), True),
    (Request(method="DELETE", path=U1, body=b""), False),  # not a track or identify call
    (Request(method="POST", path="/api/v1/events", body=b'{"name":"x"}'), False),
]


@pytest.mark.parametrize(("request_", "answers"), BOUNDARIES)
def test_boundaries_same_verdict_and_which_the_fast_path_answers(
    request_: Request, answers: bool
) -> None:
    assert (_compare(request_) is not None) == answers


# --- generated v1 bodies ------------------------------------------------------------------------


class Raw(msgspec.Struct, frozen=True):
    """JSON text written into a generated body as it is."""

    text: bytes


def _json(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _object(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object from key/value pairs: keys may repeat."""
    return b"{" + b",".join(_json(k) + b":" + _json(v) for k, v in pairs) + b"}"


def _nested(depth: int) -> Raw:
    return Raw(b'{"a":' * depth + b"1" + b"}" * depth)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
NAMES = st.one_of(
    st.sampled_from(
        [
            "signed_up",
            "e" * 99,
            "e" * 100,
            "e" * 101,
            "€" * 33 + "e",
            "€" * 33 + "ee",
            "€" * 34,
            "😀" * 25,
            "😀" * 25 + "e",
            " e ",
            "\te",
            "e\n",
            "\u00a0e\u2003",
            "\u3000",
            "",
            " ",
            "e" * 499,
            "e" * 500,
            "名前",
            "Order Completed",
        ]
    ),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, False, None, ["x"], {"a": 1}]),
    st.text(max_size=10),
)
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [T, T * 1000, -1, 0, float(T), T + 0.5, str(T), "2025-11-24T16:00:00Z", True, False, None]
    ),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([[T], {"t": T}, ""]),
)
EVENT_IDS = st.one_of(
    st.sampled_from(
        [ULID, ULID.lower(), "8" + ULID[1:], ULID[:-1], ULID + "0", "evt-1", "", None, 5, True]
    ),
    st.from_regex(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", fullmatch=True),
    st.text(max_size=4),
    st.sampled_from([[ULID], {"id": ULID}]),
)
TYPES = st.sampled_from([None, "event", "page", "screen", "track", "Page", "", 1, True, ["page"]])
DATA = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=6), _values, max_size=4),
    _values,
    st.sampled_from(
        [
            Raw(_json({"k": "x" * 99_980})),
            Raw(_json({"k": "x" * 99_992})),
            Raw(_json({"k": "x" * 99_993})),
            Raw(_json({"k": "€" * 33_330})),
            _nested(62),
            _nested(63),
            _nested(64),
            Raw(b'{"a":1,"a":2}'),
            Raw(b'{"a":{"b":1},"a":[]}'),
        ]
    ),
)
IDENTIFIERS = st.one_of(
    st.sampled_from(
        [
            "u1",
            "5",
            "0",
            "-1",
            "1.5",
            "a@b.co",
            "a%40b.co",
            "A@B.CO",
            "bob+1@x.io",
            "a@b",
            " a@b.co",
            "cio_abc",
            "cio_",
            "x" * 150,
            "x" * 151,
            "€" * 50,
            "€" * 50 + "x",
            "%E2%82%AC" * 50,
            "%E2%82%AC" * 50 + "x",
            "cio_" + "x" * 200,
            "a%2Fb",
            "%20",
            "%",
            "%ZZ",
            "%ff",
            "%ED%A0%80",
            "😀",
            "",
        ]
    ),
    st.text(st.characters(blacklist_characters="/?#"), min_size=1, max_size=8),
)
ATTRIBUTE_NAMES = st.one_of(
    st.sampled_from(
        [
            "id",
            "email",
            "plan",
            "n" * 150,
            "n" * 151,
            "€" * 50,
            "€" * 50 + "n",
            "",
            "cio_relationships",
            "cio_subscription_preferences",
        ]
    ),
    st.text(max_size=6),
)
ATTRIBUTE_VALUES = st.one_of(
    _values,
    st.sampled_from(
        [
            "x" * 250,
            "x" * 251,
            "x" * 1000,
            "x" * 1001,
            "€" * 250,
            "€" * 333 + "x",
            "€" * 333 + "xx",
            "😀" * 250,
            "😀" * 250 + "x",
            ["x" * 996],
            ["x" * 997],
            {"k": "x" * 992},
            {"k": "x" * 993},
            Raw(b"1" + b"0" * 999),
            Raw(b"1" + b"0" * 1000),
            _nested(63),
            _nested(64),
        ]
    ),
)
IDENTIFY_IDS = st.one_of(
    st.sampled_from([None, "", True, False, 1.5, ["u1"], {"id": "u1"}, "u1", "U1", 5, 0, "5"]),
    _scalars,
)


#: Values with no contract finding, drawn more often than the edges so both paths get work.
USUAL: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["signed_up", "e" * 100, "€" * 33 + "e", "😀" * 25, " e ", "名前"])
    | st.text(min_size=1, max_size=10).filter(str.strip),
    "data": st.none() | st.dictionaries(st.text(max_size=6), _values, max_size=4),
    "timestamp": st.sampled_from([T, T * 1000, 0, -1]) | st.integers(-(10**20), 10**20),
    "id": st.from_regex(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}", fullmatch=True),
    "type": st.sampled_from([None, "event", "page", "screen"]),
    "identifier": st.sampled_from(
        ["u1", "5", "a@b.co", "a%40b.co", "cio_abc", "x" * 150, "%E2%82%AC" * 50]
    ),
}
EDGES: dict[str, st.SearchStrategy[Any]] = {
    "name": NAMES,
    "data": DATA,
    "timestamp": TIMESTAMPS,
    "id": EVENT_IDS,
    "type": TYPES,
    "identifier": IDENTIFIERS,
}


def _field(draw: st.DrawFn, key: str) -> Any:
    """A usual value two times in three, else an edge value."""
    return draw(USUAL[key] if draw(st.integers(0, 2)) else EDGES[key])


@st.composite
def event_requests(draw: st.DrawFn) -> Request:
    pairs: list[tuple[str, Any]] = []
    for key in ("name", "data", "timestamp", "id", "type"):
        if draw(st.integers(0, 3)):  # present three times in four
            pairs.append((key, _field(draw, key)))
    if not draw(st.integers(0, 3)):
        keys = st.sampled_from(["name", "data", "timestamp", "id", "type", "anonymous_id", "x"])
        pairs += draw(st.lists(st.tuples(keys, _values), max_size=2))  # may repeat a key
    pairs = draw(st.permutations(pairs))
    identifier = _field(draw, "identifier")
    query = draw(st.sampled_from(["", "", "", "?x=1"]))
    method = draw(st.sampled_from(["POST", "POST", "POST", "post"]))
    body = _object(pairs)
    if draw(st.integers(0, 19)) == 0:
        body = draw(st.sampled_from([b"", b" ", b"[]", b"null", b"{", b'"x"', b"\xef\xbb\xbf{}"]))
    return Request(method=method, path=f"/api/v1/customers/{identifier}/events{query}", body=body)


@st.composite
def identify_requests(draw: st.DrawFn) -> Request:
    identifier = _field(draw, "identifier")
    pairs: list[tuple[str, Any]] = []
    if draw(st.booleans()):
        decoded = unquote(identifier)  # what the path carries, as an id in the body
        same = [decoded, *([int(decoded)] if decoded.isascii() and decoded.isdigit() else [])]
        pairs.append(("id", draw(st.sampled_from(same) | IDENTIFY_IDS)))
    pairs += draw(st.lists(st.tuples(ATTRIBUTE_NAMES, ATTRIBUTE_VALUES), max_size=5))
    pairs = draw(st.permutations(pairs))
    size = draw(st.sampled_from([0, 0, 0, 0, 294, 295, 296, 300]))
    pairs += [(f"a{i}", i) for i in range(size)]
    body = _object(pairs)
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([b"", b"  ", b"\n", b"[]", b"null", b"{", b"1"]))
    query = draw(st.sampled_from(["", "", "", "?x=1"]))
    return Request(method="PUT", path=f"/api/v1/customers/{identifier}{query}", body=body)


FUZZ = settings(
    max_examples=600,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(event_requests())
@example(Request(method="POST", path=EVENTS, body=b'{"name":"x","data":null,"timestamp":1}'))
@example(Request(method="POST", path=EVENTS, body=b'{"name":"x","timestamp":1e3}'))
@example(Request(method="POST", path=EVENTS, body=b'{"name":"\\ud800"}'))
# A lone surrogate in the path (a JSON log line can carry one): no content key, no crash.
@example(Request(method="POST", path="/api/v1/customers/\ud800/events", body=b'{"name":"x"}'))
def test_generated_track_calls_same_verdict(request_: Request) -> None:
    assert (_compare(request_) is not None) == _should_answer(request_)


@FUZZ
@given(identify_requests())
@example(Request(method="PUT", path="/api/v1/customers/5", body=b'{"id":5,"id":"5"}'))
@example(Request(method="PUT", path=U1, body=b'{"a":"\\udc00"}'))
def test_generated_identify_calls_same_verdict(request_: Request) -> None:
    assert (_compare(request_) is not None) == _should_answer(request_)


@settings(max_examples=200)
@given(st.sampled_from(ROUTES), st.sampled_from(["u1", "a%40b.co", ""]), _values)
def test_other_routes_are_left_to_the_full_path(route: Any, ident: str, value: Any) -> None:
    path = route.template.replace("{identifier}", ident).replace("{device_id}", "d")
    path = path.replace("{segment_id}", "1").replace("{form_id}", "f").replace("{delivery_id}", "x")
    request = Request(method=route.method, path=path, body=_json(value))
    answered = _compare(request)
    if route.action not in ("event", "identify"):
        assert answered is None


# --- fallback_keys=False --------------------------------------------------------------------------

PLAN = load_plan(ROOT / "examples" / "d2c-plan.yaml")
ORDER = {"order_id": "ORD-1", "total": 10.5, "currency": "USD"}


@pytest.mark.parametrize("fast", [True, False])
def test_without_fallback_keys_events_have_no_dedupe_key(fast: bool) -> None:
    with_keys = Checker(None, fast=fast)
    without = Checker(None, fast=fast, fallback_keys=False)
    cases = [
        (_event(name="signed_up", timestamp=T), None),
        (_event(name="signed_up", id=ULID), ID_PREFIX + ULID),
        (_event(name="signed_up", id="not-a-ulid"), "id:not-a-ulid"),  # the full path decides
        (_event(name="Home", type="screen"), None),
        (_event(name="x", timestamp="2025-11-24T16:00:00Z"), None),  # warned, still sent
    ]
    for request, key in cases:
        (op,) = with_keys.check(request).operations
        if key is None:
            assert op.dedupe_key is not None and op.dedupe_key.startswith(RETRY_PREFIX)
        else:
            assert op.dedupe_key == key
        (bare,) = without.check(request).operations
        assert bare.dedupe_key is None
        assert msgspec.structs.replace(op, dedupe_key=None) == bare
    batch = {
        "batch": [
            {"type": "person", "action": "event", "identifiers": {"id": "u1"}, "name": "a"},
            {"type": "person", "action": "identify", "identifiers": {"id": "u1"}},
            {
                "type": "person",
                "action": "page",
                "identifiers": {"id": "u1"},
                "name": "/",
                "id": ULID,
            },
        ]
    }
    request = Request(method="POST", path="/api/v2/batch", body=_wire(batch))
    assert [op.dedupe_key for op in without.check(request).operations] == [None, None, None]
    keys = [op.dedupe_key for op in with_keys.check(request).operations]
    assert keys[1:] == [None, ID_PREFIX + ULID]
    assert keys[0] is not None and keys[0].startswith(RETRY_PREFIX)


@pytest.mark.parametrize("fast", [True, False])
def test_without_fallback_keys_the_plan_keys_stay(fast: bool) -> None:
    with_keys = Checker(PLAN, fast=fast)
    without = Checker(PLAN, fast=fast, fallback_keys=False)
    order = _event(
        "/api/v1/customers/cus_1/events", name="order_completed", data=ORDER, timestamp=T
    )
    fixed = _event(  # the full path: total is fixed from a string
        "/api/v1/customers/cus_1/events",
        name="order_completed",
        data={**ORDER, "total": "10.50"},
        id=ULID,
    )
    viewed = _event(
        "/api/v1/customers/cus_1/events",
        name="product_viewed",
        data={"product_id": "p1", "sku": "SKU-P1", "name": "Mug", "price": 12.0},
        timestamp=T,
    )
    for checker in (with_keys, without):
        assert [op.dedupe_key for op in checker.check(order).operations] == [
            "order_completed:ORD-1"
        ]
        assert [op.dedupe_key for op in checker.check(fixed).operations] == [
            "order_completed:ORD-1"
        ]
    assert [op.dedupe_key for op in without.check(viewed).operations] == [None]
    (op,) = with_keys.check(viewed).operations
    assert op.dedupe_key is not None and op.dedupe_key.startswith(RETRY_PREFIX)
    assert (with_keys.fast is not None) == fast


@pytest.mark.parametrize("plan", [PLAN, None], ids=["plan", "no-plan"])
def test_without_fallback_keys_fast_and_full_paths_agree_on_sample_traffic(
    plan: Plan | None,
) -> None:
    fast = Checker(plan, fallback_keys=False)
    full = Checker(plan, fast=False, fallback_keys=False)
    keyed = Checker(plan, fast=False)
    for request in _requests(1500, 5, DEMO_DEFECT_RATE):
        verdict = fast.check(request)
        _same(verdict, full.check(request))
        expected = [
            op.dedupe_key
            if op.dedupe_key is not None and not op.dedupe_key.startswith((ID_PREFIX, RETRY_PREFIX))
            else None
            for op in keyed.check(request).operations
        ]
        assert [op.dedupe_key for op in verdict.operations] == expected


def test_path_people_are_kept_classified_within_a_bound() -> None:
    """The fast path keeps each path identifier's classification (a log repeats its people);
    full, the cache starts again, and every verdict is still the full path's."""
    checker = Checker(None)
    assert isinstance(checker.fast, FastContract)
    assert checker.fast.people_limit == fastpath.PERSON_CACHE
    checker.fast.people_limit = 3
    long_id = "x" * (m.MAX_PERSON_ID_BYTES + 1)  # the full path warns: not answered here
    people = ["u1", "a@b.io", "cio_0301", long_id, "u1", "%ff", "u1", long_id, "a@b.io"]
    for person in people * 2:
        body = b'{"name":"Viewed","timestamp":%d}' % T
        request = Request(method="POST", path=f"/api/v1/customers/{person}/events", body=body)
        _same(checker.check(request), SLOW.check(request))
        assert len(checker.fast.people) <= 3
    assert checker.fast.people.get(long_id, "absent") in (None, "absent")
