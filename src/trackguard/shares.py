"""The input files of ``audit`` and ``check``: what is wrong with one that cannot be read (in
one wording for both), and splitting them into shares for worker processes (``--jobs``).

A share is a whole file, or a byte range of a plain (uncompressed) line-oriented file that
starts and ends at line starts, with the number of its first line so positions in reports
are the same as in a one-process run. A gzip stream cannot be entered in the middle, so a
gzip file is always one share. Workers are forked (``fork`` start method): they inherit the
loaded plan and the interpreter's hash seed, so hashed identifiers agree across workers.
Where ``fork`` is not available the commands run in one process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol, TypeVar

#: Plain files smaller than this are never split: a worker costs more than it saves.
MIN_SHARE_BYTES: Final = 4 * 1024 * 1024
_BLOCK: Final = 1 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"

T = TypeVar("T")
R = TypeVar("R")


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class Share:
    """One worker's part of the input: ``path`` from ``start`` to ``end`` (None: to EOF)."""

    index: int  # the file's position among the inputs
    path: Path
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def input_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as an input file (``PATH: no such file``, ``PATH: is a
    directory``), or None when it is a file: ``audit`` and ``check`` refuse their inputs in
    these words, ``PATH: problem`` as every other error about a path."""
    if os.path.isfile(path):
        return None
    return f"{os.fspath(path)}: {'is a directory' if os.path.isdir(path) else 'no such file'}"


def is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def plan_shares(
    files: Sequence[Path], jobs: int, *, splittable: Callable[[Path], bool]
) -> list[Share] | None:
    """Shares in input order: about ``jobs`` of equal size, ``splittable`` files in ranges;
    None when one process should read it all (one share, or less than
    :data:`MIN_SHARE_BYTES` in all)."""
    sizes = [_size(p) for p in files]
    if jobs < 2 or sum(sizes) < MIN_SHARE_BYTES:
        return None
    target = max(MIN_SHARE_BYTES, -(-sum(sizes) // jobs), 1)
    out: list[Share] = []
    for index, (path, size) in enumerate(zip(files, sizes, strict=True)):
        pieces = min(jobs, -(-size // target)) if size > target else 1
        if pieces > 1 and splittable(path):
            out.extend(_split(index, path, size, pieces))
        else:
            out.append(Share(index, path))
    return out if len(out) > 1 else None


def _split(index: int, path: Path, size: int, pieces: int) -> Iterator[Share]:
    """``pieces`` ranges cut at the first line start at or after each equal division."""
    with path.open("rb") as fh:
        cuts = [0]
        for i in range(1, pieces):
            cut = _line_start(fh, max(size * i // pieces, cuts[-1]), size)
            if cut > cuts[-1] and cut < size:
                cuts.append(cut)
        line = 1
        for a, b in zip(cuts, [*cuts[1:], None], strict=True):
            yield Share(index, path, a, b, line)
            if b is not None:
                line += _newlines(fh, a, b)


def _line_start(fh: IO[bytes], at: int, size: int) -> int:
    """The first line start at or after ``at``."""
    if at <= 0:
        return 0
    fh.seek(at - 1)
    pos = at - 1
    while True:
        block = fh.read(_BLOCK)
        if not block:
            return size
        nl = block.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(block)


def _newlines(fh: IO[bytes], start: int, end: int) -> int:
    fh.seek(start)
    n = 0
    left = end - start
    while left > 0:
        block = fh.read(min(_BLOCK, left))
        if not block:
            break
        n += block.count(b"\n")
        left -= len(block)
    return n


class _Seekable(Protocol):
    def seek(self, pos: int, whence: int = 0, /) -> int: ...
    def readline(self, size: int | None = -1, /) -> bytes: ...


class RangeReader:
    """``readline`` over ``raw`` that stops at ``end`` (a line start, so no line is cut)."""

    __slots__ = ("_end", "_pos", "_raw")

    def __init__(self, raw: _Seekable, start: int, end: int | None) -> None:
        raw.seek(start)
        self._raw = raw
        self._pos = start
        self._end = end

    def readline(self, size: int | None = -1) -> bytes:
        if self._end is not None:
            left = self._end - self._pos
            if left <= 0:
                return b""
            size = left if size is None or size < 0 else min(size, left)
        line = self._raw.readline(size)
        self._pos += len(line)
        return line


def run_shares(work: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[R]:
    """``work(item)`` in up to ``jobs`` forked processes; results in the order of ``items``."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context) as pool:
        yield from pool.map(work, items)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
