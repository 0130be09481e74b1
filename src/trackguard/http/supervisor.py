"""A parent process that keeps N worker processes running (``serve --workers``).

Each worker has a slot (0..N-1) that it keeps across restarts, so a role tied to a slot
(slot 0 delivers and runs the monitor's store-wide duties) comes back with the restarted
worker. SIGTERM and SIGINT are forwarded as SIGTERM, so every worker finishes its in-flight
requests; a worker that dies otherwise is logged, counted and started again, unless workers
die more than :data:`MAX_RESTARTS_PER_MINUTE` times in a minute (a crash loop), in which case
the supervisor stops the rest and returns non-zero.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Final

log = logging.getLogger("trackguard.workers")

#: Restarts in any 60 s beyond which the supervisor gives up (documented in docs/gateway.md).
MAX_RESTARTS_PER_MINUTE: Final = 10
#: Seconds a worker gets to finish after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 15.0

Spawn = Callable[[int], BaseProcess]


@dataclass
class WorkerStatus:
    """What the supervisor knows of one slot (read by its admin listener)."""

    slot: int
    pid: int | None = None
    restarts: int = 0


class Supervisor:
    """Runs ``spawn(slot)`` for every slot and keeps each one alive until told to stop."""

    def __init__(
        self,
        spawn: Spawn,
        workers: int,
        *,
        max_restarts: int = MAX_RESTARTS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers!r}")
        self._spawn = spawn
        self._max_restarts = max_restarts
        self._clock = clock
        self._procs: dict[int, BaseProcess] = {}
        self._recent: deque[float] = deque()
        self._stopping = threading.Event()
        self.status = [WorkerStatus(slot) for slot in range(workers)]

    @property
    def restarts(self) -> int:
        """Workers started again after dying, since the supervisor started."""
        return sum(s.restarts for s in self.status)

    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or the supervisor gave up)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask every worker to finish (callable from a signal handler or another thread)."""
        self._stopping.set()

    def run(self) -> int:
        """Start the workers and supervise them until :meth:`stop`: 0, or 1 after a crash
        loop."""
        for status in self.status:
            self._start(status.slot)
        code = 0
        while not self._stopping.is_set():
            sentinels = {p.sentinel: slot for slot, p in self._procs.items()}
            for ready in wait(list(sentinels), timeout=0.2):
                slot = sentinels[ready]  # type: ignore[index]  # sentinels are ints
                proc = self._procs.pop(slot)
                proc.join()
                if self._stopping.is_set():
                    break
                if not self._restart(slot, proc):
                    code = 1
                    self._stopping.set()
                    break
        self._stop_all()
        return code

    def _start(self, slot: int) -> None:
        proc = self._spawn(slot)
        proc.start()
        self._procs[slot] = proc
        self.status[slot].pid = proc.pid
        log.info("worker %d started (pid %d)", slot, proc.pid)

    def _restart(self, slot: int, dead: BaseProcess) -> bool:
        now = self._clock()
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()
        how = _exit_text(dead.exitcode)
        if len(self._recent) > self._max_restarts:
            log.error(
                "worker %d (pid %s) %s: %d workers died within a minute, giving up",
                slot,
                dead.pid,
                how,
                len(self._recent),
            )
            return False
        log.error("worker %d (pid %s) %s; starting it again", slot, dead.pid, how)
        self.status[slot].restarts += 1
        self._start(slot)
        return True

    def _stop_all(self) -> None:
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: finish in-flight requests, then exit
        deadline = self._clock() + STOP_TIMEOUT
        for slot, proc in self._procs.items():
            proc.join(max(0.0, deadline - self._clock()))
            if proc.is_alive():
                log.error("worker %d (pid %s) did not stop in time; killing it", slot, proc.pid)
                proc.kill()
                proc.join()
        self._procs.clear()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def stop_on_signals(supervisor: Supervisor) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``supervisor.stop``; the returned function undoes it."""
    sigs = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in sigs}

    def handle(sig: int, frame: FrameType | None) -> None:
        supervisor.stop()

    for sig in sigs:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
