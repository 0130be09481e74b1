"""What a commit costs SQLite. The outbox and quarantine CHECK constraints are comparisons,
not ``IN`` lists: SQLite builds a temporary index per inserted row to check an ``IN`` list.
Files written with the lists (every file before) are rewritten in place when opened, keep
every row, and refuse exactly what they refused before. New rows take an insert that binds
no None and no bytes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from store_schema_env import schema_file

from trackguard.store.base import OutboxRow, Write
from trackguard.store.sqlite import (
    _INSERT_NEW_OUTBOX,
    _INSERT_NEW_QUARANTINE,
    _INSERT_OUTBOX,
    _INSERT_QUARANTINE,
    SCHEMA_VERSION,
    SQLiteStore,
)

_ROW = OutboxRow(received_at=1.0, person="id:1", payload=b'{"v2":{}}')


def _tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as con:
        return dict(
            con.execute(
                "SELECT name, sql FROM sqlite_master WHERE name IN ('outbox', 'quarantine')"
            ).fetchall()
        )


def test_a_file_with_in_lists_is_rewritten_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with schema_file(path, SCHEMA_VERSION) as con:
        con.execute(
            "INSERT INTO outbox (received_at, person, payload, state, attempts, next_attempt_at)"
            " VALUES (1.0, 'id:7', x'7b7d', 'delivered', 1, 0.0)"
        )
    assert "state IN ('pending', 'delivered', 'failed')" in _tables(path)["outbox"]
    store = SQLiteStore(path)
    try:
        store.commit([Write(outbox=(_ROW,))])
    finally:
        store.close()
    tables = _tables(path)
    assert " IN (" not in tables["outbox"] + tables["quarantine"]
    assert (
        "CHECK ((state = 'pending' OR state = 'delivered' OR state = 'failed'))" in tables["outbox"]
    )
    assert (
        "CHECK ((kind = 'contract' OR kind = 'plan' OR kind = 'upstream'))" in tables["quarantine"]
    )
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        rows = con.execute("SELECT person, state FROM outbox ORDER BY seq").fetchall()
        assert rows == [("id:7", "delivered"), ("id:1", "pending")]


def test_a_rewritten_file_is_not_touched_again(tmp_path: Path) -> None:
    path = tmp_path / "tg.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as con:
        version = con.execute("PRAGMA schema_version").fetchone()
    SQLiteStore(path).close()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA schema_version").fetchone() == version


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "INSERT INTO outbox (received_at, person, payload, state, attempts, next_attempt_at)"
            " VALUES (1.0, 'id:1', x'00', 'sent', 0, 0.0)",
            "CHECK constraint failed: (state = 'pending' OR state = 'delivered'"
            " OR state = 'failed')",
        ),
        (
            "INSERT INTO quarantine (received_at, kind, method, path, headers, body,"
            " plan_version, status, findings, codes, state)"
            " VALUES (1.0, 'other', 'POST', '/', '[]', x'', '', 400, '[]', '[]', 'quarantined')",
            "CHECK constraint failed: (kind = 'contract' OR kind = 'plan' OR kind = 'upstream')",
        ),
        (
            "INSERT INTO quarantine (received_at, kind, method, path, headers, body,"
            " plan_version, status, findings, codes, state)"
            " VALUES (1.0, 'plan', 'POST', '/', '[]', x'', '', 400, '[]', '[]', 'gone')",
            "CHECK constraint failed: (state = 'quarantined' OR state = 'replayed'"
            " OR state = 'still_invalid')",
        ),
    ],
)
def test_the_constraints_refuse_what_they_refused(tmp_path: Path, sql: str, message: str) -> None:
    path = tmp_path / "tg.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as con, pytest.raises(sqlite3.IntegrityError) as caught:
        con.execute(sql)
    assert str(caught.value) == message


def _ephemeral(con: sqlite3.Connection, sql: str) -> bool:
    """Whether ``sql``'s program opens a temporary index."""
    ops = [row[1] for row in con.execute(f"EXPLAIN {sql}", [None] * sql.count("?"))]
    return "OpenEphemeral" in ops


def test_inserts_build_no_temporary_index(tmp_path: Path) -> None:
    path = tmp_path / "tg.db"
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as con:
        assert [_ephemeral(con, sql) for sql in (_INSERT_OUTBOX, _INSERT_QUARANTINE)] == [
            False,
            False,
        ]


def test_the_inserts_of_new_rows_build_no_temporary_index_either(tmp_path: Path) -> None:
    """The inserts a gateway's commits take (every row new): one per ``IN`` list on a file
    not yet rewritten, none once it is."""
    inserts = (_INSERT_NEW_OUTBOX, _INSERT_NEW_QUARANTINE)
    path = tmp_path / "old.db"
    with schema_file(path, SCHEMA_VERSION) as con:
        assert [_ephemeral(con, sql) for sql in inserts] == [True, True]
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as con:
        assert [_ephemeral(con, sql) for sql in inserts] == [False, False]


def test_new_rows_and_other_rows_keep_their_columns_and_order(tmp_path: Path) -> None:
    """New rows take the insert with literal constants and a bytearray payload; a commit with
    any other row takes the general insert for all, so ``seq`` keeps the commit's order."""
    path = tmp_path / "tg.db"
    store = SQLiteStore(path)
    try:
        store.commit(
            [
                Write(
                    outbox=(
                        _ROW,
                        _ROW.__class__(
                            received_at=2.0, person="id:2", payload=b"\x00\xff", source="s"
                        ),
                    )
                )
            ]
        )
        done = OutboxRow(
            received_at=3.0,
            person="id:1",
            payload=b"{}",
            state="delivered",
            attempts=1,
            delivered_at=3.5,
        )
        store.commit([Write(outbox=(done, _ROW))])
    finally:
        store.close()
    with sqlite3.connect(path) as con:
        rows = con.execute(
            "SELECT seq, person, payload, typeof(payload), source, state, attempts,"
            " last_error, delivered_at FROM outbox ORDER BY seq"
        ).fetchall()
    assert rows == [
        (1, "id:1", b'{"v2":{}}', "blob", None, "pending", 0, None, None),
        (2, "id:2", b"\x00\xff", "blob", "s", "pending", 0, None, None),
        (3, "id:1", b"{}", "blob", None, "delivered", 1, None, 3.5),
        (4, "id:1", b'{"v2":{}}', "blob", None, "pending", 0, None, None),
    ]
