"""Dedupe claims: SQLite's two ways (row by row, read first) and PostgreSQL's (read first, one
write) give the same answers and rows; each SQLite commit uses the way that was cheaper for
the previous one, and a PostgreSQL commit reads and writes its claims in one statement each."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from trackguard.store import OutboxRow, QuarantineRecord, SQLiteStore, Write
from trackguard.store.postgres import PostgresStore


def claiming(person: str, key: str, at: float, ttl: float = 100.0) -> OutboxRow:
    return OutboxRow(
        person=person,
        received_at=at,
        payload=b'{"v2":{"type":"person","action":"event"}}',
        dedupe_key=key,
        claim_until=at + ttl,
    )


KEPT = QuarantineRecord(received_at=0.0, kind="plan", method="POST", path="/api/v2/entity")

# Commits in order: each a list of writes, each write a tuple of claiming rows.
COMMITS: list[list[tuple[OutboxRow, ...]]] = [
    [
        (claiming("id:1", "k:new", 10.0),),
        (claiming("id:1", "k:twice", 10.0), claiming("id:1", "k:twice", 11.0)),  # a retry
        (claiming("id:1", "k:other", 10.0),),
        (claiming("id:2", "k:other", 12.0),),  # another person's, same commit: a conflict
        (claiming("id:1", "k:edge", 10.0, ttl=5.0),),  # expires at 15.0
        (claiming("id:1", "k:soon", 10.0, ttl=1.0),),  # expires at 11.0
        (claiming("id:2", "k:soon", 11.0),),  # expired exactly now: taken by id:2
    ],
    [
        (claiming("id:1", "k:new", 20.0),),  # held: a duplicate
        (claiming("id:3", "k:new", 21.0),),  # held by id:1: a conflict
        (claiming("id:3", "k:edge", 15.0),),  # expired at 15.0: id:3 takes it
        (claiming("id:3", "k:edge", 16.0),),  # now id:3's: a duplicate
        (claiming("id:4", "k:v6", 20.0),),  # a claim of a v6 file (no person): a duplicate
        (claiming("id:4", "k:fresh", 20.0),),
    ],
]
DUPLICATES = [[0, 1, 0, 0, 0, 0, 0], [1, 0, 0, 1, 1, 0]]
CLAIMS = [
    ("k:edge", 115.0, "id:3"),
    ("k:fresh", 120.0, "id:4"),
    ("k:new", 110.0, "id:1"),
    ("k:other", 110.0, "id:1"),
    ("k:soon", 111.0, "id:2"),
    ("k:twice", 110.0, "id:1"),
    ("k:v6", 1000.0, None),
]
OUTBOX = [
    ("id:1", "k:new"),
    ("id:1", "k:twice"),
    ("id:1", "k:other"),
    ("id:1", "k:edge"),
    ("id:1", "k:soon"),
    ("id:2", "k:soon"),
    ("id:3", "k:edge"),
    ("id:4", "k:fresh"),
]


# A claim of a v6 SQLite file (claims did not name their person), copied as it is.
V6_CLAIM = "INSERT INTO claims (key, expires_at, person) VALUES ('k:v6', 1000.0, NULL)"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tg.db")
    with s.transaction() as conn:
        conn.execute(V6_CLAIM)
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_schema: tuple[str, str]) -> Iterator[PostgresStore]:
    url, schema = pg_schema
    s = PostgresStore(url, schema=schema)
    with s.transaction() as cur:
        cur.execute(V6_CLAIM)
    yield s
    s.close()


def statements(store: SQLiteStore) -> list[str]:
    """The statements the store's writer runs from now on (set_trace_callback)."""
    seen: list[str] = []
    store._writer.set_trace_callback(seen.append)
    return seen


def run(store: SQLiteStore | PostgresStore, read_first: bool | None) -> list[list[int]]:
    """COMMITS on ``store``, every commit claiming one way (None: as the store chooses)."""
    out = []
    for commit in COMMITS:
        if read_first is not None and isinstance(store, SQLiteStore):
            store._claims_read_first = read_first
        out.append(store.commit([Write(outbox=rows, kept_as=KEPT) for rows in commit]))
    return out


QUERIES = {
    "claims": "SELECT key, expires_at, person FROM claims ORDER BY key",
    "outbox": "SELECT person, dedupe_key FROM outbox ORDER BY seq",
    "counts": "SELECT name, n FROM counts",
    "quarantine": "SELECT codes FROM quarantine ORDER BY id",
}


def contents(store: SQLiteStore | PostgresStore) -> dict[str, Any]:
    if isinstance(store, PostgresStore):
        with store.connection() as pg:
            found = {name: pg.execute(q).fetchall() for name, q in QUERIES.items()}
    else:
        conn = sqlite3.connect(store.path)
        try:
            found = {name: conn.execute(q).fetchall() for name, q in QUERIES.items()}
        finally:
            conn.close()
    return {**found, "counts": dict(found["counts"])}


