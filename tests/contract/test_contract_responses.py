"""Response bodies: ``render()`` answers byte for byte what Customer.io answers.

SDKs parse these bodies (node reads ``meta.error`` then ``meta.errors``; the Go SDK only
accepts 200), so the shape per status and route is pinned here, including how attribute names
with quotes or non-ASCII characters end up inside a message.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trackguard.contract import ContractError, ContractResult, render
from trackguard.contract.responses import CONTENT_TYPE, OK_BODY, v1_error, v1_errors, v2_errors
from trackguard.contract.routes import ROUTES

ROUTE = {r.key: r for r in ROUTES}
IDENTIFY = ROUTE["PUT /api/v1/customers/{identifier}"]
MERGE = ROUTE["POST /api/v1/merge_customers"]
FORM = ROUTE["POST /api/v1/forms/{form_id}/submit"]
ENTITY = ROUTE["POST /api/v2/entity"]
BATCH = ROUTE["POST /api/v2/batch"]


def err(message: str, index: int | None = None, field: str = "f") -> ContractError:
    return ContractError(code="c", message=message, field=field, batch_index=index)


def test_constants() -> None:
    assert OK_BODY == b"{}\n"
    assert CONTENT_TYPE == "application/json; charset=utf-8"


def test_success_is_an_empty_object_and_a_newline() -> None:
    assert render(ContractResult(status=200, route=IDENTIFY)) == (200, b"{}\n")
    assert render(ContractResult(status=200, route=BATCH)) == (200, b"{}\n")
    warned = ContractResult(status=200, route=IDENTIFY, warnings=(err("w"),))
    assert render(warned) == (200, b"{}\n")


def test_form_success_is_204_without_body() -> None:
    assert render(ContractResult(status=204, route=FORM)) == (204, b"")


def test_v1_errors_keep_order() -> None:
    result = ContractResult(status=400, route=IDENTIFY, errors=(err("b"), err("a"), err("b")))
    assert render(result) == (
        400,
        b'{\n  "meta": {\n    "errors": [\n      "b",\n      "a",\n      "b"\n    ]\n  }\n}\n',
    )


def test_merge_answers_one_string() -> None:
    result = ContractResult(status=400, route=MERGE, errors=(err("first"), err("second")))
    assert render(result) == (400, b'{\n  "meta": {\n    "error": "first"\n  }\n}\n')


def test_v2_400_never_shows_batch_index() -> None:
    result = ContractResult(status=400, route=BATCH, errors=(err("m", index=3, field="batch"),))
    assert render(result) == (
        400,
        b'{\n  "errors": [\n    {\n      "reason": "invalid",\n      "field": "batch",\n'
        b'      "message": "m"\n    }\n  ]\n}\n',
    )


def test_v2_207_shows_batch_index_first() -> None:
    result = ContractResult(
        status=207, route=BATCH, errors=(err("m", index=0, field="name"), err("n", field=""))
    )
    assert render(result) == (
        207,
        b'{\n  "errors": [\n    {\n      "batch_index": 0,\n      "reason": "invalid",\n'
        b'      "field": "name",\n      "message": "m"\n    },\n    {\n'
        b'      "reason": "invalid",\n      "field": "",\n      "message": "n"\n    }\n  ]\n}\n',
    )


def test_routeless_and_oversized_answers_use_the_v1_shape() -> None:
    not_found = ContractResult(status=404, route=None, errors=(err("not found"),))
    assert render(not_found) == (
        404,
        b'{\n  "meta": {\n    "errors": [\n      "not found"\n    ]\n  }\n}\n',
    )
    too_large = ContractResult(status=413, route=ENTITY, errors=(err("request body is too large"),))
    assert render(too_large) == (
        413,
        b'{\n  "meta": {\n    "errors": [\n      "request body is too large"\n    ]\n  }\n}\n',
    )


def test_attribute_names_are_escaped_as_json_and_kept_as_utf8(answer: Any) -> None:
    """Quotes and backslashes are JSON-escaped; non-ASCII stays raw UTF-8 (not \\u-escaped)."""
    name = 'pré"nom\\'
    status, body = answer("PUT", "/api/v1/customers/u1", {name: "x" * 1001})
    assert status == 400
    assert (
        body
        == (
            '{\n  "meta": {\n    "errors": [\n'
            '      "value for attribute \'pré\\"nom\\\\\' cannot be longer than 1000 bytes"\n'
            "    ]\n  }\n}\n"
        ).encode()
    )
    assert json.loads(body) == {
        "meta": {"errors": [f"value for attribute '{name}' cannot be longer than 1000 bytes"]}
    }


def test_v2_207_for_a_long_attribute(answer: Any) -> None:
    """The shape of the rudder mock, with Customer.io's v1 wording of the message."""
    body = {
        "batch": [
            {"type": "person", "action": "identify", "identifiers": {"id": "u1"}},
            {
                "type": "person",
                "action": "identify",
                "identifiers": {"id": "u2"},
                "attributes": {"plan": "p" * 1001},
            },
        ]
    }
    status, raw = answer("POST", "/api/v2/batch", body)
    assert status == 207
    assert json.loads(raw) == {
        "errors": [
            {
                "batch_index": 1,
                "reason": "invalid",
                "field": "attributes.plan",
                "message": "value for attribute 'plan' cannot be longer than 1000 bytes",
            }
        ]
    }


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@given(st.lists(_TEXT, max_size=5))
def test_v1_bodies_round_trip(messages: list[str]) -> None:
    body = v1_errors(messages)
    assert json.loads(body) == {"meta": {"errors": messages}}
    assert body.startswith(b'{\n  "meta": {\n    "errors": [')
    assert body.endswith(b"}\n}\n")
    assert not body.endswith(b"\n\n")


@given(_TEXT)
def test_merge_bodies_round_trip(message: str) -> None:
    body = v1_error(message)
    assert json.loads(body) == {"meta": {"error": message}}
    assert body.endswith(b'"\n  }\n}\n')


@given(
    st.lists(
        st.tuples(st.none() | st.integers(0, 10**6), _TEXT, _TEXT, _TEXT), min_size=1, max_size=5
    ),
    st.booleans(),
)
def test_v2_bodies_round_trip(
    errors: list[tuple[int | None, str, str, str]], with_index: bool
) -> None:
    structs = [
        ContractError(code="c", message=m, field=f, reason=r, batch_index=i)
        for i, r, f, m in errors
    ]
    expected = []
    for i, r, f, m in errors:
        item: dict[str, Any] = {} if i is None or not with_index else {"batch_index": i}
        item.update(reason=r, field=f, message=m)
        expected.append(item)
    body = v2_errors(structs, with_index=with_index)
    parsed = json.loads(body)
    assert parsed == {"errors": expected}
    assert [list(item) for item in parsed["errors"]] == [list(item) for item in expected]
    assert body.endswith(b"\n  ]\n}\n")
