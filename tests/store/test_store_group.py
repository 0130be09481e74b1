"""GroupCommitter: batching, exactly-once commits, failure propagation, draining on close."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from store_kinds import AnyStore

from trackguard.gateway.build import FULL_COMMIT_GAP, GatewayOptions, commit_gap, create_gateway
from trackguard.gateway.config import AuthConfig, ConfigError, Credentials
from trackguard.store import (
    GroupCommitter,
    OutboxRow,
    QuarantineRecord,
    SQLiteStore,
    StoreClosed,
    StoreError,
    Write,
)
from trackguard.store.postgres import PostgresStore


def write(ident: str, rows: int = 1) -> Write:
    return Write(
        outbox=tuple(
            OutboxRow(received_at=1.0, person=ident, payload=b"{}", dedupe_key=f"{ident}/{i}")
            for i in range(rows)
        )
    )


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """A SQLite store, then a PostgreSQL one: the committer works on both."""
    return any_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tg.db")
    yield s
    s.close()


def keys(store: AnyStore) -> list[str | None]:
    """The dedupe keys of the outbox rows, in seq order."""
    return [r.dedupe_key for r in reversed(store.outbox_list(limit=1_000_000))]


class Recording(SQLiteStore):
    """A second store on the same file that records each commit's size and time and can fail."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.committed_at: list[float] = []
        self.clock: Callable[[], float] = time.monotonic
        self.fail_next = 0
        self.error = StoreError("disk I/O error")

    def commit(self, writes: Sequence[Write]) -> list[int]:  # type: ignore[override]
        if self.fail_next:
            self.fail_next -= 1
            raise self.error
        self.batches.append(sum(len(w.outbox) + len(w.quarantine) for w in writes))
        self.committed_at.append(self.clock())
        return super().commit(writes)


@pytest.fixture
def recording(sqlite_store: AnyStore) -> Iterator[Recording]:
    r = Recording(sqlite_store.path)
    yield r
    r.close()


class FrozenClock:
    """The committer's clock, standing still until a test moves it.

    With it, ``max_delay`` passes exactly when a test says so and never by itself, so what
    starts a commit (``max_rows``, ``close()``, or the delay) does not depend on how fast the
    machine runs the test.
    """

    START = 1000.0

    def __init__(self) -> None:
        self.now = self.START

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


T = TypeVar("T")

#: Only turns a committer that waits for a frozen clock (forever) into a failure; the commits
#: these tests wait for need no time to pass, however slow the machine.
HANG_GUARD = 60.0


async def settled(awaitable: Awaitable[T], clock: FrozenClock, what: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, HANG_GUARD)
    except TimeoutError:
        clock.now += 1e9  # let the committing thread finish, so the test can end
        pytest.fail(f"{what} waited for max_delay, which had not passed")


async def held(
    futures: Iterable[asyncio.Future[Any]], recording: Recording, batches: list[int]
) -> None:
    """Nothing of ``futures`` answered and nothing more committed: a correct committer cannot
    commit yet, and the wait gives one that commits too early the chance to show it."""
    done, _ = await asyncio.wait(futures, timeout=0.1)
    assert (done, recording.batches) == (set(), batches)


def test_store_group_50_tasks_by_40_writes_commit_exactly_once(store: AnyStore) -> None:
    async def main() -> GroupCommitter:
        async with GroupCommitter(store) as committer:

            async def task(t: int) -> None:
                for i in range(40):
                    await committer.submit(write(f"t{t}-{i}"))

            await asyncio.gather(*(task(t) for t in range(50)))
            return committer

    committer = asyncio.run(main())
    stored = keys(store)
    assert len(stored) == 2000
    assert sorted(stored) == sorted(f"t{t}-{i}/0" for t in range(50) for i in range(40))
    for t in range(50):  # each task's writes were committed in the order it awaited them
        mine = [k for k in stored if k.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}/0" for i in range(40)]
    assert (committer.writes, committer.rows, committer.failed_commits) == (2000, 2000, 0)
    assert committer.commits < 400
    assert committer.pending == 0
    assert committer.last_commit_seconds > 0
    assert store.outbox_stats().pending == 2000


