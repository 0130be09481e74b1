"""The store's file on disk: opening it, copying it whole, naming upgrade backups.

Kept apart from ``sqlite.py`` so the store, ``trackguard store backup`` and the backup taken
before a schema upgrade share one copy routine (SQLite's online backup API, written 0600 to a
temporary name and renamed into place, so a reader never sees half a copy), and so every
reader of the file (the store, SQL sessions, backup, vacuum, ``store info``, the monitor)
opens it and refuses a file that is not a store with the same words.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from trackguard.errors import StoreError

__all__ = [
    "cannot_open",
    "connect",
    "copy_database",
    "not_a_store",
    "readonly_uri",
    "readwrite_uri",
    "schema_version",
    "upgrade_backup_path",
    "user_version",
    "writable_location",
]


def cannot_open(where: str, exc: BaseException) -> StoreError:
    """The error for a store file SQLite cannot open (or set up once open)."""
    return StoreError(f"{where}: cannot open the store: {exc}")


def not_a_store(where: str) -> StoreError:
    """The error for a SQLite file that holds no trackguard schema."""
    return StoreError(f"{where}: not a trackguard store (no schema)")


def connect(
    where: str,
    target: str,
    *,
    uri: bool = False,
    timeout: float = 5.0,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """An autocommit connection to ``target`` (a path, or a ``file:`` URI with ``uri``);
    :func:`cannot_open` names ``where`` when SQLite refuses it."""
    try:
        return sqlite3.connect(
            target,
            uri=uri,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    except (sqlite3.Error, ValueError) as e:
        raise cannot_open(where, e) from e


def user_version(conn: sqlite3.Connection, where: str) -> int:
    """``PRAGMA user_version`` (0 when the file has no schema); :func:`cannot_open` when
    SQLite cannot read the file (not a database, locked, damaged), whatever the caller goes
    on to do with it."""
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as e:
        raise cannot_open(where, e) from e


def schema_version(conn: sqlite3.Connection, where: str) -> int:
    """The file's schema version; :func:`not_a_store` when it has none (0: an empty or
    foreign SQLite file)."""
    version = user_version(conn, where)
    if version == 0:
        raise not_a_store(where)
    return version


def writable_location(path: str | os.PathLike[str]) -> bool:
    """True when the file and its directory can be written (a read-only mount, a read-only
    file or directory answer False; ``access`` reports a read-only file system as such even
    to root)."""
    p = Path(path).absolute()
    return os.access(p.parent, os.W_OK) and (not p.exists() or os.access(p, os.W_OK))


def readwrite_uri(path: str | os.PathLike[str]) -> str:
    """A ``file:`` URI that opens ``path`` for reading and writing but never creates it, even
    if the file disappears between a check for it and the open (``mode=rw``)."""
    return Path(path).absolute().as_uri() + "?mode=rw"


def readonly_uri(path: str | os.PathLike[str]) -> str:
    """A ``file:`` URI that opens ``path`` for reading only and never creates it.

    ``mode=ro`` where SQLite can create the WAL's shared-memory file beside the store (or it
    is already there); ``immutable=1`` where it cannot (a read-only mount or directory): SQLite
    then reads the main file without locking, which is right for a file nobody can write.
    A non-empty ``-wal`` file there still gets ``mode=ro``: ``immutable`` would silently skip
    the transactions it holds, and a clear error is better than a stale answer.
    """
    p = Path(path).absolute()
    uri = p.as_uri()
    if os.access(p.parent, os.W_OK):
        return uri + "?mode=ro"
    wal = p.with_name(p.name + "-wal")
    shm = p.with_name(p.name + "-shm")
    if (wal.exists() and wal.stat().st_size > 0) or shm.exists():
        return uri + "?mode=ro"
    return uri + "?immutable=1"


def copy_database(source: sqlite3.Connection, dest: str | os.PathLike[str]) -> int:
    """Copy the database of ``source`` to ``dest`` as one consistent snapshot; its size.

    The copy is one ``backup`` step, so it reads a single snapshot (writers on other
    connections go on meanwhile: WAL readers do not block them). It is written to a temporary
    file created 0600 in ``dest``'s directory, synced, and renamed over ``dest``, so ``dest``
    is either the old file or the whole new copy, never a partial one.
    """
    target = Path(dest).absolute()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            source.backup(out)
            # One self-contained file: the copy keeps no -wal beside it once closed.
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power loss
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return target.stat().st_size


def upgrade_backup_path(path: str | os.PathLike[str], version: int, now: float) -> Path:
    """Where the copy taken before upgrading ``path`` from schema ``version`` goes: beside
    it, ``trackguard.db.v5-20261206T093000Z.bak``."""
    p = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return p.with_name(f"{p.name}.v{version}-{stamp}.bak")
