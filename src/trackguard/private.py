"""Files that hold request data are created readable by their owner only (mode 0600).

Request bodies carry personal data (emails, names, orders, addresses). A store, a quarantine
export or an audit report created with the usual umask (0644) would show them to every user of
the machine, so every file trackguard writes such data to is created 0600, and a report or
export it overwrites is narrowed to 0600 too. A store file that already exists keeps its mode
(an operator may have widened it on purpose, for a worker running as another user).
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import IO, Final, Literal, overload

#: Owner read and write, nothing for anyone else.
PRIVATE: Final = 0o600


def create_private(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty with mode 0600 unless it exists.

    SQLite creates a database's ``-wal`` and ``-shm`` files with the database file's mode, so
    creating the file first is what makes all three private. Errors are left to the caller's
    own open (it reports them with its context).
    """
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))


@overload
def open_private(
    path: str | os.PathLike[str], mode: Literal["w", "a"], *, newline: str | None = None
) -> IO[str]: ...
@overload
def open_private(path: str | os.PathLike[str], mode: Literal["wb", "ab"]) -> IO[bytes]: ...
def open_private(
    path: str | os.PathLike[str], mode: str, *, newline: str | None = None
) -> IO[str] | IO[bytes]:
    """Open ``path`` for writing (``w``/``wb`` truncate, ``a``/``ab`` append), created 0600.

    A regular file opened to be overwritten is narrowed to 0600 as well; an appended file and
    anything that is not a regular file (``/dev/stdout``, a pipe) keep their mode.
    """
    append = mode.startswith("a")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE)
    try:
        if not append and stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, PRIVATE)
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding="utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path``, created (or narrowed to) 0600."""
    with open_private(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
