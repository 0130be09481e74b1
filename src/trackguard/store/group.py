"""Group commit: many concurrent requests share one transaction, so they share one fsync.

A commit with ``synchronous=FULL`` costs one fsync whether it holds 1 row or 500; committing each
request alone caps the gateway at the disk's fsync rate. The gateway instead awaits
:meth:`GroupCommitter.submit`; a background thread gathers the writes that arrive within
``max_delay`` of the first waiting one (or until ``max_rows``), commits them with one
``store.commit`` call and only then resolves their futures, so a request is answered 2xx only
after its rows are durable. The thread, not the event loop, waits on the disk, so the loop keeps
parsing and checking requests while a commit runs; writes that arrive meanwhile form the next
batch, which is why batches grow by themselves under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final

from trackguard.store.base import Store, StoreClosed, StoreError, Write


class _Entry:
    __slots__ = ("at", "future", "loop", "rows", "write")

    def __init__(
        self,
        write: Write,
        future: asyncio.Future[int],
        loop: asyncio.AbstractEventLoop,
        rows: int,
        at: float,
    ) -> None:
        self.write = write
        self.future = future
        self.loop = loop
        self.rows = rows
        self.at = at


_STOP: Final = None  # put by close(): commit what is queued, then stop


class GroupCommitter:
    """Commits writes from many asyncio requests in batches, on one background thread.

    Each submitted write is committed exactly once: it is taken from the queue by exactly one
    batch, and a failed batch is not retried (its transaction rolled back, so nothing of it is
    stored; every waiting request gets the error and can answer 5xx, and the client retries).
    :meth:`close` commits everything already submitted before it returns.

    Writes wait in a :class:`queue.SimpleQueue`: a submit is one ``put`` in C, with no lock
    or condition taken in Python on the request path.

    The counters (:attr:`commits`, :attr:`writes`, :attr:`rows`, :attr:`failed_commits`,
    :attr:`last_commit_seconds`, :attr:`pending`) are for ``/metrics``. The store is not closed
    by :meth:`close`; its owner closes it after this committer.
    """

    def __init__(self, store: Store, *, max_delay: float = 0.002, max_rows: int = 500) -> None:
        if max_delay < 0:
            raise ValueError("max_delay must be >= 0")
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        self.store = store
        self.max_delay = max_delay
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._closing = False
        #: Set by the thread once it has stopped taking writes (then it drains once more).
        self._done = False
        self._thread: threading.Thread | None = None
        #: The batch the thread is gathering (before ``max_delay`` has passed).
        self._gathering: list[_Entry] = []
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
        """Writes submitted and not yet in a commit (queued, or waiting for company)."""
        return self._queue.qsize() + len(self._gathering)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the committing thread (once; later calls do nothing)."""
        with self._start_lock:
            if self._closing:
                raise StoreClosed("the group committer is closed")
            if self._thread is not None:
                return
            # A daemon thread: a process that exits without close() drops only writes that
            # were never acknowledged.
            self._thread = threading.Thread(
                target=self._run, name="trackguard-group-commit", daemon=True
            )
            self._thread.start()

    async def close(self) -> None:
        """Commit everything submitted so far, then stop the thread. Idempotent."""
        with self._start_lock:
            first = not self._closing
            self._closing = True
        thread = self._thread
        if thread is None:
            self._done = True
            return
        if first:
            self._queue.put(_STOP)
        if thread.is_alive():
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
        if self._closing:
            raise StoreClosed("the group committer is closed")
        if self._thread is None:
            raise StoreError("GroupCommitter.start() was not called")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        rows = len(write.outbox) + len(write.quarantine) or 1
        self._queue.put(_Entry(write, future, loop, rows, time.monotonic()))
        if self._done:  # closed meanwhile, by another thread: nobody else will take it
            self._fail_leftovers()
        return await future

    # -- the committing thread ---------------------------------------------------------------

    def _run(self) -> None:
        q, max_rows = self._queue, self.max_rows
        carry: _Entry | None = None  # taken past max_rows: the first of the next batch
        stopping = False
        while not stopping:
            first = carry if carry is not None else q.get()
            carry = None
            if first is _STOP:
                break
            batch, rows = [first], first.rows
            self._gathering = batch
            deadline = first.at + self.max_delay
            while rows < max_rows:
                try:
                    entry = q.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closing:
                        break
                    try:
                        entry = q.get(timeout=remaining)
                    except queue.Empty:
                        continue  # the deadline is read from the clock, not from the wait
                if entry is _STOP:
                    stopping = True
                    break
                if rows + entry.rows > max_rows:
                    carry = entry
                    break
                batch.append(entry)
                rows += entry.rows
            self._gathering = []
            self._commit(batch)
        self._done = True
        # What was queued before close() (and any submit racing it) is committed, in batches.
        while True:
            batch = self._drain(max_rows)
            if not batch:
                return
            self._commit(batch)

    def _drain(self, max_rows: int) -> list[_Entry]:
        """Queued writes, up to ``max_rows`` rows (at least one write), without waiting."""
        batch: list[_Entry] = []
        rows = 0
        while rows < max_rows:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not None:
                batch.append(entry)
                rows += entry.rows
        return batch

    def _fail_leftovers(self) -> None:
        """Answer writes queued after the thread stopped with :class:`StoreClosed`."""
        while batch := self._drain(self.max_rows):
            closed = StoreClosed("the group committer is closed")
            for entry in batch:
                with contextlib.suppress(RuntimeError):
                    entry.loop.call_soon_threadsafe(
                        _resolve, [(entry.future, 0)], closed, len(batch)
                    )

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
