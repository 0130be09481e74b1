"""LISTEN/NOTIFY wake-ups on PostgreSQL: a commit by another store instance wakes a deliverer
that would otherwise sleep for an hour, and a gateway's identity refresh; a lost listening
connection is logged, comes back on its own, and wakes its subscribers again."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from trackguard.delivery.transport import HttpxTransport
from trackguard.delivery.worker import DeliveryWorker
from trackguard.emulator.app import create_emulator
from trackguard.http.runner import start_in_thread
from trackguard.store.base import OutboxRow, Write
from trackguard.store.listen import channel_name, subscribe
from trackguard.store.postgres import PostgresStore
from trackguard.store.sqlite import SQLiteStore
from trackguard.store.view import GatewayState, keep_fresh

SITE, KEY = "notify-site", "notify-key"
POLL = 3600.0  # the polling interval: a test that passes never waits for it
HANG_GUARD = 30.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.fixture
def two_stores(pg_schema: tuple[str, str]) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    url, schema = pg_schema
    a, b = PostgresStore(url, schema=schema), PostgresStore(url, schema=schema)
    yield a, b
    a.close()
    b.close()


def _event(person: str, name: str) -> OutboxRow:
    item = b'{"v2":{"type":"person","action":"event","identifiers":{"id":"%s"},"name":"%s"}}' % (
        person.encode(),
        name.encode(),
    )
    return OutboxRow(received_at=time.time(), person=f"id:{person}", payload=item)


def test_channel_names_fit_postgres_identifiers() -> None:
    assert channel_name("tg_abc") == "trackguard.tg_abc"
    long = channel_name("s" * 63)
    assert long.startswith("trackguard.") and len(long) == len("trackguard.") + 8


def test_a_deliverer_polling_hourly_delivers_another_stores_commit_at_once(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    deliverer_store, gateway_store = two_stores
    emulator = create_emulator(SITE, KEY)
    with start_in_thread(emulator) as server:
        transport = HttpxTransport(server.url, SITE, KEY)
        worker = DeliveryWorker(deliverer_store, transport, idle_sleep=POLL, linger=0.0)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            # The worker's first round found nothing: it now sleeps for POLL unless woken.
            _wait_until(lambda: deliverer_store._listener is not None, "the worker subscribed")
            listener = deliverer_store._listener
            assert listener is not None
            assert listener.listening.wait(HANG_GUARD)
            started = time.monotonic()
            gateway_store.commit([Write(outbox=(_event("cus_1", "woken"),))])
            _wait_until(
                lambda: deliverer_store.outbox_stats().delivered == 1, "the row was delivered"
            )
            assert time.monotonic() - started < POLL  # woken, not polled
            assert [e["name"] for e in emulator.state.events_view()] == ["woken"]
        finally:
            stop.set()
            thread.join(HANG_GUARD)
            transport.close()
    assert not thread.is_alive()


def test_notifications_carry_what_changed(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    listening, writer = two_stores
    seen: dict[str, threading.Event] = {"o": threading.Event(), "i": threading.Event()}
    listening.subscribe("o", seen["o"].set)
    listening.subscribe("i", seen["i"].set)
    listener = listening._listener
    assert listener is not None and listener.listening.wait(HANG_GUARD)
    time.sleep(0.2)  # the wake-up every subscriber gets once it listens
    for event in seen.values():
        event.clear()
    writer.import_identities([("ana@example.com", "cus_1")])
    assert seen["i"].wait(HANG_GUARD)
    assert not seen["o"].is_set()
    seen["i"].clear()
    writer.commit([Write(outbox=(_event("cus_2", "viewed"),))])
    assert seen["o"].wait(HANG_GUARD)
    assert not seen["i"].is_set()
    seen["o"].clear()
    writer.commit([Write(links=(("bo@example.com", "cus_3"),))])
    assert seen["i"].wait(HANG_GUARD)
    assert not seen["o"].is_set()


def test_a_gateway_refresh_wakes_on_another_writers_binding(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    reader, writer = two_stores
    state = GatewayState.load(reader)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(keep_fresh(state, reader, POLL, stop))
        try:
            deadline = time.monotonic() + HANG_GUARD
            listener = reader._listener
            while listener is None or not listener.listening.is_set():
                assert time.monotonic() < deadline, "the refresher never listened"
                await asyncio.sleep(0.01)
                listener = reader._listener
            await asyncio.sleep(0.2)  # past the refresh its first wake-up caused
            writer.import_identities([("ana@example.com", "cus_1")])
            while state.id_for_email("ana@example.com") != "cus_1":
                assert time.monotonic() < deadline, "the binding never arrived"
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.wait_for(task, HANG_GUARD)

    asyncio.run(scenario())
    assert state.bindings_learned == 1


def test_a_lost_listening_connection_is_logged_and_comes_back(
    two_stores: tuple[PostgresStore, PostgresStore],
    pg_schema: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listening, writer = two_stores
    woken = threading.Event()
    listening.subscribe("o", woken.set)
    listener = listening._listener
    assert listener is not None and listener.listening.wait(HANG_GUARD)
    caplog.set_level(logging.WARNING, logger="trackguard.store")
    url, _ = pg_schema
    with psycopg.connect(url, autocommit=True) as admin:
        pid = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s AND state = 'idle'",
            (f'LISTEN "{listener.channel}"',),
        ).fetchone()
        assert pid is not None
        admin.execute("SELECT pg_terminate_backend(%s)", pid)
    _wait_until(lambda: listener.losses == 1 and listener.listening.is_set(), "it listens again")
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"lost the listening connection on {listener.channel}") for m in messages
    )
    assert f"listening on {listener.channel} again" in messages
    woken.clear()
    writer.commit([Write(outbox=(_event("cus_1", "after"),))])
    assert woken.wait(HANG_GUARD)


def test_sqlite_stores_keep_polling(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tg.db")
    try:
        assert subscribe(store, "o", lambda: None) is None
    finally:
        store.close()


def test_closing_the_store_stops_its_listener(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    store = PostgresStore(url, schema=schema)
    store.subscribe("o", lambda: None)
    listener = store._listener
    assert listener is not None and listener.listening.wait(HANG_GUARD)
    store.close()
    assert not listener.listening.is_set()
    assert not listener._thread.is_alive()
