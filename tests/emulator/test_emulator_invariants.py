"""Property: whatever sequence of valid v2 batches arrives, the workspace stays consistent.

Batches are checked by the contract (``evaluate``) and applied as the emulator applies them;
the invariants are read through the public views only.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.contract import Request, classify, evaluate
from trackguard.emulator.state import EmulatorState

IDS = st.sampled_from(["1", "2", "a@b.co", "A@B.CO", "00000001", "00000002", "cio_00000001"])
PERSON = st.builds(
    lambda kind, value: {kind: value},
    st.sampled_from(["id", "email", "cio_id", "anonymous_id"]),
    IDS,
)
MERGE_SIDE = st.builds(
    lambda kind, value: {kind: value}, st.sampled_from(["id", "email", "cio_id"]), IDS
)
OBJECT = st.one_of(
    st.builds(lambda t, i: {"object_type_id": t, "object_id": i}, st.sampled_from(["1", "2"]), IDS),
    st.builds(lambda c: {"cio_object_id": c}, IDS),
)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), IDS, st.just(""))
ATTRIBUTES = st.dictionaries(
    st.sampled_from(["email", "id", "anonymous_id", "_update", "plan", "unsubscribed"]),
    VALUES,
    max_size=4,
)
RELATIONSHIPS = st.lists(
    st.fixed_dictionaries(
        {"identifiers": st.one_of(PERSON, OBJECT)},
        optional={"relationship_attributes": ATTRIBUTES},
    ),
    min_size=1,
    max_size=2,
)
PERSON_ACTIONS = [
    "identify",
    "delete",
    "event",
    "page",
    "screen",
    "add_device",
    "delete_device",
    "merge",
    "suppress",
    "unsuppress",
    "add_relationships",
    "delete_relationships",
]
OBJECT_ACTIONS = [
    "identify",
    "identify_anonymous",
    "delete",
    "add_relationships",
    "delete_relationships",
]


def person_item(action: str) -> st.SearchStrategy[dict[str, Any]]:
    base: dict[str, Any] = {"type": st.just("person"), "action": st.just(action)}
    if action == "merge":
        return st.fixed_dictionaries({**base, "primary": MERGE_SIDE, "secondary": MERGE_SIDE})
    required = {**base, "identifiers": PERSON}
    if action in ("event", "page", "screen"):
        required["name"] = st.sampled_from(["a", "b"])
    if action in ("add_device", "delete_device"):
        required["device"] = st.fixed_dictionaries(
            {"token": IDS, "platform": st.just("ios")},
            optional={"last_used": st.one_of(st.integers(), IDS), "attributes": ATTRIBUTES},
        )
    if action in ("add_relationships", "delete_relationships"):
        required["cio_relationships"] = RELATIONSHIPS
    optional = {
        "attributes": ATTRIBUTES,
        "timestamp": st.integers(0, 3),
        "id": st.sampled_from(["d1", "d2"]),
    }
    return st.fixed_dictionaries(required, optional=optional)


def object_item(action: str) -> st.SearchStrategy[dict[str, Any]]:
    required = {"type": st.just("object"), "action": st.just(action), "identifiers": OBJECT}
    optional = {"attributes": ATTRIBUTES}
    if action in ("add_relationships", "delete_relationships"):
        required["cio_relationships"] = RELATIONSHIPS
    else:
        optional["cio_relationships"] = RELATIONSHIPS
    return st.fixed_dictionaries(required, optional=optional)


ITEM = st.one_of(
    st.sampled_from(PERSON_ACTIONS).flatmap(person_item),
    st.sampled_from(OBJECT_ACTIONS).flatmap(object_item),
)


@settings(max_examples=150)
@given(st.lists(st.lists(ITEM, min_size=1, max_size=5), max_size=4))
def test_workspace_stays_consistent(batches: list[list[dict[str, Any]]]) -> None:
    state = EmulatorState()
    for batch in batches:
        body = json.dumps({"batch": batch}).encode()
        result = evaluate(Request(method="POST", path="/api/v2/batch", body=body))
        assert result.status == 200, result.errors
        state.apply(result.operations)
    people = state.people_view()
    cios = {p["cio_id"] for p in people}
    ids = [p["id"] for p in people if p["id"] is not None]
    emails = [p["email"].lower() for p in people if p["email"] is not None]
    assert len(ids) == len(set(ids)) and len(emails) == len(set(emails))
    for person in people:
        for kind in ("id", "email", "cio_id"):
            value = person[kind]
            path = "cio_" + value if kind == "cio_id" else value
            if value is not None and classify(path).kind == kind:  # a lookup goes by shape
                found = state.person_view(path)
                assert found is not None and found["cio_id"] == person["cio_id"]
    tokens = [d["id"] for p in people for d in p["devices"]]
    assert len(tokens) == len(set(tokens))
    assert all(e["person"] is None or e["person"] in cios for e in state.events_view())
    assert all(m in cios for members in state.segments_view().values() for m in members)
    for obj in state.objects_view():
        assert all(related["cio_id"] in cios for related in obj["people"])
    json.dumps([people, state.objects_view(), state.activity_view()])