@pytest.fixture(params=["row_by_row", "read_first", "postgres"])
def way(request: pytest.FixtureRequest) -> tuple[SQLiteStore | PostgresStore, bool | None]:
    """A store and how its commits claim: SQLite row by row, SQLite reading first, PostgreSQL
    (which always reads first)."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_store"), None
    return request.getfixturevalue("sqlite_store"), request.param == "read_first"


def test_store_claims_every_way_gives_the_same_answers_and_rows(
    way: tuple[SQLiteStore | PostgresStore, bool | None],
) -> None:
    store, read_first = way
    assert run(store, read_first) == DUPLICATES
    assert contents(store) == {
        "claims": CLAIMS,
        "outbox": OUTBOX,
        "counts": {
            "pending": 8,
            "delivered": 0,
            "failed": 0,
            "quarantine": 2,
            "duplicate": 4,
            "dedupe_conflict": 2,
        },
        "quarantine": [('["dedupe_key_conflict"]',), ('["dedupe_key_conflict"]',)],
    }


def test_store_claims_read_first_after_a_commit_with_many_keys_held(
    sqlite_store: SQLiteStore,
) -> None:
    seen = statements(sqlite_store)

    def claims_statements() -> dict[str, int]:
        kinds = {"upsert": "INSERT INTO claims", "holder": "SELECT person FROM claims"}
        found = {name: sum(s.startswith(p) for s in seen) for name, p in kinds.items()}
        found["read_first"] = sum("json_each(" in s for s in seen)
        seen.clear()
        return found

    run(sqlite_store, None)
    # The first commit went row by row (8 upserts, 2 holders read); 2 of its 8 keys were held
    # (k:twice's retry, k:other's conflict), a fifth or more: the second read first (one read,
    # then upserts for its 2 keys taken).
    assert claims_statements() == {"upsert": 8 + 2, "holder": 2, "read_first": 1}
    # 3 of the second commit's 6 keys were held: the next commit reads first too...
    sqlite_store.commit([Write(outbox=(claiming("id:5", "k:a", 30.0),))])
    assert claims_statements() == {"upsert": 1, "holder": 0, "read_first": 1}
    # ...and after one whose keys were all new, the next goes row by row again.
    sqlite_store.commit([Write(outbox=(claiming("id:5", "k:b", 30.0),))])
    assert claims_statements() == {"upsert": 1, "holder": 0, "read_first": 0}


def test_store_claims_postgres_reads_and_writes_a_commits_claims_in_one_statement_each(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any]] = []
    execute = psycopg.Cursor.execute

    def traced(cur: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
        if " claims" in str(query):  # the keys read, or the rows written (JSON)
            given = msgspec.json.decode(params[0])
            seen.append((str(query).split(" FROM")[0][:30], given))
        return execute(cur, query, params, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", traced)
    assert run(pg_store, None) == DUPLICATES
    # Each commit: one read of its keys' claims, one write of the keys it took, each once
    # (two rows of the first commit took k:soon; its claim is the second's).
    first, second = ([r.dedupe_key for w in commit for r in w] for commit in COMMITS)
    taken_first = [
        ["k:new", "110.0", "id:1"],
        ["k:twice", "110.0", "id:1"],
        ["k:other", "110.0", "id:1"],
        ["k:edge", "15.0", "id:1"],
        ["k:soon", "111.0", "id:2"],
    ]
    assert seen == [
        ("SELECT key, expires_at, person", first),
        ("INSERT INTO claims (key, expir", taken_first),
        ("SELECT key, expires_at, person", second),
        (
            "INSERT INTO claims (key, expir",
            [["k:edge", "115.0", "id:3"], ["k:fresh", "120.0", "id:4"]],
        ),
    ]


def test_store_claims_expired_ones_are_swept_oldest_first_a_bounded_batch_at_a_time(
    way: tuple[SQLiteStore | PostgresStore, bool | None],
) -> None:
    store, read_first = way
    if read_first is not None and isinstance(store, SQLiteStore):
        store._claims_read_first = read_first
    store.claim_sweep.every, store.claim_sweep.limit = 3, 2

    def claim(key: str, at: float, ttl: float) -> None:
        store.commit([Write(outbox=(claiming("id:1", key, at, ttl=ttl),))])

    def held() -> list[tuple[str, float]]:
        return [(key, until) for key, until, _ in contents(store)["claims"]]

    claim("k:a", 10.0, 1.0)
    claim("k:b", 11.0, 1.0)
    claim("k:c", 12.0, 1.0)  # the 3rd commit sweeps what expired by 12: k:a and k:b
    assert held() == [("k:c", 13.0), ("k:v6", 1000.0)]
    claim("k:d", 13.0, 1.0)
    claim("k:e", 14.0, 1.0)
    claim("k:f", 500.0, 1000.0)  # the 6th: k:c, k:d and k:e expired, the oldest two go
    assert held() == [("k:e", 15.0), ("k:f", 1500.0), ("k:v6", 1000.0)]
    claim("k:g", 501.0, 1000.0)
    claim("k:h", 502.0, 1000.0)
    claim("k:i", 503.0, 1000.0)  # the 9th: k:e, the one left; k:v6 holds until 1000
    assert held() == [
        ("k:f", 1500.0),
        ("k:g", 1501.0),
        ("k:h", 1502.0),
        ("k:i", 1503.0),
        ("k:v6", 1000.0),
    ]
