"""GatewayState.refresh: a gateway's in-memory identity map and latest orders take in what other
writers committed to the same store, reading only what is new, and settle races the way the
store's transaction did."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, ConfigError, Credentials
from trackguard.store import OutboxRow, SQLiteStore, StoreError, Write
from trackguard.store.view import GatewayState, keep_fresh


class Counting(SQLiteStore):
    """A real store that records every change read it answers (to show nothing is re-read)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[str, int, int]] = []  # (table, after, rows returned)
        self.fail_next = 0

    def identities_since(self, after: int, limit: int = 10_000) -> list[tuple[int, str, str]]:
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("disk I/O error")
        rows = super().identities_since(after, limit)
        self.reads.append(("identities", after, len(rows)))
        return rows

    def last_orders_since(self, after: int, limit: int = 10_000) -> list[tuple[int, str, int]]:
        rows = super().last_orders_since(after, limit)
        self.reads.append(("profiles", after, len(rows)))
        return rows


def order(person: str, ts: int, key: str) -> Write:
    derive = {"identifiers": {"id": person.removeprefix("id:")}, "total": 1.0, "ts": ts}
    row = OutboxRow(
        received_at=1000.0,
        person=person,
        payload=b'{"v2":{"type":"person","action":"event"}}',
        dedupe_key=key,
        claim_until=10_000.0,
        derive=msgspec.json.encode(derive),
    )
    return Write(outbox=(row,))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SQLiteStore, Counting]]:
    """``other`` is another replica's store; ``mine`` is this gateway's, on the same file."""
    other = SQLiteStore(tmp_path / "tg.db")
    mine = Counting(tmp_path / "tg.db")
    yield other, mine
    other.close()
    mine.close()


def test_load_reads_everything_and_refresh_reads_only_what_is_new(
    stores: tuple[SQLiteStore, Counting],
) -> None:
    other, mine = stores
    other.commit([Write(links=(("ana@x.com", "cus_1"),)), order("id:cus_1", 500, "o1")])
    state = GatewayState.load(mine)
    assert (state.emails, state.orders) == ({"ana@x.com": "cus_1"}, {"id:cus_1": 500})
    assert (state.identity_mark, state.order_mark) == (1, 1)
    assert (state.refreshes, state.bindings_learned, state.orders_learned) == (0, 0, 0)
    mine.reads.clear()

    assert state.refresh(mine) == 0
    assert mine.reads == [("identities", 1, 0), ("profiles", 1, 0)]  # nothing re-read
    other.commit([Write(links=(("bo@x.com", "CUS_2"),)), order("id:cus_1", 900, "o2")])
    mine.reads.clear()
    assert state.refresh(mine) == 2
    assert mine.reads == [("identities", 1, 1), ("profiles", 1, 1)]
    assert state.emails == {"ana@x.com": "cus_1", "bo@x.com": "CUS_2"}
    assert state.folded == {"cus_1": "cus_1", "cus_2": "CUS_2"}
    assert state.orders == {"id:cus_1": 900}
    assert (state.identity_mark, state.order_mark) == (2, 2)
    assert (state.refreshes, state.bindings_learned, state.orders_learned) == (2, 1, 1)


def test_a_large_backlog_is_read_in_pages_without_repeats(
    stores: tuple[SQLiteStore, Counting],
) -> None:
    other, mine = stores
    state = GatewayState.load(mine)
    other.commit([Write(links=tuple((f"u{i}@x.com", f"cus_{i}") for i in range(5)))])
    mine.reads.clear()
    assert state.refresh(mine, page=2) == 5
    assert mine.reads == [
        ("identities", 0, 2),
        ("identities", 2, 2),
        ("identities", 4, 1),
        ("profiles", 0, 0),
    ]
    assert state.emails == {f"u{i}@x.com": f"cus_{i}" for i in range(5)}


def test_the_store_s_binding_replaces_a_provisional_one_from_a_lost_race(
    stores: tuple[SQLiteStore, Counting],
) -> None:
    other, mine = stores
    a, b = GatewayState.load(other), GatewayState.load(mine)
    # Both replicas bind ana at the same moment, each not knowing the other's binding;
    # the first commit wins in the store (INSERT OR IGNORE), each learns its own.
    first = Write(links=(("ana@x.com", "cus_1"),))
    second = Write(links=(("ana@x.com", "CUS_1"),))
    other.commit([first])
    mine.commit([second])
    a.learn(first)
    b.learn(second)
    assert b.id_for_email("ana@x.com") == "CUS_1"
    assert b.id_for_folded("cus_1") == "CUS_1"
    assert mine.identities() == [("ana@x.com", "cus_1")]
    assert a.refresh(other) == 0  # a already agreed with the store
    assert b.refresh(mine) == 1
    for state in (a, b):
        assert state.emails == {"ana@x.com": "cus_1"}
        assert state.folded == {"cus_1": "cus_1"}
    # A later provisional binding of the same email does not undo the store's.
    b.learn(Write(links=(("ana@x.com", "cus_9"),)))
    assert b.id_for_email("ana@x.com") == "cus_1"


