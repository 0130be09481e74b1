"""Track API v2: ``/api/v2/entity`` and ``/api/v2/batch``.

A v2 batch is checked item by item: invalid items are reported in a 207 with their
``batch_index`` while every valid item is accepted, so one bad item never costs the others.
Whole-request problems (not JSON, no ``batch``, too large) are a 400 with no operations.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from trackguard.contract import Identifier

ENTITY = "/api/v2/entity"
BATCH = "/api/v2/batch"
ULID = "01HZY3J5G1W8Q8XKJ6Z9YF7N2M"


def v2(*errors: tuple[int | None, str, str, str]) -> bytes:
    """A v2 error body written out by hand: ``(batch_index, reason, field, message)`` each."""
    items = []
    for index, reason, field, message in errors:
        lines = [] if index is None else [f'      "batch_index": {index},']
        lines += [
            f'      "reason": "{reason}",',
            f'      "field": "{field}",',
            f'      "message": "{message}"',
        ]
        items.append("    {\n" + "\n".join(lines) + "\n    }")
    return ('{\n  "errors": [\n' + ",\n".join(items) + "\n  ]\n}\n").encode()


def person(action: str, ident: Any = None, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "person", "action": action}
    if ident is not None:
        item["identifiers"] = ident
    item.update(fields)
    return item


ID_U1 = {"id": "u1"}
RELS = [{"identifiers": {"object_type_id": "1", "object_id": "acme"}}]
OBJ = {"object_type_id": "1", "object_id": "acme"}

# (item, type, action, identifier, data_key)
VALID: list[tuple[dict[str, Any], str, str, Identifier | None, str | None]] = [
    (person("identify", ID_U1, attributes={"plan": "pro"}), "person", "identify",
     Identifier("id", "u1"), "attributes"),
    (person("identify", {"email": "a@b.co"}), "person", "identify", Identifier("email", "a@b.co"),
     "attributes"),
    (person("identify", {"cio_id": "a3000001"}), "person", "identify",
     Identifier("cio_id", "a3000001"), "attributes"),
    (person("identify", {"phone": "+15551234567"}), "person", "identify",
     Identifier("phone", "+15551234567"), "attributes"),
    (person("identify", {"id": 42}, attributes=None), "person", "identify", Identifier("id", "42"),
     "attributes"),
    (person("event", {"anonymous_id": "anon-1"}, name="viewed"), "person", "event",
     Identifier("anonymous_id", "anon-1"), "attributes"),
    (person("event", ID_U1, name="order_completed", id=ULID, timestamp=1_700_000_000,
            attributes={"total": 10}), "person", "event", Identifier("id", "u1"), "attributes"),
    (person("page", ID_U1, name="https://example.com/pricing"), "person", "page",
     Identifier("id", "u1"), "attributes"),
    (person("screen", ID_U1, name="Home"), "person", "screen", Identifier("id", "u1"),
     "attributes"),
    (person("delete", ID_U1), "person", "delete", Identifier("id", "u1"), None),
    (person("suppress", ID_U1), "person", "suppress", Identifier("id", "u1"), None),
    (person("unsuppress", ID_U1), "person", "unsuppress", Identifier("id", "u1"), None),
    (person("add_relationships", ID_U1, cio_relationships=RELS), "person", "add_relationships",
     Identifier("id", "u1"), None),
    (person("delete_relationships", ID_U1, cio_relationships=RELS), "person",
     "delete_relationships", Identifier("id", "u1"), None),
    (person("add_device", ID_U1, device={"token": "t", "platform": "android", "last_used": 1}),
     "person", "add_device", Identifier("id", "u1"), None),
    (person("delete_device", ID_U1, device={"token": "t"}), "person", "delete_device",
     Identifier("id", "u1"), None),
    (person("merge", primary={"id": "u1"}, secondary={"cio_id": "a3000001"}), "person", "merge",
     None, None),
    ({"type": "object", "action": "identify", "identifiers": OBJ, "attributes": {"n": 1}},
     "object", "identify", Identifier("object", "1:acme"), "attributes"),
    ({"type": "object", "action": "identify", "identifiers": {"cio_object_id": "o1"}}, "object",
     "identify", Identifier("cio_object_id", "o1"), None),
    ({"type": "object", "action": "identify_anonymous", "anonymous_id": "anon-1",
      "cio_relationships": [{"identifiers": {"anonymous_id": "anon-1"}}]}, "object",
     "identify_anonymous", None, None),
    ({"type": "object", "action": "delete", "identifiers": OBJ}, "object", "delete",
     Identifier("object", "1:acme"), None),
    ({"type": "object", "action": "add_relationships", "identifiers": OBJ,
      "cio_relationships": [{"identifiers": {"id": "u1"}}]}, "object", "add_relationships",
     Identifier("object", "1:acme"), None),
    ({"type": "object", "action": "delete_relationships", "identifiers": OBJ,
      "cio_relationships": [{"identifiers": {"id": "u1"}}]}, "object", "delete_relationships",
     Identifier("object", "1:acme"), None),
    ({"type": "delivery", "action": "event", "identifiers": {"id": "dlv1"}, "name": "opened",
      "attributes": {"device_token": "t"}}, "delivery", "event", Identifier("delivery", "dlv1"),
     "attributes"),
]  # fmt: skip


@pytest.mark.parametrize(("item", "type_", "action", "ident", "data_key"), VALID)
def test_valid_entity(
    call: Any,
    answer: Any,
    item: dict[str, Any],
    type_: str,
    action: str,
    ident: Identifier | None,
    data_key: str | None,
) -> None:
    result = call("POST", ENTITY, item)
    assert (result.status, result.errors, result.warnings) == (200, (), ())
    assert answer("POST", ENTITY, item) == (200, b"{}\n")
    (op,) = result.operations
    assert (op.api, op.type, op.action, op.identifier, op.data_key) == (
        "v2",
        type_,
        action,
        ident,
        data_key,
    )
    assert (op.route, op.method, op.path, op.batch_index) == (
        "POST /api/v2/entity",
        "POST",
        ENTITY,
        None,
    )
    assert op.body == item


def test_valid_batch_keeps_every_item_in_order(call: Any) -> None:
    items = [v[0] for v in VALID]
    result = call("POST", BATCH, {"batch": items})
    assert (result.status, result.errors, result.warnings) == (200, (), ())
    assert [op.batch_index for op in result.operations] == list(range(len(VALID)))
    assert [(op.type, op.action, op.identifier) for op in result.operations] == [
        (v[1], v[2], v[3]) for v in VALID
    ]
    assert [op.body for op in result.operations] == items
    assert {op.route for op in result.operations} == {"POST /api/v2/batch"}


# (item, [(reason, field, message, verified)])
INVALID: list[tuple[Any, list[tuple[str, str, str, bool]]]] = [
    ([], [("invalid", "", "batch item must be a hash", False)]),
    ({"type": "user", "action": "identify"},
     [("invalid", "type", "type must be one of: person, object, delivery", False)]),
    ({"action": "identify"},
     [("invalid", "type", "type must be one of: person, object, delivery", False)]),
    ({"type": "object", "action": "event"},
     [("invalid", "action", "action is not valid for this type", False)]),
    ({"type": "person", "action": "add_relationship"},
     [("invalid", "action", "action is not valid for this type", False)]),
    (person("identify"), [("required", "identifiers", "identifiers must be present", False)]),
    (person("identify", {}), [("required", "identifiers", "identifiers must be present", False)]),
    (person("identify", {"user_id": "u1"}),
     [("required", "identifiers", "identifiers must be present", False)]),
    (person("identify", {"id": "u1", "email": "a@b.co"}),
     [("invalid", "identifiers", "You cannot pass multiple identifiers", True)]),
    (person("identify", {"id": ""}),
     [("invalid", "identifiers.id", "identifier must be a non-empty string", False)]),
    (person("identify", {"email": None}),
     [("invalid", "identifiers.email", "identifier must be a non-empty string", False)]),
    (person("identify", {"cio_id": True}),
     [("invalid", "identifiers.cio_id", "identifier must be a non-empty string", False)]),
    (person("identify", ID_U1, attributes="plan=pro"),
     [("invalid", "attributes", "attributes must be a hash", False)]),
    (person("identify", ID_U1, attributes={"plan": "x" * 1001}),
     [("invalid", "attributes.plan", "value for attribute 'plan' cannot be longer than 1000 bytes",
       True)]),
    (person("identify", ID_U1, attributes={f"a{i}": 1 for i in range(301)}),
     [("invalid", "attributes", "cannot identify more than 300 attributes in one request", True)]),
    (person("identify", ID_U1, attributes={"n" * 151: 1}),
     [("invalid", "attributes." + "n" * 151, "attribute name cannot be longer than 150 bytes",
       True)]),
    (person("event", ID_U1), [("required", "name", "event name must not be blank", True)]),
    (person("page", ID_U1, name="p" * 101),
     [("invalid", "name", "event name cannot be longer than 100 bytes", True)]),
    (person("screen", ID_U1, name=" ", attributes=[]),
     [("invalid", "attributes", "attributes must be a hash", False),
      ("required", "name", "event name must not be blank", True)]),
    (person("add_device", ID_U1),
     [("required", "device.token", "device token must be present", False)]),
    (person("add_device", ID_U1, device={"id": "t", "platform": "ios"}),
     [("required", "device.token", "device token must be present", False)]),
    (person("delete_device", ID_U1, device={"token": ""}),
     [("required", "device.token", "device token must be present", False)]),
    (person("add_device", ID_U1, device={"token": "t", "platform": "web"}),
     [("invalid", "device.platform", "device platform must be one of: ios, android", False)]),
    (person("add_relationships", ID_U1),
     [("required", "cio_relationships", "cio_relationships must be present", False)]),
    (person("delete_relationships", ID_U1, cio_relationships=[]),
     [("required", "cio_relationships", "cio_relationships must be present", False)]),
    (person("merge", primary={"id": "u1"}),
     [("required", "", "primary and secondary must both be present", False)]),
    (person("merge", primary={"id": "u1", "email": "a@b.co"}, secondary={"id": "u2"}),
     [("invalid", "", "The request was malformed. You cannot have multiple identifiers (id, "
       "email, etc) in the `primary` or `secondary` objects.", True)]),
    ({"type": "object", "action": "identify", "identifiers": {"object_id": "acme"}},
     [("invalid", "identifiers",
       "object identifiers must be object_type_id and object_id, or cio_object_id", False)]),
    ({"type": "object", "action": "delete", "identifiers": {"cio_object_id": ""}},
     [("invalid", "identifiers",
       "object identifiers must be object_type_id and object_id, or cio_object_id", False)]),
    ({"type": "object", "action": "add_relationships", "identifiers": OBJ},
     [("required", "cio_relationships", "cio_relationships must be present", False)]),
    ({"type": "delivery", "action": "event", "identifiers": {"id": "d1"}, "name": "clicked"},
     [("invalid", "name", "name must be one of: opened, converted, delivered", False)]),
    ({"type": "delivery", "action": "event", "name": "opened"},
     [("required", "identifiers", "identifiers must be present", False)]),
]  # fmt: skip


@pytest.mark.parametrize(("item", "errors"), INVALID)
def test_invalid_entity_is_400_without_batch_index(
    call: Any, answer: Any, item: Any, errors: list[tuple[str, str, str, bool]]
) -> None:
    if not isinstance(item, dict):  # an entity body that is not an object fails as a body
        errors = [("invalid", "", "request body must be a JSON object", False)]
    result = call("POST", ENTITY, item)
    assert result.status == 400
    assert result.operations == ()
    assert [(e.reason, e.field, e.message, e.verified) for e in result.errors] == errors
    assert {e.batch_index for e in result.errors} == {None}
    expected = v2(*[(None, reason, field, message) for reason, field, message, _ in errors])
    assert answer("POST", ENTITY, item) == (400, expected)


@pytest.mark.parametrize(("item", "errors"), INVALID)
def test_invalid_batch_item_is_207_beside_valid_items(
    call: Any, answer: Any, item: Any, errors: list[tuple[str, str, str, bool]]
) -> None:
    good = person("event", ID_U1, name="ok")
    body = {"batch": [good, item, good]}
    result = call("POST", BATCH, body)
    assert result.status == 207
    assert [op.batch_index for op in result.operations] == [0, 2]
    assert [op.body for op in result.operations] == [good, good]
    assert [(e.batch_index, e.reason, e.field, e.message) for e in result.errors] == [
        (1, reason, field, message) for reason, field, message, _ in errors
    ]
    expected = v2(*[(1, reason, field, message) for reason, field, message, _ in errors])
    assert answer("POST", BATCH, body) == (207, expected)


def test_all_items_invalid_is_still_207(call: Any, answer: Any) -> None:
    result = call("POST", BATCH, {"batch": [1, person("event", ID_U1)]})
    assert (result.status, result.operations) == (207, ())
    assert answer("POST", BATCH, {"batch": [1, person("event", ID_U1)]}) == (
        207,
        v2(
            (0, "invalid", "", "batch item must be a hash"),
            (1, "required", "name", "event name must not be blank"),
        ),
    )


@pytest.mark.parametrize(
    ("path", "body", "reason", "field", "message"),
    [
        (ENTITY, b"{", "invalid", "", "request body must be valid JSON"),
        (ENTITY, b"", "invalid", "", "request body must be valid JSON"),
        (BATCH, b'{"batch":[1,]}', "invalid", "", "request body must be valid JSON"),
        (ENTITY, b"[]", "invalid", "", "request body must be a JSON object"),
        (BATCH, b"[{}]", "invalid", "", "request body must be a JSON object"),
        (BATCH, b"{}", "required", "batch", "batch must be an array"),
        (BATCH, b'{"batch":{"0":{}}}', "required", "batch", "batch must be an array"),
        (BATCH, b'{"batch":null}', "required", "batch", "batch must be an array"),
        (BATCH, b'{"batch":[]}', "invalid", "batch", "batch must contain at least 1 item"),
    ],
)
def test_whole_request_problems_are_400(
    call: Any, answer: Any, path: str, body: bytes, reason: str, field: str, message: str
) -> None:
    result = call("POST", path, body)
    assert (result.status, result.operations) == (400, ())
    assert answer("POST", path, body) == (400, v2((None, reason, field, message)))


def test_v2_warnings_keep_their_batch_index(call: Any) -> None:
    items = [
        person("event", ID_U1, name="a", id=ULID, timestamp=1_700_000_000_000),
        person("event", ID_U1, name="b", id="msg-123", timestamp="2025-11-24"),
        person("identify", {"id": "u" * 151}),
    ]
    result = call("POST", BATCH, {"batch": items})
    assert (result.status, result.errors) == (200, ())
    assert len(result.operations) == 3
    assert [(w.batch_index, w.code, w.field, w.message) for w in result.warnings] == [
        (
            1,
            "timestamp_replaced",
            "timestamp",
            "timestamp is not an integer: Customer.io replaces it with the time of receipt",
        ),
        (
            1,
            "event_id_not_ulid",
            "id",
            "event id is not a ULID: Customer.io may not deduplicate on it",
        ),
        (
            2,
            "person_id_too_long",
            "identifiers.id",
            "person id is longer than Customer.io's documented 150-byte limit",
        ),
    ]


# --- size limits --------------------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def sized_item(size: int, ident: str = "u1") -> dict[str, Any]:
    """A valid person identify whose compact JSON is exactly ``size`` bytes."""
    attrs: dict[str, str] = {}
    item = person("identify", {"id": ident}, attributes=attrs)
    while size - _size(item) > 600:
        attrs[f"a{len(attrs):03d}"] = "x" * 500
    key = f"a{len(attrs):03d}"
    attrs[key] = ""
    attrs[key] = "x" * (size - _size(item))
    assert _size(item) == size
    return item


@pytest.mark.parametrize(("size", "ok"), [(32 * 1024 - 1, True), (32 * 1024, False)])
def test_entity_must_be_smaller_than_32kb(answer: Any, size: int, ok: bool) -> None:
    expected = (
        (200, b"{}\n")
        if ok
        else (400, v2((None, "invalid", "", "request must be smaller than 32kb")))
    )
    assert answer("POST", ENTITY, sized_item(size)) == expected


@pytest.mark.parametrize(("size", "ok"), [(32 * 1024, True), (32 * 1024 + 1, False)])
def test_batch_item_must_be_32kb_or_smaller(call: Any, answer: Any, size: int, ok: bool) -> None:
    body = {"batch": [person("delete", ID_U1), sized_item(size)]}
    result = call("POST", BATCH, body)
    assert [op.batch_index for op in result.operations] == ([0, 1] if ok else [0])
    expected = (
        (200, b"{}\n")
        if ok
        else (207, v2((1, "invalid", "", "each request within the batch must be 32kb or smaller")))
    )
    assert answer("POST", BATCH, body) == expected


def _sized_batch(size: int) -> dict[str, Any]:
    items = [sized_item(32_000, f"u{i}") for i in range(15)]
    envelope = _size({"batch": [*items, {}]}) - 2  # without the placeholder "{}"
    items.append(sized_item(size - envelope, "last"))
    body = {"batch": items}
    assert _size(body) == size
    return body


@pytest.mark.parametrize(("size", "ok"), [(500 * 1024 - 1, True), (500 * 1024, False)])
def test_batch_must_be_smaller_than_500kb(call: Any, answer: Any, size: int, ok: bool) -> None:
    body = _sized_batch(size)
    result = call("POST", BATCH, body)
    assert len(result.operations) == (16 if ok else 0)
    expected = (
        (200, b"{}\n")
        if ok
        else (400, v2((None, "invalid", "", "request must be smaller than 500kb")))
    )
    assert answer("POST", BATCH, body) == expected


def test_batch_has_no_item_count_limit(call: Any) -> None:
    result = call("POST", BATCH, {"batch": [person("delete", {"id": str(i)}) for i in range(5000)]})
    assert (result.status, len(result.operations)) == (200, 5000)
