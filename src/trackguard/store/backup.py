"""Online backup, and giving space back: ``trackguard store backup`` and ``store vacuum``.

A backup is one consistent snapshot taken with SQLite's backup API through a read-only
connection while gateways and workers go on writing (WAL readers block no writer). The copy is
written 0600 to a temporary name, synced, checked with ``PRAGMA integrity_check`` and renamed
into place, so the destination is never a partial or damaged copy. Restoring is copying it back
with every writer stopped (docs/store.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import msgspec

from trackguard.errors import StoreNotFound
from trackguard.store.base import StoreError
from trackguard.store.files import (
    connect,
    copy_database,
    readonly_uri,
    readwrite_uri,
    schema_version,
)

__all__ = ["BackupResult", "VacuumResult", "backup", "vacuum"]


class BackupResult(msgspec.Struct, frozen=True, kw_only=True):
    dest: str
    size_bytes: int
    schema_version: int


class VacuumResult(msgspec.Struct, frozen=True, kw_only=True):
    """Bytes of the file and its WAL before and after."""

    before_bytes: int
    after_bytes: int


def backup(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> BackupResult:
    """Copy the store at ``path`` to ``dest`` (replacing it atomically); StoreError on any
    failure, in which case ``dest`` is left as it was."""
    src, out = Path(path), Path(dest)
    if not src.exists():
        raise StoreNotFound(str(src))
    if out.is_dir():
        raise StoreError(f"{out}: is a directory; give the backup's file name")
    if out.exists() and out.resolve() == src.resolve():
        raise StoreError(f"{out}: is the store itself; back it up to another file")
    if not out.parent.is_dir():
        raise StoreError(f"{out.parent}: no such directory")
    conn = connect(str(src), readonly_uri(src), uri=True)
    try:
        version = schema_version(conn, str(src))
        size = copy_database(conn, out)
    except sqlite3.Error as e:
        raise StoreError(f"{src}: backup failed: {e}") from e
    except OSError as e:
        raise StoreError(f"{out}: backup failed: {e}") from e
    finally:
        conn.close()
    check = _integrity(out)
    if check != "ok":
        raise StoreError(f"{out}: the copy fails its integrity check: {check}")
    return BackupResult(dest=str(out), size_bytes=size, schema_version=version)


def _integrity(path: Path) -> str:
    conn = connect(str(path), readonly_uri(path), uri=True)
    try:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def _on_disk(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def vacuum(path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> VacuumResult:
    """Rewrite the store compactly (``VACUUM``), then truncate its WAL; bytes before and after.

    VACUUM holds the write lock while it rewrites the whole file, so writers wait meanwhile
    (and a gateway answers 503 past its ``busy_timeout``): run it with writers stopped, or
    when traffic is low. Retention alone keeps the file bounded; vacuum only returns the free
    pages of a burst, or of a shorter retention, to the file system.
    """
    p = Path(path)
    if not p.exists():
        raise StoreNotFound(str(p))
    before = _on_disk(p)
    conn = connect(str(p), readwrite_uri(p), uri=True, timeout=busy_timeout)
    try:
        schema_version(conn, str(p))
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as e:
        raise StoreError(f"{p}: vacuum failed: {e}") from e
    finally:
        conn.close()
    return VacuumResult(before_bytes=before, after_bytes=_on_disk(p))
