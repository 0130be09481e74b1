"""A commit's reads stay index lookups however the tables grew after the store opened.

psycopg prepares a statement on its fifth execution and PostgreSQL may then keep a generic plan
made from the table as it was: on a new store, a sequential scan of a nearly empty table. Until
the table is next analyzed (never, with autovacuum off) every commit would read the whole claims
table. The store's own connections here report each statement's plan back as a notice
(``auto_explain``, PostgreSQL's own module), so the test reads the plans the commit ran.

With the statements prepared as before, the claims and identities cases fail (a sequential
scan); PostgreSQL 15 happens to keep an index plan for the profiles read either way, which
the store plans at every commit all the same (its best plan depends on the table's size too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest

from trackguard.store import OutboxRow, Write
from trackguard.store.postgres import PostgresStore

#: Rows put in a table from outside once the store has run its statements on an empty one.
GROWN = 30_000


class ExplainedStore(PostgresStore):
    """A PostgresStore whose connections report every statement's plan as a notice."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.plans: list[str] = []
        super().__init__(*args, **kwargs)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = super()._connect()
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_level = 'notice'")
        conn.add_notice_handler(lambda d: self.plans.append(d.message_primary or ""))
        return conn


def traffic(n: int) -> Write:
    """A request's write as live traffic makes them: an order (a claim, a profile to derive,
    an email to bind) and 13 events keyed by content hashes, keys as long as the gateway's."""
    derive = {"identifiers": {"id": f"p{n}"}, "total": 10.0, "ts": 1000 + n}
    order = OutboxRow(
        received_at=1000.0 + n,
        person=f"id:p{n}",
        payload=b'{"v2":{"type":"person","action":"event"}}',
        dedupe_key=f"order:{n}",
        claim_until=1_000_000.0,
        derive=msgspec.json.encode(derive),
    )
    events = tuple(
        OutboxRow(
            received_at=1000.0 + n,
            person=f"id:p{n}",
            payload=b'{"v2":{"type":"person","action":"event"}}',
            dedupe_key=f"retry:{1000 + n}:{hashlib.sha256(f'{n}.{i}'.encode()).hexdigest()}",
            claim_until=1_000_000.0,
        )
        for i in range(13)
    )
    return Write(outbox=(order, *events), links=((f"new{n}@example.com", f"p{n}"),))


#: What the commit reads, the table it reads, and the statement that fills it from outside.
GROWTH = {
    "claims": "INSERT INTO claims (key, expires_at, person)"
    " SELECT 'grown:' || g, 1e12, 'id:x' FROM generate_series(1, %s) AS g",
    "profiles": "INSERT INTO profiles (person, order_count, lifetime_value, seq)"
    " SELECT 'id:grown' || g, 1, 1, 100000 + g FROM generate_series(1, %s) AS g",
    "identities": "INSERT INTO identities (email, id, seq)"
    " SELECT 'grown' || g || '@example.com', 'g' || g, 100000 + g"
    " FROM generate_series(1, %s) AS g",
}


@pytest.fixture
def store(pg_schema: tuple[str, str]) -> Iterator[ExplainedStore]:
    url, schema = pg_schema
    s = ExplainedStore(url, schema=schema)
    yield s
    s.close()


@pytest.mark.parametrize("table", sorted(GROWTH))
def test_a_commit_reads_a_grown_table_through_its_index(
    store: ExplainedStore, pg_schema: tuple[str, str], table: str
) -> None:
    # psycopg prepares on the fifth execution, PostgreSQL weighs a generic plan after five
    # custom ones: twenty commits on near-empty tables settle any statement on one.
    for n in range(20):
        store.commit([traffic(n)])
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'SET search_path TO "{schema}"')
        admin.execute(GROWTH[table], (GROWN,))
    store.plans.clear()
    store.commit([traffic(100)])
    plans = [p for p in store.plans if f"on {table}" in p or f"using {table}" in p]
    reads = [p for p in plans if "Scan" in p]
    assert reads, f"no plan read {table}: {store.plans}"
    assert not [p for p in reads if f"Seq Scan on {table}" in p], reads
    assert all(f"{table}_pkey" in p for p in reads), reads