def test_store_group_failed_commit_reaches_every_waiting_request(
    sqlite_store: SQLiteStore, recording: Recording
) -> None:
    store = sqlite_store
    recording.fail_next = 1

    async def main() -> tuple[list[BaseException | None], GroupCommitter]:
        async with GroupCommitter(recording, max_delay=0.05) as committer:
            results = await asyncio.gather(
                *(committer.submit(write(f"w{i}")) for i in range(10)), return_exceptions=True
            )
            await committer.submit(write("after"))  # the committer keeps working
            return list(results), committer

    results, committer = asyncio.run(main())
    assert len(results) == 10
    for r in results:
        assert type(r) is StoreError
        assert str(r) == "group commit of 10 writes failed: disk I/O error"
        assert r.__cause__ is recording.error
    assert len({id(r) for r in results}) == 10  # one exception object per request
    assert keys(store) == ["after/0"]
    assert (committer.commits, committer.failed_commits, committer.writes) == (1, 1, 1)


def test_store_group_failed_batch_stores_nothing_of_it(store: AnyStore) -> None:
    poison = Write(outbox=(OutboxRow(received_at=1.0, person="x", payload=b"", state="?"),))  # type: ignore[arg-type]

    async def main() -> list[BaseException | None]:
        async with GroupCommitter(store, max_delay=0.05) as committer:
            subs = [committer.submit(write(f"w{i}")) for i in range(5)]
            subs.append(committer.submit(poison))
            return list(await asyncio.gather(*subs, return_exceptions=True))

    results = asyncio.run(main())
    assert all(isinstance(r, StoreError) and "check constraint" in str(r).lower() for r in results)
    assert keys(store) == []


def test_store_group_respects_max_rows(
    sqlite_store: SQLiteStore, recording: Recording, clock: FrozenClock
) -> None:
    store = sqlite_store
    recording.clock = clock.monotonic

    async def main() -> None:
        committer = GroupCommitter(recording, max_delay=30.0, max_rows=5, clock=clock.monotonic)
        committer.start()
        # The clock stands still, so max_delay never passes: reaching max_rows alone commits.
        batch = asyncio.gather(*(committer.submit(write(f"a{i}")) for i in range(5)))
        await settled(batch, clock, "a batch of max_rows rows")
        assert (recording.batches, committer.pending) == ([5], 0)
        # A write bigger than max_rows goes alone; others fill batches up to max_rows.
        tasks = [asyncio.ensure_future(committer.submit(write("big", rows=7)))]
        tasks += [asyncio.ensure_future(committer.submit(write(f"b{i}", rows=2))) for i in range(6)]
        await asyncio.sleep(0.05)
        # close() commits a last partial batch without waiting for max_delay.
        await settled(committer.close(), clock, "close()")
        await asyncio.gather(*tasks)

    asyncio.run(main())
    # How the 2-row writes split depends on when the thread wakes; the bounds do not.
    assert recording.batches[:1] == [5]
    assert 7 in recording.batches
    assert all(b <= 5 for b in recording.batches if b != 7)
    assert sum(recording.batches) == len(keys(store)) == 24
    assert recording.committed_at == [clock.START] * len(recording.batches)


def test_store_group_waits_max_delay_for_company(
    sqlite_store: SQLiteStore, recording: Recording, clock: FrozenClock
) -> None:
    store = sqlite_store
    recording.clock = clock.monotonic
    max_delay = 0.05

    async def main() -> None:
        async with GroupCommitter(
            recording, max_delay=max_delay, clock=clock.monotonic
        ) as committer:
            first = asyncio.ensure_future(committer.submit(write("first")))
            await held({first}, recording, [])  # alone, it waits for company
            second = asyncio.ensure_future(committer.submit(write("second")))
            await held({first, second}, recording, [])  # company, but not max_rows of it
            assert committer.pending == 2
            clock.now = clock.START + max_delay * 0.9
            await held({first, second}, recording, [])  # max_delay has not quite passed
            clock.now = clock.START + max_delay
            await settled(asyncio.gather(first, second), clock, "the batch")

    asyncio.run(main())
    assert recording.batches == [2]
    assert recording.committed_at == [clock.START + max_delay]
    assert keys(store) == ["first/0", "second/0"]


