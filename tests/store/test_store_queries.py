"""``StoreReads``: the shared reads of both stores, over the two calls each store defines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from trackguard.store.postgres import PostgresStore
from trackguard.store.queries import StoreReads
from trackguard.store.sqlite import SQLiteStore


def test_both_stores_define_every_abstract_method() -> None:
    assert StoreReads.__abstractmethods__ == frozenset({"_read", "set_meta"})
    assert SQLiteStore.__abstractmethods__ == frozenset()
    assert PostgresStore.__abstractmethods__ == frozenset()


def test_a_store_without_its_writes_cannot_be_made() -> None:
    class ReadsOnly(StoreReads):
        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
            return [(2,)]

    with pytest.raises(TypeError, match="set_meta"):
        ReadsOnly()  # type: ignore[abstract]
