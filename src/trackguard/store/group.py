"""Group commit: many concurrent requests share one transaction, so they share one fsync.

A commit with ``synchronous=FULL`` costs one fsync whether it holds 1 row or 500; committing each
request alone caps the gateway at the disk's fsync rate. The gateway instead awaits
:meth:`GroupCommitter.submit`; a background thread gathers the writes that arrive within
``max_delay`` of the first waiting one (or until ``max_rows``), commits them with one
``store.commit`` call and only then resolves their futures, so a request is answered 2xx only
after its rows are durable. The thread, not the event loop, waits on the disk, so the loop keeps
parsing and checking requests while a commit runs; writes that arrive meanwhile form the next
batch, which is why batches grow by themselves under load.

``min_gap`` paces commits under load: the next one starts no sooner than ``min_gap`` after the
previous one ended, so the writes that arrive meanwhile share its fsync. A write that finds the
committer idle for longer is not held (only ``max_delay`` applies to it), so the gap costs
latency only when commits follow each other, and at most ``min_gap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from trackguard.store.base import Store, StoreClosed, StoreError, Write


class _Entry:
    __slots__ = ("future", "loop", "rows", "write")

    def __init__(
        self,
        write: Write,
        future: asyncio.Future[int],
        loop: asyncio.AbstractEventLoop,
        rows: int,
    ) -> None:
        self.write = write
        self.future = future
        self.loop = loop
        self.rows = rows


class GroupCommitter:
    """Commits writes from many asyncio requests in batches, on one background thread.

    Each submitted write is committed exactly once: it is taken from the queue by exactly one
    batch, and a failed batch is not retried (its transaction rolled back, so nothing of it is
    stored; every waiting request gets the error and can answer 5xx, and the client retries).
    :meth:`close` commits everything already submitted before it returns.

    The counters (:attr:`commits`, :attr:`writes`, :attr:`rows`, :attr:`failed_commits`,
    :attr:`last_commit_seconds`, :attr:`pending`) are for ``/metrics``. The store is not closed
    by :meth:`close`; its owner closes it after this committer.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_delay: float = 0.002,
        max_rows: int = 500,
        min_gap: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_delay < 0:
            raise ValueError("max_delay must be >= 0")
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        if min_gap < 0:
            raise ValueError("min_gap must be >= 0")
        self.store = store
        self.max_delay = max_delay
        self.max_rows = max_rows
        self.min_gap = min_gap
        #: The monotonic clock ``max_delay`` and ``min_gap`` are measured on (tests stop it).
        self._clock = clock
        #: When the last commit ended (monotonic; the committing thread alone writes it).
        self._last_end = -math.inf
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Entry] = []
        self._queued_rows = 0
        self._first_at = 0.0
        self._closing = False
        self._worker: threading.Thread | None = None
        self._commits = 0
        self._failed_commits = 0
        self._writes = 0
        self._rows = 0
        self._last_commit_seconds = 0.0

    # -- counters ----------------------------------------------------------------------------

    @property
    def commits(self) -> int:
        """Batches committed."""
        return self._commits

    @property
    def failed_commits(self) -> int:
        """Batches whose commit raised (their writes were answered with the error)."""
        return self._failed_commits

    @property
    def writes(self) -> int:
        """Writes (requests) committed."""
        return self._writes

    @property
    def rows(self) -> int:
        """Outbox rows plus quarantine records committed."""
        return self._rows

    @property
    def last_commit_seconds(self) -> float:
        """Wall time of the last ``store.commit`` call, successful or not."""
        return self._last_commit_seconds

    @property
    def pending(self) -> int:
        """Writes submitted and not yet taken into a batch."""
        return len(self._queue)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the committing thread (once; later calls do nothing)."""
        with self._cond:
            if self._closing:
                raise StoreClosed("the group committer is closed")
            if self._worker is not None:
                return
            # A daemon thread: a process that exits without close() drops only writes that
            # were never acknowledged.
            self._worker = threading.Thread(
                target=self._run, name="trackguard-group-commit", daemon=True
            )
            self._worker.start()

    async def close(self) -> None:
        """Commit everything submitted so far, then stop the thread. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        thread = self._worker
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, write: Write) -> int:
        """Return once ``write`` is committed (with how many of its rows were duplicates);
        raise StoreError if its batch failed.

        Raises StoreClosed after :meth:`close`, StoreError before :meth:`start`. A request
        cancelled while waiting may still be committed (it was never acknowledged, so a client
        retry is safe: delivered events carry ids Customer.io deduplicates).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        rows = max(1, len(write.outbox) + len(write.quarantine))
        with self._cond:
            if self._closing:
                raise StoreClosed("the group committer is closed")
            if self._worker is None:
                raise StoreError("GroupCommitter.start() was not called")
            first = not self._queue
            if first:
                self._first_at = self._clock()
            self._queue.append(_Entry(write, future, loop, rows))
            self._queued_rows += rows
            # Wake the thread only when it has something new to decide.
            if first or self._queued_rows >= self.max_rows:
                self._cond.notify()
        return await future

    # -- the committing thread ---------------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closing:
                    cond.wait()
                if not self._queue:
                    return  # closing, and everything is committed
                deadline = max(self._first_at + self.max_delay, self._last_end + self.min_gap)
                while self._queued_rows < self.max_rows and not self._closing:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                batch = self._take()
            self._commit(batch)

    def _take(self) -> list[_Entry]:
        """Up to ``max_rows`` rows of the oldest writes (always at least one write)."""
        if self._queued_rows <= self.max_rows:
            batch, self._queue, self._queued_rows = self._queue, [], 0
            return batch
        taken = rows = 0
        for entry in self._queue:
            if taken and rows + entry.rows > self.max_rows:
                break
            taken += 1
            rows += entry.rows
        batch = self._queue[:taken]
        del self._queue[:taken]
        self._queued_rows -= rows
        # The rest keeps its (already passed) _first_at, so it is committed next, at once.
        return batch

    def _commit(self, batch: list[_Entry]) -> None:
        writes = [e.write for e in batch]
        error: Exception | None = None
        duplicates: list[int] = [0] * len(writes)
        started = time.perf_counter()
        try:
            duplicates = self.store.commit(writes) or duplicates
        except Exception as e:  # every waiting request must hear about any failure
            error = e
        self._last_commit_seconds = time.perf_counter() - started
        self._last_end = self._clock()  # before any answer: the gap runs from here
        if error is None:
            self._commits += 1
            self._writes += len(writes)
            self._rows += sum(len(w.outbox) + len(w.quarantine) for w in writes)
        else:
            self._failed_commits += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
        for entry, dup in zip(batch, duplicates, strict=True):
            by_loop.setdefault(entry.loop, []).append((entry.future, dup))
        for loop, futures in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting for those futures any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, futures, error, len(batch))


def _resolve(
    futures: Sequence[tuple[asyncio.Future[int], int]],
    error: Exception | None,
    batch_size: int,
) -> None:
    """Runs on the submitters' loop: one wake-up per batch, not one per request."""
    for future, duplicates in futures:
        if future.done():
            continue  # the request was cancelled
        if error is None:
            future.set_result(duplicates)
        else:
            future.set_exception(_batch_error(error, batch_size))


def _batch_error(error: Exception, batch_size: int) -> StoreError:
    """A fresh exception per request (sharing one would splice their tracebacks together)."""
    exc: StoreError
    if isinstance(error, StoreClosed):
        exc = StoreClosed(str(error))
    else:
        exc = StoreError(f"group commit of {batch_size} writes failed: {error}")
    exc.__cause__ = error
    return exc
