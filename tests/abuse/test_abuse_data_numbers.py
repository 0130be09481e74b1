"""Numbers no double can hold: an integer beyond ±1.8e308 is refused like ``1e400``.

Customer.io cannot keep such a number (``1e400`` is refused by every JSON decoder that reads
into a double); trackguard used to pass a 400-digit integer while refusing ``1e400``. The fast
path and the full walk, with and without a plan, v1 and v2, must give the one answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.contract import Request
from trackguard.contract.check import decode_body
from trackguard.core.pipeline import Checker
from trackguard.plan.loader import load_plan

EVENTS = "/api/v1/customers/cus_1/events"
BATCH = "/api/v2/batch"
INVALID = (
    b'{\n  "meta": {\n    "errors": [\n      "request body must be valid JSON"\n    ]\n  }\n}\n'
)
#: The smallest integer ``float()`` refuses (it rounds up to 2**1024): the range's edge.
FIRST_OUT = 2**1024 - 2**970
PLAN = load_plan(Path(__file__).parents[2] / "examples" / "d2c-plan.yaml")
CHECKERS = (Checker(None), Checker(None, fast=False), Checker(PLAN), Checker(PLAN, fast=False))


def _event(value: int | str) -> bytes:
    return b'{"name":"signup","data":{"n":%s}}' % str(value).encode()


def test_the_edge_is_where_a_double_ends() -> None:
    float(FIRST_OUT - 1)  # the largest integer a double still holds (rounded)
    for n in (FIRST_OUT, -FIRST_OUT, 10**400):
        assert decode_body(str(n).encode()) == (False, None)
    assert decode_body(str(FIRST_OUT - 1).encode()) == (True, FIRST_OUT - 1)
    assert decode_body(b"1e400") == (False, None)


def test_a_400_digit_integer_is_answered_like_1e400() -> None:
    for checker in CHECKERS:
        for value in ("1e400", "9" * 400, "-" + "9" * 400):
            verdict = checker.check(Request(method="POST", path=EVENTS, body=_event(value)))
            assert (verdict.status, verdict.response) == (400, INVALID), (checker, value)
            assert [e.code for e in verdict.contract_errors] == ["invalid_json"]
            assert verdict.operations == ()


def test_a_long_digit_string_is_not_a_number() -> None:
    body = _event(json.dumps("9" * 400))
    for checker in CHECKERS:
        verdict = checker.check(Request(method="POST", path=EVENTS, body=body))
        assert verdict.status == 200 and len(verdict.operations) == 1


@settings(max_examples=150)
@given(
    magnitude=st.one_of(
        st.integers(min_value=0, max_value=FIRST_OUT - 1),
        st.integers(min_value=FIRST_OUT, max_value=10**1000),
    ),
    negative=st.booleans(),
    where=st.sampled_from(("v1", "v2", "nested")),
)
def test_integers_pass_exactly_when_a_double_holds_them(
    magnitude: int, negative: bool, where: str
) -> None:
    n = -magnitude if negative else magnitude
    if where == "v1":
        request = Request(method="POST", path=EVENTS, body=_event(n))
    else:
        data = str(n) if where == "v2" else f'{{"a":[1,{{"b":{n}}}]}}'
        item = '{"type":"person","action":"event","identifiers":{"id":"cus_1"},"name":"signup",'
        body = ('{"batch":[' + item + '"attributes":{"n":' + data + "}}]}").encode()
        request = Request(method="POST", path=BATCH, body=body)
    holds = magnitude < FIRST_OUT
    for checker in CHECKERS:
        verdict = checker.check(request)
        if holds:
            assert verdict.status == 200 and len(verdict.operations) == 1
        else:
            assert verdict.status == 400
            assert [e.code for e in verdict.contract_errors] == ["invalid_json"]
            assert verdict.operations == ()
