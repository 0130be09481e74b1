"""A quarantine built through the real path: requests → Checker → to_write → the store.

Seven requests at fixed times over three UTC days give eight records of every kind: plan
rejections (v1 and v2 item), contract errors (whole request and v2 item, one body not UTF-8),
and one operation Customer.io refused at delivery (played by a MockTransport).

The same records are built in a SQLite file and in a PostgreSQL schema of their own:
``built_target`` and ``target`` are a path or a ``postgresql://...?schema=`` URL (one test per
kind), so a test states its exact expectations once for both stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import msgspec
import pytest
from click.testing import CliRunner, Result

from pg_server import fresh_schema
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.delivery.transport import MockTransport, UpstreamRequestRecord, UpstreamResponse
from trackguard.delivery.worker import DeliveryWorker
from trackguard.ingest import to_write
from trackguard.plan.loader import load_plan
from trackguard.store.base import Store
from trackguard.store.sqlite import SQLiteStore, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: 2026-11-01T10:00:00Z
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()
DAY = 86_400.0
EVENTS = "/api/v1/customers/cus_1/events"
AUTH = ("Authorization", "Basic c2l0ZTprZXk=")


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _order(**data: Any) -> dict[str, Any]:
    return {"name": "order_completed", "data": {"order_id": "O-1", "currency": "USD", **data}}


def _item(action: str, name: str | None = None, **attributes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "person", "action": action, "identifiers": {"id": "cus_2"}}
    if name is not None:
        item["name"] = name
    if attributes:
        item["attributes"] = attributes
    return item


#: (received_at, request); the comment is what each one puts in the quarantine.
REQUESTS: list[tuple[float, Request]] = [
    # 1: plan, order_completed, property_type
    (
        T0,
        Request(
            method="POST",
            path=EVENTS,
            body=_json(_order(total="abc")),
            headers=(AUTH, ("Content-Type", "application/json")),
            source="storefront",
        ),
    ),
    # 2: contract, no event name, event_name_blank
    (T0 + 60, Request(method="POST", path=EVENTS, body=b'{"data":{}}', source="backend")),
    # accepted: nothing quarantined
    (T0 + 120, Request(method="POST", path=EVENTS, body=_json(_order(total=5)), source="backend")),
    # 3: contract, a body that is not UTF-8, invalid_json
    (T0 + DAY, Request(method="POST", path=EVENTS, body=b"\xff\xfe{", source="backend")),
    # 4 and 5: a v2 batch, item 0 plan property_constraint, item 2 contract v2_action_invalid;
    # item 1 is accepted and later refused by Customer.io (record 8)
    (
        T0 + DAY + 3600,
        Request(
            method="POST",
            path="/api/v2/batch",
            body=_json(
                {
                    "batch": [
                        _item("event", "order_completed", order_id="O-2", total=-1, currency="USD"),
                        _item("event", "product_viewed", product_id="P-1"),
                        _item("bogus"),
                    ]
                }
            ),
            source="storefront",
        ),
    ),
    # 6: plan, order_completed, two codes
    (
        T0 + 2 * DAY,
        Request(
            method="POST",
            path=EVENTS,
            body=_json({"name": "order_completed", "data": {"total": "x"}}),
            source="mobile",
        ),
    ),
    # 7: plan, an attribute (no event), property_constraint
    (
        T0 + 2 * DAY + 1,
        Request(
            method="PUT",
            path="/api/v1/customers/cus_3",
            body=b'{"country":"France"}',
            source="mobile",
        ),
    ),
]


def build_store(target: Path | str) -> Any:
    """The store at ``target`` (a path: SQLite; a URL: PostgreSQL) with every record above
    committed, and the upstream refusal delivered."""
    checker = Checker(load_plan(EXAMPLES / "d2c-plan.yaml"))
    store: Store = open_store(target, synchronous="NORMAL")
    for received_at, request in REQUESTS:
        store.commit([to_write(request, checker.check(request), received_at)])
    refusal = {
        "errors": [
            {
                "batch_index": 0,
                "reason": "invalid",
                "field": "name",
                "message": "event name is reserved",
            }
        ]
    }

    def upstream(request: UpstreamRequestRecord) -> UpstreamResponse:
        return UpstreamResponse(207, (), msgspec.json.encode(refusal))

    clock = [T0 + 3 * DAY]
    worker = DeliveryWorker(
        store,
        MockTransport(upstream),
        clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        linger=0.0,
    )
    worker.run_once()
    return store


#: The CLI's clock in tests: one day after the last request.
NOW = T0 + 3 * DAY

Invoke = Callable[..., Result]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store file, built once; tests copy it (``store_path``) so none sees another's purge."""
    path = tmp_path_factory.mktemp("quarantine") / "built.db"
    build_store(path).close()
    return path


@pytest.fixture
def store_path(built: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tg.db"
    path.write_bytes(built.read_bytes())  # closed cleanly: the WAL was checkpointed
    return path


@pytest.fixture(scope="session")
def built_pg() -> Iterator[str]:
    """The PostgreSQL store's URL, built once (tests that change it use ``target``)."""
    with fresh_schema() as (url, schema):
        target = f"{url}?schema={schema}"
        build_store(target).close()
        yield target


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    """The store kind a test runs against (each test runs once per kind)."""
    return str(request.param)


@pytest.fixture
def built_target(kind: str, request: pytest.FixtureRequest) -> str:
    """The built store of each kind, for tests that only read: a path or a URL."""
    return str(request.getfixturevalue("built" if kind == "sqlite" else "built_pg"))


@pytest.fixture
def target(kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A store of each kind with the records above, the test's own: a path or a URL."""
    if kind == "sqlite":
        yield str(request.getfixturevalue("store_path"))
        return
    with fresh_schema() as (url, schema):
        where = f"{url}?schema={schema}"
        build_store(where).close()
        yield where


@pytest.fixture
def any_store(target: str) -> Iterator[Any]:
    """The store at ``target`` open, as a running gateway holds it while the CLI reads it."""
    s = open_store(target, synchronous="NORMAL")
    yield s
    s.close()


@pytest.fixture
def empty_target(kind: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty store of each kind (a path or a URL)."""
    if kind == "sqlite":
        SQLiteStore(tmp_path / "empty.db").close()
        yield str(tmp_path / "empty.db")
        return
    with fresh_schema() as (url, schema):
        where = f"{url}?schema={schema}"
        open_store(where).close()
        yield where


@pytest.fixture
def store(store_path: Path) -> Iterator[SQLiteStore]:
    """The store open, as a running gateway holds it while the CLI reads it."""
    s = SQLiteStore(store_path, synchronous="NORMAL")
    yield s
    s.close()


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``invoke(command, *args)``: run a click command at :data:`NOW`, wide and colourless."""
    monkeypatch.setattr("trackguard.cli.quarantine._now", lambda: NOW)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None, "TERM": "dumb"})

    def run(command: click.Command, *args: str | Path) -> Result:
        return runner.invoke(command, [str(a) for a in args], catch_exceptions=False)

    return run