def test_ids_differing_only_in_case_follow_the_store_s_order_on_every_replica(
    stores: tuple[SQLiteStore, Counting],
) -> None:
    other, mine = stores
    a, b = GatewayState.load(other), GatewayState.load(mine)
    first = Write(links=(("ana@x.com", "cus_1"),))
    second = Write(links=(("bo@x.com", "CUS_1"),))
    other.commit([first])
    mine.commit([second])
    a.learn(first)
    b.learn(second)
    assert (a.id_for_folded("cus_1"), b.id_for_folded("cus_1")) == ("cus_1", "CUS_1")
    a.refresh(other)
    b.refresh(mine)
    for state in (a, b):
        assert state.emails == {"ana@x.com": "cus_1", "bo@x.com": "CUS_1"}
        assert state.folded == {"cus_1": "cus_1"}  # the first committed form


def test_an_id_already_in_folded_form_is_one_string_for_key_and_value() -> None:
    state = GatewayState()
    state.apply_identities([(1, "ana@x.com", "cus_1"), (2, "bo@x.com", "CUS_2")])
    state.learn(Write(links=(("cy@x.com", "cus_3"),)))
    assert state.folded == {"cus_1": "cus_1", "cus_2": "CUS_2", "cus_3": "cus_3"}
    # The memory a person costs: a folded id holds no copy of itself (bench/sizing.py --people).
    assert [key is value for key, value in state.folded.items()] == [True, False, True]


def test_a_latest_order_only_moves_forward(stores: tuple[SQLiteStore, Counting]) -> None:
    other, mine = stores
    state = GatewayState.load(mine)
    mine.commit([order("id:p", 800, "o1")])
    state.learn(order("id:p", 800, "o1"))
    other.commit([order("id:p", 300, "o2")])  # an older order, committed later elsewhere
    assert state.refresh(mine) == 0
    assert state.last_order_at("id:p") == 800
    other.commit([order("id:p", 1200, "o3")])
    assert state.refresh(mine) == 1
    assert state.last_order_at("id:p") == 1200


def test_keep_fresh_refreshes_at_once_survives_a_failure_and_stops(
    stores: tuple[SQLiteStore, Counting],
) -> None:
    other, mine = stores
    state = GatewayState.load(mine)
    other.commit([Write(links=(("ana@x.com", "cus_1"),))])
    mine.fail_next = 1

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(keep_fresh(state, mine, 0.01, stop))
        async with asyncio.timeout(30):  # a hang guard, not a timing assertion
            while state.id_for_email("ana@x.com") is None:
                await asyncio.sleep(0.005)
            other.commit([Write(links=(("bo@x.com", "cus_2"),))])
            while state.id_for_email("bo@x.com") is None:
                await asyncio.sleep(0.005)
            stop.set()
            await task

    asyncio.run(scenario())
    assert state.refresh_failures == 1
    assert state.emails == {"ana@x.com": "cus_1", "bo@x.com": "cus_2"}
    assert state.identity_mark == 2
    assert state.bindings_learned == 2
    reads = [r for r in mine.reads if r[0] == "identities" and r[2]]
    assert reads == [("identities", 0, 1), ("identities", 1, 1)]  # each row read once


def test_keep_fresh_ends_when_the_store_closes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tg.db")
    state = GatewayState.load(store)
    store.close()

    async def scenario() -> None:
        async with asyncio.timeout(30):
            await keep_fresh(state, store, 0.01, asyncio.Event())

    asyncio.run(scenario())
    assert state.refresh_failures == 0


def test_a_negative_identity_refresh_is_refused(tmp_path: Path) -> None:
    auth = AuthConfig(upstream=Credentials("site", "key"))
    with pytest.raises(ConfigError, match="identity_refresh must be a number of seconds >= 0"):
        create_gateway(GatewayOptions(db=tmp_path / "tg.db", identity_refresh=-1.0), auth)
    assert not (tmp_path / "tg.db").exists()  # refused before the store was opened
