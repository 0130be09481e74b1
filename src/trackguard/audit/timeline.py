"""Per-event volume and invalid counts over log time, in adaptive buckets, and gaps.

The span of a log is unknown until its end, so buckets start at one minute and widen (5 min,
15 min, 1 h, 3 h, 6 h, 1 day, 1 week) whenever the span would need more than the bucket limit:
memory is at most ``series × buckets`` counters whatever the log's length.

A *gap* is a run of empty buckets inside an event's active span in which its average rate
predicted at least :data:`GAP_EXPECTED` events: a Poisson source is silent that long by
chance less than 0.1% of the time (e^-7), so the silence is a release or a pipeline outage.
"""

from __future__ import annotations

from typing import Final

from trackguard.audit.caps import CapLog, Limits
from trackguard.audit.model import Gap, Series, Timeline

WIDTHS: Final = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
GAP_EXPECTED: Final = 7.0
ALL: Final = "(all events)"
OTHER: Final = "(other events)"


class TimelineCensus:
    """Counts per (series, bucket); ``ALL`` holds every event."""

    __slots__ = ("caps", "hi", "invalid", "limits", "lo", "total", "width_index")

    def __init__(self, limits: Limits, caps: CapLog) -> None:
        self.limits = limits
        self.caps = caps
        self.width_index = 0
        self.lo: int | None = None  # bucket indices at the current width
        self.hi: int | None = None
        # per series; ALL is their sum, made when the timeline is built
        self.total: dict[str, dict[int, int]] = {}
        self.invalid: dict[str, dict[int, int]] = {}

    @property
    def width(self) -> int:
        return WIDTHS[self.width_index]

    def add(self, name: str, when: int, invalid: bool) -> None:
        b = when // WIDTHS[self.width_index]
        lo = self.lo
        if lo is None or b < lo or b > self.hi:  # type: ignore[operator]  # hi is set with lo
            b = self._reach(b, when)
        totals = self.total.get(name)
        if totals is None:
            name, totals = self._series(name)
        totals[b] = totals.get(b, 0) + 1
        if invalid:
            bad = self.invalid[name]
            bad[b] = bad.get(b, 0) + 1

    def _reach(self, b: int, when: int) -> int:
        """Stretch the span to bucket ``b`` (widening when too long); ``when``'s bucket."""
        lo, hi = self.lo, self.hi
        if lo is None or hi is None:
            self.lo = self.hi = b
            return b
        lo, hi = min(lo, b), max(hi, b)
        self.lo, self.hi = lo, hi
        if hi - lo + 1 > self.limits.buckets:
            self._widen()
            b = when // WIDTHS[self.width_index]
        return b

    def _series(self, name: str) -> tuple[str, dict[int, int]]:
        """A series seen for the first time (or OTHER, once there are too many)."""
        if len(self.total) >= self.limits.series:
            self.series_full()
            self.invalid.setdefault(OTHER, {})
            return OTHER, self.total.setdefault(OTHER, {})
        self.invalid[name] = {}
        totals = self.total[name] = {}
        return name, totals

    def series_full(self) -> None:
        self.caps.hit(
            "series",
            f"more than {self.limits.series} events over time: the rest are drawn "
            f"together as {OTHER!r}",
        )

    def _widen(self) -> None:
        assert self.lo is not None and self.hi is not None
        old = WIDTHS[self.width_index]
        start, end = self.lo * old, (self.hi + 1) * old
        while self.width_index < len(WIDTHS) - 1:
            self.width_index += 1
            new = WIDTHS[self.width_index]
            if (end - 1) // new - start // new + 1 <= self.limits.buckets:
                break
        new = WIDTHS[self.width_index]
        self.lo, self.hi = start // new, (end - 1) // new
        self.total = rebucketed(self.total, old, new)
        self.invalid = rebucketed(self.invalid, old, new)
        if self.hi - self.lo + 1 > self.limits.buckets:  # wider than the widest bucket allows
            self.caps.hit(
                "buckets",
                f"the log spans more than {self.limits.buckets} weeks: the timeline is clipped",
            )
            keep = self.hi - self.limits.buckets + 1
            for table in (self.total, self.invalid):
                for name, counts in table.items():
                    table[name] = {b: n for b, n in counts.items() if b >= keep}
            self.lo = keep

    def build(self, display: dict[str, str]) -> Timeline | None:
        """The timeline with series renamed by ``display`` (event key -> shown name)."""
        if self.lo is None or self.hi is None:
            return None
        lo, hi, width = self.lo, self.hi, self.width
        merged_total: dict[str, dict[int, int]] = {ALL: {}}
        merged_invalid: dict[str, dict[int, int]] = {ALL: {}}
        for key, counts in self.total.items():
            name = display.get(key, key)
            for target, source in ((merged_total, counts), (merged_invalid, self.invalid[key])):
                for shown in (name, ALL):
                    into = target.setdefault(shown, {})
                    for b, n in source.items():
                        into[b] = into.get(b, 0) + n
        span = range(lo, hi + 1)
        series = []
        gaps: list[Gap] = []
        for name in sorted(
            merged_total, key=lambda n: (n != ALL, -sum(merged_total[n].values()), n)
        ):
            totals = tuple(merged_total[name].get(b, 0) for b in span)
            invalid = tuple(merged_invalid[name].get(b, 0) for b in span)
            series.append(Series(name=name, total=totals, invalid=invalid))
            gaps.extend(_gaps(name, totals, lo, width))
        return Timeline(
            bucket_seconds=width, start=lo * width, series=tuple(series), gaps=tuple(gaps)
        )


def rebucketed(table: dict[str, dict[int, int]], old: int, new: int) -> dict[str, dict[int, int]]:
    """Counts per series in buckets ``old`` seconds wide, in buckets ``new`` wide (a multiple)."""
    if old == new:
        return table
    out: dict[str, dict[int, int]] = {}
    for name, counts in table.items():
        merged: dict[int, int] = {}
        for b, n in counts.items():
            nb = b * old // new
            merged[nb] = merged.get(nb, 0) + n
        out[name] = merged
    return out


def _gaps(name: str, counts: tuple[int, ...], lo: int, width: int) -> list[Gap]:
    nonzero = [i for i, n in enumerate(counts) if n]
    if len(nonzero) < 2:
        return []
    first, last = nonzero[0], nonzero[-1]
    rate = sum(counts) / (last - first + 1)
    out = []
    run_start: int | None = None
    for i in range(first, last + 1):
        if counts[i] == 0:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            expected = rate * (i - run_start)
            if expected >= GAP_EXPECTED:
                out.append(
                    Gap(
                        name=name,
                        start=(lo + run_start) * width,
                        end=(lo + i) * width,
                        expected=round(expected, 1),
                    )
                )
            run_start = None
    return out
