"""Shared helpers for the benchmarks: pinning, timing (median of repeats), tables, machine facts.

Every benchmark in ``bench/`` prints our figure beside a limit or a peer, with the ratio, and
the facts needed to read it (machine, Python, library versions, peak RSS). The helpers here
keep the method the same everywhere:

* :func:`pin_to_one_core` before any measurement, so "per core" means one core;
* :func:`measure` (one contender) and :func:`measure_round_robin` (several, taking turns) warm
  up, collect garbage, then time ``repeats`` runs of a whole loop on the wall clock and on CPU
  time, and keep every run; figures use the **median** run (robust to one noisy run), and the
  spread (min..max) is reported beside it;
* :func:`render_table` for fixed-width, right-aligned numeric tables.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, Literal

from trackguard import compiled


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU (CPU 0 when allowed); the CPU, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    cpu = 0 if 0 in allowed else min(allowed)
    os.sched_setaffinity(0, {cpu})
    return cpu


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(pinned: int | None) -> dict[str, Any]:
    """Facts that make a figure comparable: CPUs, CPU model, Python, OS, pinning."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "pinned_cpu": pinned,
        # ``make compiled`` or not: the request path's CPU differs by about a fifth.
        "core": compiled.status().describe(),
    }


def package_version(dist: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


Clock = Literal["wall", "cpu"]


@dataclass(frozen=True)
class Timing:
    """``repeats`` timed runs of a loop over ``items`` items, on both clocks.

    ``wall_s`` is elapsed time (``perf_counter``), what a user waits for; ``cpu_s`` is this
    process's CPU time (``process_time``), which leaves out the time other processes held the
    core. Figures use ``clock``; on a quiet machine the two agree within a few per cent.
    """

    items: int
    wall_s: tuple[float, ...]
    cpu_s: tuple[float, ...]
    clock: Clock = "wall"

    @property
    def runs_s(self) -> tuple[float, ...]:
        return self.wall_s if self.clock == "wall" else self.cpu_s

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def per_second(self) -> float:
        """Items per second at the median run."""
        return self.items / self.median_s if self.median_s > 0 else float("inf")

    @property
    def us_per_item(self) -> float:
        return self.median_s * 1e6 / self.items if self.items else 0.0

    @property
    def spread(self) -> tuple[float, float]:
        """Items per second at the slowest and the fastest run."""
        return self.items / max(self.runs_s), self.items / min(self.runs_s)

    @property
    def cpu_share(self) -> float:
        """How much of the elapsed time this process was on a CPU (1.0: it never waited)."""
        wall = sum(self.wall_s)
        return sum(self.cpu_s) / wall if wall > 0 else 1.0

    def using(self, clock: Clock) -> Timing:
        return replace(self, clock=clock)

    def as_dict(self) -> dict[str, Any]:
        slow, fast = self.spread
        return {
            "items": self.items,
            "clock": self.clock,
            "median_s": self.median_s,
            "per_second": self.per_second,
            "us_per_item": self.us_per_item,
            "per_second_min": slow,
            "per_second_max": fast,
            "cpu_share": self.cpu_share,
            "wall_s": list(self.wall_s),
            "cpu_s": list(self.cpu_s),
        }


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(run: Callable[[], object], items: int, *, repeats: int = 7, warmup: int = 1) -> Timing:
    """Time ``run`` (one whole pass over ``items`` items) ``repeats`` times after ``warmup``.

    The garbage collector stays enabled (the code under test pays for its allocations as it
    would in production) but is emptied before each run, so no run inherits another's garbage.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        run()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        w, c = _timed(run)
        wall.append(w)
        cpu.append(c)
    return Timing(items=items, wall_s=tuple(wall), cpu_s=tuple(cpu))


def measure_round_robin(
    runs: Mapping[str, Callable[[], object]],
    items: Mapping[str, int],
    *,
    repeats: int = 7,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Like :func:`measure` for several contenders, taking turns run by run.

    Repeat ``i`` of every contender happens before repeat ``i + 1`` of any, so a slow drift of
    the machine (another tenant, frequency scaling) spreads over all of them instead of
    landing on whoever happened to be measured last.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        for run in runs.values():
            run()
    wall: dict[str, list[float]] = {key: [] for key in runs}
    cpu: dict[str, list[float]] = {key: [] for key in runs}
    for i in range(repeats):
        if progress is not None:
            progress(f"repeat {i + 1}/{repeats}")
        for key, run in runs.items():
            w, c = _timed(run)
            wall[key].append(w)
            cpu[key].append(c)
    return {
        key: Timing(items=items[key], wall_s=tuple(wall[key]), cpu_s=tuple(cpu[key]))
        for key in runs
    }


def fmt_int(value: float) -> str:
    """``123456.7`` → ``123,457``."""
    return f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:,.1f}x" if value >= 10 else f"{value:,.2f}x"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A plain-text table; ``align`` holds one ``l``/``r`` per column (default: first left)."""
    ncols = len(headers)
    align = align or "l" + "r" * (ncols - 1)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(ncols)]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).ljust(w) if a == "l" else str(c).rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