def test_store_group_min_gap_paces_commits_that_follow_each_other(
    sqlite_store: SQLiteStore, recording: Recording, clock: FrozenClock
) -> None:
    store = sqlite_store
    recording.clock = clock.monotonic
    gap = 0.05

    async def main() -> None:
        async with GroupCommitter(
            recording, max_delay=0.0, min_gap=gap, max_rows=3, clock=clock.monotonic
        ) as committer:
            # Nothing committed yet: the first write does not wait.
            await settled(committer.submit(write("first")), clock, "the first write")
            # Writes queued right after a commit wait until min_gap has passed since it ended.
            later = [asyncio.ensure_future(committer.submit(write(f"w{i}"))) for i in range(2)]
            await held(later, recording, [1])
            assert committer.pending == 2
            clock.now = clock.START + gap * 0.9
            await held(later, recording, [1])  # the gap has not quite passed
            clock.now = clock.START + gap
            await settled(asyncio.gather(*later), clock, "the paced batch")
            # max_rows rows do not wait for the gap.
            full = [committer.submit(write(f"f{i}")) for i in range(3)]
            await settled(asyncio.gather(*full), clock, "a batch of max_rows rows")
            # A write that finds the committer idle for longer than the gap goes at once.
            clock.now = clock.START + 1.0
            await settled(committer.submit(write("idle")), clock, "a write after a pause")

    asyncio.run(main())
    assert recording.batches == [1, 2, 3, 1]
    start = clock.START
    assert recording.committed_at == [start, start + gap, start + gap, start + 1.0]
    assert keys(store) == ["first/0", "w0/0", "w1/0", "f0/0", "f1/0", "f2/0", "idle/0"]


def test_store_group_refuses_a_negative_min_gap(store: AnyStore) -> None:
    with pytest.raises(ValueError, match=r"^min_gap must be >= 0$"):
        GroupCommitter(store, min_gap=-0.001)


def test_the_gateway_paces_commits_by_default_only_where_each_commit_fsyncs(
    tmp_path: Path, store: AnyStore
) -> None:
    full = SQLiteStore(tmp_path / "full.db", synchronous="FULL")
    normal = SQLiteStore(tmp_path / "normal.db", synchronous="NORMAL")
    options = GatewayOptions(db=tmp_path / "tg.db")
    try:
        assert commit_gap(options, full) == FULL_COMMIT_GAP == 0.002
        assert commit_gap(options, normal) == 0.0
        assert commit_gap(dataclasses.replace(options, commit_gap=0.0), full) == 0.0
        assert commit_gap(dataclasses.replace(options, commit_gap=0.01), normal) == 0.01
        expected = 0.0 if isinstance(store, PostgresStore) else 0.002  # tests open SQLite FULL
        assert commit_gap(options, store) == expected
    finally:
        full.close()
        normal.close()
    auth = AuthConfig(upstream=Credentials("site", "key"))
    gateway = create_gateway(dataclasses.replace(options, synchronous="FULL"), auth)
    try:
        assert gateway.parts.committer.min_gap == 0.002
    finally:
        gateway.parts.store.close()
    with pytest.raises(ConfigError, match=r"^commit_gap must be >= 0 seconds, not -1\.0$"):
        create_gateway(dataclasses.replace(options, db=tmp_path / "no.db", commit_gap=-1.0), auth)
    assert not (tmp_path / "no.db").exists()  # refused before the store was opened


