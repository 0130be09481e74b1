"""PostgresStore's own guarantees: several processes (here: stores, each with its own
connections) leasing and committing at once, lease expiry across stores, change numbers in
commit order, schema versions, and losing the database."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator

import psycopg
import pytest
from store_kinds import lease_case, pg_url

from trackguard.store import OutboxRow, StoreClosed, StoreError, Write, open_store
from trackguard.store.postgres import SCHEMA_VERSION, PostgresStore
from trackguard.store.urls import display_url, split_url


def row(person: str, **kw: object) -> OutboxRow:
    return OutboxRow(received_at=1000.0, person=person, payload=b'{"v2":{}}', **kw)  # type: ignore[arg-type]


@pytest.fixture
def url_schema(pg_schema: tuple[str, str]) -> tuple[str, str]:
    return pg_schema


@pytest.fixture
def opened(url_schema: tuple[str, str]) -> Iterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for s in stores:
        s.close()


def new_store(
    url_schema: tuple[str, str], opened: list[PostgresStore], **kw: object
) -> PostgresStore:
    url, schema = url_schema
    s = PostgresStore(url, schema=schema, **kw)  # type: ignore[arg-type]
    opened.append(s)
    return s


def admin(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def cut(url: str, store: PostgresStore) -> None:
    """Terminate the store's (one) connection from outside, as a database restart would."""
    ((pid,),) = store._read("SELECT pg_backend_pid()")
    assert admin(url, f"SELECT pg_terminate_backend({pid})") == [(True,)]


def test_four_stores_leasing_at_once_never_share_a_row_and_keep_each_persons_order(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    stores = [new_store(url_schema, opened) for _ in range(4)]
    persons = [f"p{i % 9}" for i in range(400)]
    stores[0].commit([Write(outbox=tuple(row(p) for p in persons))])
    leased: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def deliver(store: PostgresStore) -> None:
        try:
            idle = 0
            while idle < 3:
                rows = store.lease(7, now=1.0)
                idle = 0 if rows else idle + 1
                with lock:  # in the order rows are handed out, before they are marked
                    leased.extend(r.seq for r in rows)
                store.mark_delivered([r.seq for r in rows], now=2.0)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(leased) == list(range(1, 401))  # every row exactly once
    by_person: dict[str, list[int]] = defaultdict(list)
    for seq in leased:
        by_person[persons[seq - 1]].append(seq)
    assert all(seqs == sorted(seqs) for seqs in by_person.values())
    stats = stores[1].outbox_stats()
    assert (stats.pending, stats.delivered, stats.failed) == (0, 400, 0)


def test_a_dead_workers_lease_expires_and_another_store_leases_the_rows(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    a = new_store(url_schema, opened, lease_seconds=30.0)
    b = new_store(url_schema, opened, lease_seconds=30.0)
    a.commit([Write(outbox=(row("A"), row("A"), row("B")))])
    assert [r.seq for r in a.lease(2, now=100.0)] == [1, 2]
    assert [r.seq for r in b.lease(10, now=100.0)] == [3]  # A's next row waits for A's first
    assert b.lease(10, now=129.9) == []  # 1 and 2 are a's until 130; 3 is b's
    a.close()  # a dies without marking its rows
    again = b.lease(10, now=130.0)
    assert [(r.seq, r.next_attempt_at) for r in again] == [(1, 160.0), (2, 160.0), (3, 160.0)]


def test_concurrent_commits_from_three_stores_number_bindings_in_commit_order(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    writers = [new_store(url_schema, opened) for _ in range(3)]
    reader = new_store(url_schema, opened)
    commits = 60
    done = threading.Barrier(4)
    finished = threading.Event()
    errors: list[BaseException] = []

    def write(k: int, store: PostgresStore) -> None:
        try:
            done.wait()
            for n in range(commits):
                store.commit([Write(links=((f"w{k}n{n}a@x.com", "c"), (f"w{k}n{n}b@x.com", "c")))])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k, s)) for k, s in enumerate(writers)]
    for t in threads:
        t.start()
    done.wait()
    seen: list[int] = []
    mark = 0
    while True:
        last_round = finished.is_set()
        while page := reader.identities_since(mark, limit=5):
            seen += [s for s, _, _ in page]
            mark = page[-1][0]
        if last_round:
            break
        if not any(t.is_alive() for t in threads):
            finished.set()
    for t in threads:
        t.join()
    assert errors == []
    # Read on from the mark while three writers committed: nothing skipped, nothing twice.
    assert seen == list(range(1, 3 * commits * 2 + 1))
    # Each commit's two bindings got consecutive numbers (one commit at a time).
    emails = {s: e for s, e, _ in reader.identities_since(0, limit=1000)}
    assert all(
        emails[s].endswith("a@x.com") and emails[s + 1].endswith("b@x.com") for s in seen[::2]
    )


