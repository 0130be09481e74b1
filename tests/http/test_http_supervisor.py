"""The worker supervisor with real child processes: restarts in the same slot, a bounded
crash loop, and a stop that ends every child."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import pytest

from trackguard.http.supervisor import Supervisor

_spawn = multiprocessing.get_context("spawn")


def _dying(slot: int) -> BaseProcess:
    return _spawn.Process(target=os._exit, args=(3,))


def _sleeping(slot: int) -> BaseProcess:
    return _spawn.Process(target=time.sleep, args=(60,))


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), "timed out"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_that_keep_dying_make_it_give_up_non_zero() -> None:
    supervisor = Supervisor(_dying, 2, max_restarts=3)
    assert supervisor.run() == 1
    assert supervisor.restarts == 3  # the fourth death within a minute is one too many
    assert supervisor.stopping()


def test_a_killed_worker_is_started_again_in_its_slot_and_stop_ends_all() -> None:
    supervisor = Supervisor(_sleeping, 2)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()))
    thread.start()
    try:
        _wait(lambda: all(s.pid is not None for s in supervisor.status))
        first = [s.pid for s in supervisor.status]
        assert first[1] is not None
        os.kill(first[1], signal.SIGKILL)
        _wait(lambda: supervisor.status[1].restarts == 1)
        _wait(lambda: supervisor.status[1].pid != first[1])
        assert supervisor.status[0].pid == first[0] and supervisor.status[0].restarts == 0
        assert supervisor.restarts == 1
        pids = [s.pid for s in supervisor.status]
    finally:
        supervisor.stop()
        thread.join(30)
    assert result == [0]
    assert not any(_alive(pid) for pid in pids if pid is not None)


def test_zero_workers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^workers must be >= 1, not 0$"):
        Supervisor(_sleeping, 0)