def test_store_group_close_drains_pending_writes_at_once(
    store: AnyStore, clock: FrozenClock
) -> None:
    async def main() -> tuple[list[asyncio.Task[None]], GroupCommitter]:
        committer = GroupCommitter(store, max_delay=30.0, max_rows=10_000, clock=clock.monotonic)
        committer.start()
        tasks = [asyncio.ensure_future(committer.submit(write(f"w{i}"))) for i in range(100)]
        await asyncio.sleep(0.01)  # every task is now waiting for its commit
        assert committer.pending == 100
        assert keys(store) == []
        # The clock stands still: only close() can end the wait for max_delay.
        await settled(committer.close(), clock, "close()")
        assert committer.pending == 0
        await asyncio.sleep(0)  # let the resolved futures' callbacks run
        await committer.close()  # idempotent
        return tasks, committer

    tasks, committer = asyncio.run(main())
    assert all(t.done() and t.exception() is None for t in tasks)
    assert len(keys(store)) == 100
    assert committer.commits == 1


def test_store_group_lifecycle_errors(store: AnyStore) -> None:
    async def main() -> None:
        committer = GroupCommitter(store)
        with pytest.raises(StoreError, match="start"):
            await committer.submit(write("early"))
        committer.start()
        committer.start()  # once is enough; a second call does nothing
        await committer.submit(write("ok"))
        await committer.close()
        with pytest.raises(StoreClosed):
            await committer.submit(write("late"))
        with pytest.raises(StoreClosed):
            committer.start()

    asyncio.run(main())
    assert keys(store) == ["ok/0"]
    with pytest.raises(ValueError, match="max_rows"):
        GroupCommitter(store, max_rows=0)
    with pytest.raises(ValueError, match="max_delay"):
        GroupCommitter(store, max_delay=-1)


def test_store_group_closed_store_fails_requests_with_store_closed(store: AnyStore) -> None:
    async def main() -> None:
        async with GroupCommitter(store) as committer:
            await committer.submit(write("before"))
            store.close()
            with pytest.raises(StoreClosed) as info:
                await committer.submit(write("after"))
            assert isinstance(info.value.__cause__, StoreClosed)

    asyncio.run(main())


def test_store_group_cancelled_request_does_not_disturb_others(store: AnyStore) -> None:
    async def main() -> None:
        async with GroupCommitter(store, max_delay=0.05) as committer:
            doomed = asyncio.ensure_future(committer.submit(write("cancelled")))
            others = [asyncio.ensure_future(committer.submit(write(f"w{i}"))) for i in range(3)]
            await asyncio.sleep(0)
            doomed.cancel()
            await asyncio.gather(*others)
            assert doomed.cancelled()

    asyncio.run(main())
    # Never acknowledged, but committed with its batch: the client's retry is the duplicate
    # Customer.io drops by event id.
    assert sorted(keys(store)) == ["cancelled/0", "w0/0", "w1/0", "w2/0"]


def test_store_group_serves_several_event_loops(store: AnyStore) -> None:
    committer = GroupCommitter(store, max_delay=0.01)
    committer.start()
    errors: list[BaseException] = []

    def loop_thread(n: int) -> None:
        async def run() -> None:
            await asyncio.gather(*(committer.submit(write(f"l{n}-{i}")) for i in range(50)))

        try:
            asyncio.run(run())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=loop_thread, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(committer.close())
    assert errors == []
    assert len(keys(store)) == 150


def test_store_group_counts_quarantine_rows(store: AnyStore) -> None:
    rec = QuarantineRecord(received_at=1.0, kind="contract", method="POST", path="/x")

    async def main() -> GroupCommitter:
        async with GroupCommitter(store) as committer:
            await committer.submit(Write(outbox=write("a", rows=2).outbox, quarantine=(rec,)))
            await committer.submit(Write(quarantine=(rec, rec)))
            return committer

    committer = asyncio.run(main())
    assert (committer.writes, committer.rows) == (2, 5)
    assert store.quarantine_count() == 3
