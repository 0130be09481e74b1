"""What the emulator's workspace holds after Track API calls, read back through ``/_emulator/``.

Every expectation is exact: cio_ids are assigned in order from ``00000001`` after a reset, so
whole person records are compared. ``received_at`` is the only field left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from trackguard.emulator.app import Emulator, create_emulator
from trackguard.emulator.state import (
    ANONYMOUS_TAKEN,
    CONFLICT,
    MERGE_PRIMARY,
    NO_CIO_ID,
    NO_PERSON,
    STALE,
    SUPPRESSED,
    UPDATE_ONLY,
)
from trackguard.http.runner import start_in_thread

if TYPE_CHECKING:
    import ssl

    from conftest import Emu

ULID_1 = "01JBV2ZQ8Y5N3W6X7Y8Z9A0B1C"
ULID_2 = "01JBV2ZQ8Y5N3W6X7Y8Z9A0B1D"


def person(cio: str, id: str | None = None, email: str | None = None, **extra: Any) -> Any:
    record: dict[str, Any] = {
        "cio_id": cio,
        "id": id,
        "email": email,
        "attributes": {},
        "devices": [],
        "segments": [],
        "relationships": [],
        "anonymous_ids": [],
    }
    record.update(extra)
    return record


def events(emu: Emu, **filters: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "received_at"} for e in emu.events(**filters)]


def event(seq: int, name: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": seq,
        "type": "event",
        "name": name,
        "data": {},
        "timestamp": 1_700_000_000,
        "api": "v1",
        "person": None,
        "identifier": None,
        "anonymous_id": None,
        "id": None,
    }
    record.update(extra)
    return record


def reasons(emu: Emu) -> list[str]:
    return [f["reason"] for f in emu.failures()]


def ok(response: Any) -> None:
    assert (response.status_code, response.content) == (200, b"{}\n"), response.content


# --- identify -------------------------------------------------------------------------------


def test_identify_creates_then_merges_attributes(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/42", json={"plan": "free", "age": 30, "nick": "al"}))
    ok(c.put("/api/v1/customers/42", json={"plan": "pro", "age": None, "nick": "", "x": True}))
    expected = person("00000001", "42", attributes={"plan": "pro", "x": True})
    assert emu.people() == [expected]
    assert emu.person("42") == emu.person("cio_00000001") == expected


def test_id_is_case_sensitive_and_email_is_not(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/Bob", json={}))
    ok(c.put("/api/v1/customers/bob", json={}))
    ok(c.put("/api/v1/customers/Ann@Example.com", json={"a": 1}))
    ok(c.put("/api/v1/customers/ann@example.COM", json={"b": 2}))
    assert emu.people() == [
        person("00000001", "Bob"),
        person("00000002", "bob"),
        person("00000003", None, "Ann@Example.com", attributes={"a": 1, "b": 2}),
    ]
    assert emu.person("ANN@EXAMPLE.COM") == emu.people()[2]


def test_percent_encoded_identifier_is_one_segment(emu: Emu) -> None:
    ok(emu.client.put("/api/v1/customers/a%2Fb%20c", json={}))
    assert emu.person("a%2Fb%20c") == person("00000001", "a/b c")


def test_new_id_with_a_known_email_updates_that_person(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/ann@example.com", json={"plan": "free"}))
    ok(c.put("/api/v1/customers/7", json={"email": "ANN@example.com", "plan": "pro"}))
    assert emu.people() == [person("00000001", "7", "ann@example.com", attributes={"plan": "pro"})]
    ok(c.put("/api/v1/customers/bea@example.com", json={"id": "8"}))
    assert emu.person("8") == person("00000002", "8", "bea@example.com")


def test_identifiers_of_two_people_conflict_and_nothing_changes(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={"email": "one@example.com"}))
    ok(c.put("/api/v1/customers/2", json={"email": "two@example.com"}))
    ok(c.put("/api/v1/customers/1", json={"email": "two@example.com", "plan": "x"}))
    ok(c.put("/api/v1/customers/one@example.com", json={"id": "9"}))  # id change needs cio
    assert emu.people() == [
        person("00000001", "1", "one@example.com"),
        person("00000002", "2", "two@example.com"),
    ]
    assert reasons(emu) == [CONFLICT, CONFLICT]


def test_cio_id_path_changes_id_and_email_and_unknown_cio_id_is_dropped(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={"email": "one@example.com"}))
    ok(c.put("/api/v1/customers/cio_00000001", json={"id": "uno", "email": "uno@example.com"}))
    ok(c.put("/api/v1/customers/cio_99", json={"id": "ghost"}))
    assert emu.people() == [person("00000001", "uno", "uno@example.com")]
    assert emu.person("1") is None and emu.person("one@example.com") is None
    assert reasons(emu) == [NO_CIO_ID]


def test_update_only_never_creates(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/5", json={"_update": True, "plan": "pro"}))
    assert emu.people() == []
    ok(c.put("/api/v1/customers/5", json={}))
    ok(c.put("/api/v1/customers/5", json={"_update": True, "plan": "pro"}))
    assert emu.people() == [person("00000001", "5", attributes={"plan": "pro"})]
    assert reasons(emu) == [UPDATE_ONLY]


def test_older_timestamp_is_dropped(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/5", json={"_timestamp": 2_000, "plan": "b"}))
    ok(c.put("/api/v1/customers/5", json={"_timestamp": 1_000, "plan": "a"}))
    ok(c.put("/api/v1/customers/5", json={"_timestamp": 2_000, "seen": 1}))
    assert emu.person("5")["attributes"] == {"plan": "b", "seen": 1}
    assert reasons(emu) == [STALE]


def test_unsubscribed_and_subscription_preferences(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/5", json={"unsubscribed": "TRuE"}))
    ok(
        c.put(
            "/api/v1/customers/6",
            json={
                "unsubscribed": 0,
                "cio_subscription_preferences": {"topics": {"topic_1": True}},
                "cio_subscription_preferences.topics.topic_2": False,
            },
        )
    )
    assert emu.person("5")["attributes"] == {"unsubscribed": True}
    assert emu.person("6")["attributes"] == {
        "unsubscribed": False,
        "cio_subscription_preferences": {"topics": {"topic_1": True, "topic_2": False}},
    }


def test_delete_removes_the_person_and_their_events(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/5", json={}))
    ok(c.post("/api/v1/customers/5/events", json={"name": "a", "timestamp": 1_700_000_000}))
    ok(c.delete("/api/v1/customers/5"))
    ok(c.delete("/api/v1/customers/never-existed"))
    assert emu.people() == [] and emu.events() == []


# --- devices --------------------------------------------------------------------------------


def test_devices_flat_attributes_string_last_used_update_move_delete(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={}))
    ok(c.put("/api/v1/customers/2", json={}))
    flat = {"id": "tok", "platform": "ios", "last_used": "1700000000", "app_version": "1.2"}
    ok(c.put("/api/v1/customers/1/devices", json={"device": flat}))
    assert emu.person("1")["devices"] == [
        {
            "id": "tok",
            "platform": "ios",
            "last_used": 1_700_000_000,
            "attributes": {"app_version": "1.2"},
        }
    ]
    nested = {
        "id": "tok",
        "platform": "android",
        "last_used": 1_700_000_500,
        "attributes": {"push_enabled": "true"},
    }
    ok(c.put("/api/v1/customers/2/devices", json={"device": nested}))
    assert emu.person("1")["devices"] == []
    assert emu.person("2")["devices"] == [
        {
            "id": "tok",
            "platform": "android",
            "last_used": 1_700_000_500,
            "attributes": {"push_enabled": "true"},
        }
    ]
    ok(c.delete("/api/v1/customers/1/devices/tok"))  # not theirs: nothing happens
    assert len(emu.person("2")["devices"]) == 1
    ok(c.delete("/api/v1/customers/2/devices/tok"))
    assert emu.person("2")["devices"] == []
    ok(c.put("/api/v1/customers/3/devices", json={"device": {"id": "t", "platform": "ios"}}))
    assert emu.person("3") is None
    assert reasons(emu) == [NO_PERSON]


# --- events ---------------------------------------------------------------------------------


def test_events_are_stored_exactly(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/42", json={}))
    body = {"name": "  bought ", "data": {"sku": "A"}, "id": ULID_1, "timestamp": 1_700_000_000}
    ok(c.post("/api/v1/customers/42/events", json=body))
    ok(
        c.post(
            "/api/v1/customers/42/events",
            json={"name": "/shop", "type": "page", "timestamp": 1_700_000_000},
        )
    )
    ok(
        c.post(
            "/api/v1/customers/cio_00000001/events",
            json={"name": "Home", "type": "screen", "data": None, "timestamp": 1_700_000_000},
        )
    )
    me = {"person": "00000001"}
    assert events(emu, person="42") == [
        event(1, "bought", data={"sku": "A"}, id=ULID_1, identifier={"id": "42"}, **me),
        event(2, "/shop", type="page", identifier={"id": "42"}, **me),
        event(3, "Home", type="screen", identifier={"cio_id": "00000001"}, **me),
    ]
    assert [e["name"] for e in emu.events(type="page")] == ["/shop"]
    assert [e["seq"] for e in emu.events(name="Home")] == [3]


def test_event_without_timestamp_gets_the_receipt_time(emu: Emu) -> None:
    ok(emu.client.post("/api/v1/customers/42/events", json={"name": "x", "timestamp": "soon"}))
    (stored,) = emu.events()
    assert stored["timestamp"] == int(stored["received_at"])


def test_events_of_unknown_people_stay_under_their_identifier(emu: Emu) -> None:
    c = emu.client
    ok(
        c.post(
            "/api/v1/customers/Zed@Example.com/events",
            json={"name": "a", "timestamp": 1_700_000_000},
        )
    )
    assert emu.people() == []
    expected = [event(1, "a", identifier={"email": "Zed@Example.com"})]
    assert events(emu, person="zed@example.com") == expected
    ok(c.put("/api/v1/customers/zed@example.com", json={}))
    assert events(emu, person="zed@example.com") == []  # not attached to the later person
    assert events(emu) == expected


def test_duplicate_event_ids_are_ignored_everywhere(emu: Emu) -> None:
    c = emu.client
    first = {"name": "a", "id": ULID_1, "timestamp": 1_700_000_000}
    ok(c.post("/api/v1/customers/1/events", json=first))
    ok(c.post("/api/v1/customers/2/events", json={**first, "name": "b"}))
    ok(c.post("/api/v1/events", json={**first, "anonymous_id": "x"}))
    v2 = {"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "c"}
    ok(c.post("/api/v2/batch", json={"batch": [{**v2, "id": ULID_1}, {**v2, "id": ULID_2}]}))
    ok(c.post("/api/v1/customers/1/events", json={"name": "no id"}))
    ok(c.post("/api/v1/customers/1/events", json={"name": "no id"}))
    assert [(e["name"], e["id"]) for e in emu.events()] == [
        ("a", ULID_1),
        ("c", ULID_2),
        ("no id", None),
        ("no id", None),
    ]
    stats = emu.stats()
    assert (stats["events"], stats["duplicates"]) == (4, 3)


# --- anonymous events -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(plain_context: ssl.SSLContext) -> Iterator[tuple[Emulator, Clock, Any]]:
    import httpx

    clock = Clock()
    emulator = create_emulator("s", "k", clock=clock)
    with (
        start_in_thread(emulator) as server,
        httpx.Client(base_url=server.url, auth=("s", "k"), verify=plain_context) as client,
    ):
        yield emulator, clock, client
    emulator.close()


def test_anonymous_events_merge_before_and_five_minutes_after_identify(
    clocked: tuple[Emulator, Clock, Any],
) -> None:
    emulator, clock, c = clocked
    ok(c.post("/api/v1/events", json={"name": "before", "anonymous_id": "anon-1"}))
    ok(c.post("/api/v1/events", json={"name": "other", "anonymous_id": "anon-2"}))
    ok(c.post("/api/v1/events", json={"name": "invite", "data": {"recipient": "a@b.co"}}))
    ok(c.put("/api/v1/customers/42", json={"anonymous_id": "anon-1"}))
    clock.now += 300
    ok(c.post("/api/v1/events", json={"name": "at 5 min", "anonymous_id": "anon-1"}))
    v2 = {"type": "person", "action": "page", "identifiers": {"anonymous_id": "anon-1"}}
    ok(c.post("/api/v2/entity", json={**v2, "name": "/v2"}))
    clock.now += 1
    ok(c.post("/api/v1/events", json={"name": "too late", "anonymous_id": "anon-1"}))
    state = emulator.state
    assert [(e["name"], e["person"]) for e in state.events_view(person="42")] == [
        ("before", "00000001"),
        ("at 5 min", "00000001"),
        ("/v2", "00000001"),
    ]
    assert [(e["name"], e["person"]) for e in state.events_view(anonymous_id="anon-1")] == [
        ("before", "00000001"),
        ("at 5 min", "00000001"),
        ("/v2", "00000001"),
        ("too late", None),
    ]
    invite = state.events_view(name="invite")[0]
    assert (invite["anonymous_id"], invite["person"]) == (None, None)
    assert state.person_view("42")["anonymous_ids"] == ["anon-1"]
    ok(c.put("/api/v1/customers/42", json={"anonymous_id": "anon-1"}))  # new identify: new window
    assert state.events_view(name="too late")[0]["person"] == "00000001"
    ok(c.put("/api/v1/customers/43", json={"anonymous_id": "anon-1"}))
    assert [f["reason"] for f in state.activity_view()["failures"]] == [ANONYMOUS_TAKEN]


# --- suppress, merge, segments --------------------------------------------------------------


def test_suppress_deletes_and_blocks_both_identifiers_until_unsuppressed(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={"email": "one@example.com"}))
    ok(c.post("/api/v1/customers/1/suppress"))
    assert emu.people() == []
    ok(c.put("/api/v1/customers/1", json={}))
    ok(c.put("/api/v1/customers/ONE@example.com", json={}))
    ok(c.post("/api/v1/customers/1/events", json={"name": "x"}))
    assert emu.people() == [] and emu.events() == []
    assert reasons(emu) == [SUPPRESSED] * 3
    ok(c.post("/api/v1/customers/one@example.com/unsuppress"))
    ok(c.put("/api/v1/customers/1", json={}))
    assert emu.people() == [person("00000002", "1")]


def test_merge_folds_secondary_into_primary(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={"plan": "pro", "blank": ""}))
    ok(c.put("/api/v1/customers/two@example.com", json={"plan": "free", "city": "Oslo"}))
    ok(
        c.post(
            "/api/v1/customers/two@example.com/events",
            json={"name": "e", "timestamp": 1_700_000_000},
        )
    )
    ok(
        c.put(
            "/api/v1/customers/two@example.com/devices",
            json={"device": {"id": "tok", "platform": "ios", "last_used": 5}},
        )
    )
    ok(c.post("/api/v1/segments/9/add_customers?id_type=email", json={"ids": ["two@example.com"]}))
    merge = {"primary": {"id": "1"}, "secondary": {"email": "two@example.com"}}
    ok(c.post("/api/v1/merge_customers", json=merge))
    assert emu.people() == [
        person(
            "00000001",
            "1",
            "two@example.com",
            attributes={"plan": "pro", "city": "Oslo"},
            devices=[{"id": "tok", "platform": "ios", "last_used": 5, "attributes": {}}],
            segments=["9"],
        )
    ]
    assert [e["person"] for e in emu.events()] == ["00000001"]
    assert emu.client.get("/_emulator/segments").json() == {"9": ["00000001"]}


def test_merge_without_primary_does_nothing(emu: Emu) -> None:
    ok(emu.client.put("/api/v1/customers/2", json={}))
    merge = {"primary": {"cio_id": "77"}, "secondary": {"id": "2"}}
    ok(emu.client.post("/api/v1/merge_customers", json=merge))
    assert emu.people() == [person("00000001", "2")]
    assert reasons(emu) == [MERGE_PRIMARY]


def test_segments_add_and_remove_by_id_type(emu: Emu) -> None:
    c = emu.client
    ok(c.put("/api/v1/customers/1", json={"email": "one@example.com"}))
    ok(c.put("/api/v1/customers/2", json={}))
    ok(c.post("/api/v1/segments/7/add_customers", json={"ids": ["1", 2, "nobody"]}))
    ok(
        c.post(
            "/api/v1/segments/8/add_customers?id_type=email",
            json={"ids": ["one@example.com", "not-an-email"]},
        )
    )
    ok(c.post("/api/v1/segments/8/add_customers?id_type=cio_id", json={"ids": ["cio_00000002"]}))
    assert c.get("/_emulator/segments").json() == {
        "7": ["00000001", "00000002"],
        "8": ["00000001", "00000002"],
    }
    ok(c.post("/api/v1/segments/7/remove_customers", json={"ids": ["1"]}))
    assert emu.person("1")["segments"] == ["8"]
    assert emu.person("2")["segments"] == ["7", "8"]
    assert reasons(emu) == [NO_PERSON]


# --- v2 -------------------------------------------------------------------------------------


def test_v2_batch_applies_every_valid_item_in_order(emu: Emu) -> None:
    c = emu.client
    p = {"type": "person", "identifiers": {"id": "42"}}
    acme = {"object_type_id": "1", "object_id": "acme"}
    batch = [
        {**p, "action": "identify", "attributes": {"email": "a@example.com", "plan": "pro"}},
        {
            **p,
            "action": "event",
            "name": "bought",
            "attributes": {"sku": "A"},
            "timestamp": 1_700_000_000,
            "id": ULID_1,
        },
        {**p, "action": "screen", "name": "Home", "timestamp": 1_700_000_000},
        {
            **p,
            "action": "add_device",
            "device": {
                "token": "tk",
                "platform": "android",
                "last_used": 9,
                "attributes": {"a": "b"},
            },
        },
        {
            **p,
            "action": "add_relationships",
            "cio_relationships": [
                {"identifiers": acme, "relationship_attributes": {"role": "admin"}}
            ],
        },
        {
            "type": "object",
            "action": "identify",
            "identifiers": acme,
            "attributes": {"name": "Acme", "tier": "gold"},
        },
        {"type": "person", "action": "event", "identifiers": {"id": "42"}},  # invalid: no name
        {
            "type": "delivery",
            "action": "event",
            "identifiers": {"id": "dlv-1"},
            "name": "opened",
            "attributes": {"device_token": "tk"},
        },
    ]
    response = c.post("/api/v2/batch", json={"batch": batch})
    assert response.status_code == 207
    assert [e["batch_index"] for e in response.json()["errors"]] == [6]
    assert emu.people() == [
        person(
            "00000001",
            "42",
            "a@example.com",
            attributes={"plan": "pro"},
            devices=[{"id": "tk", "platform": "android", "last_used": 9, "attributes": {"a": "b"}}],
            relationships=[
                {
                    "object_type_id": "1",
                    "object_id": "acme",
                    "cio_object_id": "00000001",
                    "attributes": {"role": "admin"},
                }
            ],
        )
    ]
    assert events(emu, person="a@example.com") == [
        event(
            1,
            "bought",
            data={"sku": "A"},
            id=ULID_1,
            api="v2",
            person="00000001",
            identifier={"id": "42"},
        ),
        event(2, "Home", type="screen", api="v2", person="00000001", identifier={"id": "42"}),
    ]
    assert c.get("/_emulator/objects").json() == [
        {
            "cio_object_id": "00000001",
            "object_type_id": "1",
            "object_id": "acme",
            "attributes": {"name": "Acme", "tier": "gold"},
            "people": [{"cio_id": "00000001", "attributes": {"role": "admin"}}],
            "anonymous_ids": [],
        }
    ]
    deliveries = c.get("/_emulator/activity").json()["deliveries"]
    assert [(d["kind"], d["delivery_id"], d["metric"]) for d in deliveries] == [
        ("delivery_event", "dlv-1", "opened")
    ]


def test_v2_entity_person_lifecycle(emu: Emu) -> None:
    c = emu.client

    def entity(action: str, **fields: Any) -> None:
        body = {"type": "person", "action": action, **fields}
        ok(c.post("/api/v2/entity", json=body))

    entity("identify", identifiers={"email": "a@example.com"}, attributes={"x": 1}, timestamp=100)
    entity("identify", identifiers={"email": "a@example.com"}, attributes={"x": 0}, timestamp=50)
    entity("identify", identifiers={"id": "b"}, attributes={})
    entity(
        "add_device", identifiers={"cio_id": "00000001"}, device={"token": "t1", "platform": "ios"}
    )
    entity("delete_device", identifiers={"email": "a@example.com"}, device={"token": "t1"})
    entity("merge", primary={"email": "a@example.com"}, secondary={"id": "b"})
    assert emu.people() == [person("00000001", "b", "a@example.com", attributes={"x": 1})]
    entity("suppress", identifiers={"id": "b"})
    entity("identify", identifiers={"email": "a@example.com"}, attributes={})
    assert emu.people() == []
    entity("unsuppress", identifiers={"email": "a@example.com"})
    entity("identify", identifiers={"email": "a@example.com"}, attributes={})
    entity("delete", identifiers={"email": "a@example.com"})
    assert emu.people() == []
    assert reasons(emu) == [STALE, SUPPRESSED]


def test_v2_objects_relationships_and_anonymous_people(emu: Emu) -> None:
    c = emu.client
    acme = {"object_type_id": "1", "object_id": "acme"}
    ok(c.put("/api/v1/customers/1", json={}))
    batch = [
        {
            "type": "object",
            "action": "identify",
            "identifiers": acme,
            "attributes": {"a": 1},
            "cio_relationships": [
                {"identifiers": {"id": "1"}, "relationship_attributes": {"r": "x"}}
            ],
        },
        {
            "type": "object",
            "action": "identify_anonymous",
            "identifiers": acme,
            "cio_relationships": [{"identifiers": {"anonymous_id": "anon"}}],
        },
        {
            "type": "object",
            "action": "identify",
            "identifiers": {"cio_object_id": "00000001"},
            "attributes": {"a": None, "b": 2},
        },
    ]
    ok(c.post("/api/v2/batch", json={"batch": batch}))
    ok(c.put("/api/v1/customers/2", json={"anonymous_id": "anon"}))
    (obj,) = c.get("/_emulator/objects").json()
    assert obj["attributes"] == {"b": 2} and obj["anonymous_ids"] == []
    assert obj["people"] == [
        {"cio_id": "00000001", "attributes": {"r": "x"}},
        {"cio_id": "00000002", "attributes": {}},
    ]
    ok(
        c.post(
            "/api/v2/entity",
            json={
                "type": "object",
                "action": "delete_relationships",
                "identifiers": acme,
                "cio_relationships": [{"identifiers": {"id": "1"}}],
            },
        )
    )
    assert emu.person("1")["relationships"] == []
    ok(c.post("/api/v2/entity", json={"type": "object", "action": "delete", "identifiers": acme}))
    assert c.get("/_emulator/objects").json() == []
    assert emu.person("2")["relationships"] == []


def test_v1_identify_relationships(emu: Emu) -> None:
    rel = {
        "identifiers": {"object_type_id": "2", "object_id": "team"},
        "relationship_attributes": {"role": "lead"},
    }
    add = {"cio_relationships": {"action": "add_relationships", "relationships": [rel]}}
    ok(emu.client.put("/api/v1/customers/1", json=add))
    assert emu.person("1")["relationships"] == [
        {
            "object_type_id": "2",
            "object_id": "team",
            "cio_object_id": "00000001",
            "attributes": {"role": "lead"},
        }
    ]
    remove = {"cio_relationships": {"action": "delete_relationships", "relationships": [rel]}}
    ok(emu.client.put("/api/v1/customers/1", json=remove))
    assert emu.person("1")["relationships"] == []


def test_forms_metrics_and_unsubscribes_are_kept(emu: Emu) -> None:
    c = emu.client
    assert (
        c.post(
            "/api/v1/forms/signup/submit", json={"data": {"email": "a@b.co", "name": "A"}}
        ).status_code
        == 204
    )
    ok(c.post("/api/v1/metrics", json={"delivery_id": "d1", "metric": "clicked"}))
    ok(c.post("/push/events", json={"delivery_id": "d2", "event": "opened", "device_id": "t"}))
    ok(c.post("/unsubscribe/d3", json={"unsubscribe": False}))
    activity = c.get("/_emulator/activity").json()
    assert [(f["form_id"], f["data"]) for f in activity["forms"]] == [
        ("signup", {"email": "a@b.co", "name": "A"})
    ]
    assert [(d["kind"], d["delivery_id"], d["metric"]) for d in activity["deliveries"]] == [
        ("metric", "d1", "clicked"),
        ("push_metric", "d2", "opened"),
        ("unsubscribe", "d3", "resubscribed"),
    ]
    assert emu.people() == []


def test_rejected_requests_change_nothing(emu: Emu) -> None:
    c = emu.client
    assert c.put("/api/v1/customers/42", json={"id": "43"}).status_code == 400
    assert c.post("/api/v1/customers/42/events", json={"name": ""}).status_code == 400
    assert c.post("/api/v2/batch", json={"batch": []}).status_code == 400
    assert emu.people() == [] and emu.events() == []