def test_lease_matches_the_reference_model(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    """Random queues against a brute-force reading of the protocol (as for SQLite)."""
    s = new_store(url_schema, opened)
    rnd = random.Random(11)
    for case in range(15):
        admin(url_schema[0], f'TRUNCATE "{url_schema[1]}".outbox')
        admin(url_schema[0], f'UPDATE "{url_schema[1]}".sequences SET last = 0')
        leased, expected, context = lease_case(s, rnd)
        assert leased == expected, (case, context)


def test_a_newer_schema_is_refused_and_a_foreign_outbox_too(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    url, schema = url_schema
    new_store(url_schema, opened).close()
    admin(url, f'UPDATE "{schema}".schema_version SET version = {SCHEMA_VERSION + 1}')
    with pytest.raises(StoreError) as e:
        PostgresStore(url, schema=schema)
    assert str(e.value) == (
        f"{url} (schema {schema}): schema version {SCHEMA_VERSION + 1} is newer than this"
        f" trackguard understands ({SCHEMA_VERSION}); upgrade trackguard"
    )
    other = f"{schema}_x"
    try:
        admin(url, f'CREATE SCHEMA "{other}"; CREATE TABLE "{other}".outbox (x int)')
        with pytest.raises(StoreError, match="has an outbox table but no schema_version"):
            PostgresStore(url, schema=other)
    finally:
        admin(url, f'DROP SCHEMA "{other}" CASCADE')


def test_reopening_migrates_nothing_and_keeps_the_rows(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    new_store(url_schema, opened).commit([Write(outbox=(row("a"),))])
    again = new_store(url_schema, opened)
    assert again.outbox_stats().pending == 1
    assert admin(url_schema[0], f'SELECT version FROM "{url_schema[1]}".schema_version') == [
        (SCHEMA_VERSION,)
    ]


def test_an_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StoreError) as e:
        PostgresStore("postgresql://tg:s3cret@127.0.0.1:1/test", connect_timeout=1)
    message = str(e.value)
    assert message.startswith("postgresql://tg@127.0.0.1:1/test: cannot connect to PostgreSQL: ")
    assert "s3cret" not in message
    assert "\n" not in message


def test_lost_connections_fail_one_call_each_then_the_store_reconnects(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    s = new_store(url_schema, opened)
    s.commit([Write(outbox=(row("a"),))])
    # The database restarts: the store's connection is cut (only one: calls were serial).
    cut(url_schema[0], s)
    # A commit is pipelined: libpq may find the connection closed before it reads the
    # server's last words ("terminating connection").
    with pytest.raises(StoreError, match=r"terminat|server closed the connection"):
        s.commit([Write(outbox=(row("b"),))])  # on the dead connection: 503, nothing stored
    s.commit([Write(outbox=(row("c"),))])  # on a new connection
    assert [r.person for r in s.outbox_list()] == ["c", "a"]
    cut(url_schema[0], s)
    assert s.healthy() is False  # /readyz: not ready
    assert s.healthy() is True  # reconnected
    s.close()
    with pytest.raises(StoreClosed):
        s.outbox_stats()


def test_open_store_opens_postgresql_urls_with_a_schema(url_schema: tuple[str, str]) -> None:
    url, schema = url_schema
    s = open_store(f"{url}?schema={schema}")
    try:
        assert isinstance(s, PostgresStore)
        assert (s.schema, s.name) == (schema, f"{url}?schema={schema}")
        s.commit([Write(outbox=(row("a"),))])
    finally:
        s.close()
    assert admin(url, f'SELECT person FROM "{schema}".outbox') == [("a",)]


def test_urls_split_and_shown_without_password() -> None:
    assert split_url("postgresql://u@h:5/db?schema=s&sslmode=disable") == (
        "postgresql://u@h:5/db?sslmode=disable",
        "s",
    )
    assert split_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    assert display_url("postgresql://u:pw@h:5/db?x=1") == "postgresql://u@h:5/db?x=1"
    assert display_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_pg_url_is_the_test_server() -> None:
    assert pg_url().endswith("@127.0.0.1:5432/test")


def test_the_urls_application_name_wins_and_a_bad_parameter_is_one_error(
    url_schema: tuple[str, str],
) -> None:
    url, schema = url_schema
    s = PostgresStore(f"{url}?schema={schema}&application_name=tg-{schema}")
    try:
        ((pid,),) = s._read("SELECT pg_backend_pid()")
        assert admin(url, f"SELECT application_name FROM pg_stat_activity WHERE pid = {pid}") == [
            (f"tg-{schema}",)
        ]
    finally:
        s.close()
    bad = f"{url}?sslmode=require&bogus=1"
    with pytest.raises(StoreError) as e:
        PostgresStore(bad)
    assert str(e.value) == f'{bad}: not a PostgreSQL URL: invalid URI query parameter: "bogus"'


def test_a_commit_the_database_refuses_leaves_nothing_and_the_next_one_numbers_on(
    url_schema: tuple[str, str], opened: list[PostgresStore]
) -> None:
    """A commit's writes go in one pipeline: a statement the server refuses (text cannot hold
    NUL) rolls every write of it back, the claim and the numbers it took included, and the
    connection serves the next commit."""
    s = new_store(url_schema, opened)
    s.commit([Write(outbox=(row("a"),))])
    bad = row("b", dedupe_key="k", claim_until=2000.0, event_name="\x00")
    with pytest.raises(StoreError, match="unsupported Unicode escape"):
        s.commit([Write(outbox=(bad,), links=(("b@x.com", "cus_b"),))])
    again = row("c", dedupe_key="k", claim_until=2000.0)
    assert s.commit([Write(outbox=(again,))]) == [0]  # the key was not taken
    assert [(r.seq, r.person) for r in s.outbox_list()] == [(2, "c"), (1, "a")]
    assert (s.identities(), s.outbox_stats().pending) == ([], 2)
