"""Backfill sources, read one row at a time in constant memory.

* CSV (header row) and JSONL files, gzip accepted (detected by its magic bytes);
* a SQL query against a SQLite database: ``sqlite:///path/to.db?query=SELECT ...`` or the URL
  and a separate ``query``;
* a SQL query against PostgreSQL: ``postgresql://user@host:port/db?query=SELECT ...`` (or
  ``postgres://``) or the URL and a separate ``query``, read through a server-side cursor with
  psycopg 3 (``pip install 'trackguard[postgres]'``);
* Parquet files (``.parquet``), read with DuckDB (``pip install 'trackguard[parquet]'``).

Every source yields :class:`SourceRow` values numbered from 1 in source order, and has an
``identity`` (what a checkpoint is keyed on) and, for files, a byte position for progress.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import msgspec

from trackguard.errors import InputError, first_line

_GZIP_MAGIC = b"\x1f\x8b"
_ARRAY_SIZE = 1000
_decode = msgspec.json.decode


class SourceError(InputError):
    """A source that cannot be opened or read at all (not one bad row)."""


@dataclass(frozen=True, slots=True)
class SourceRow:
    """Row ``number`` (1-based, in source order) at ``line``; ``values`` or an ``error``."""

    number: int
    line: int | None
    values: dict[str, Any] | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"row {self.number}" + (f" (line {self.line})" if self.line is not None else "")


class Source(Protocol):
    identity: str
    name: str

    def rows(self) -> Iterator[SourceRow]: ...

    def total(self) -> int | None: ...

    def position(self) -> int | None: ...


class _FileSource:
    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.name = os.path.basename(path)
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                head = f.read(65536)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        self.size = st.st_size
        digest = hashlib.sha256(head).hexdigest()[:16]
        # Keyed on where the file is and how it starts, not its size or mtime, so a file that
        # was appended to (an export still growing) resumes after the rows already done.
        self.identity = f"file:{os.path.abspath(path)}#{digest}"
        self.gzipped = head.startswith(_GZIP_MAGIC)
        self._raw: IO[bytes] | None = None

    def total(self) -> int | None:
        return self.size

    def position(self) -> int | None:
        raw = self._raw
        if raw is None or raw.closed:
            return None
        try:
            return raw.tell()
        except (OSError, ValueError):
            return None

    def _open_text(self) -> Iterator[IO[str]]:
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise SourceError(f"{self.path}: {e.strerror or e}") from e
        self._raw = raw
        try:
            binary: IO[bytes] = (
                gzip.GzipFile(fileobj=raw, mode="rb") if self.gzipped else raw  # type: ignore[assignment]
            )
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")
            yield text
        finally:
            raw.close()

    def rows(self) -> Iterator[SourceRow]:
        for text in self._open_text():
            try:
                if self.kind == "csv":
                    yield from _csv_rows(text, self.path)
                else:
                    yield from _jsonl_rows(text)
            except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
                raise SourceError(f"{self.path}: cannot read: {e}") from e


def _csv_rows(text: IO[str], path: str) -> Iterator[SourceRow]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise SourceError(f"{path}: line 1: {e}") from e
    header = [h.strip() for h in header]
    number = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            number += 1
            yield SourceRow(number, start, None, f"unreadable CSV: {e}")
            continue
        if not cells:
            continue  # a blank line is not a row
        number += 1
        if len(cells) != len(header):
            yield SourceRow(
                number, start, None, f"{len(cells)} fields where the header has {len(header)}"
            )
            continue
        yield SourceRow(number, start, dict(zip(header, cells, strict=True)))


def _jsonl_rows(text: IO[str]) -> Iterator[SourceRow]:
    number = 0
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        number += 1
        try:
            value = _decode(line)
        except (msgspec.DecodeError, RecursionError) as e:
            yield SourceRow(number, line_no, None, f"invalid JSON: {e}")
            continue
        if not isinstance(value, dict):
            yield SourceRow(number, line_no, None, "not a JSON object")
            continue
        yield SourceRow(number, line_no, value)


class _SQLiteSource:
    def __init__(self, path: str, query: str) -> None:
        if not query.strip():
            raise SourceError("a SQL source needs a query (?query=... or --query)")
        if not os.path.exists(path):
            raise SourceError(f"{path}: no such database")
        self.path = path
        self.query = query
        self.name = os.path.basename(path)
        digest = hashlib.sha256(query.encode()).hexdigest()[:16]
        self.identity = f"sqlite:{os.path.abspath(path)}#{digest}"

    def total(self) -> int | None:
        return None

    def position(self) -> int | None:
        return None

    def rows(self) -> Iterator[SourceRow]:
        uri = "file:" + os.path.abspath(self.path) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as e:
            raise SourceError(f"{self.path}: {first_line(e)}") from e
        try:
            yield from _cursor_rows(conn.execute(self.query))
        except sqlite3.Error as e:
            raise SourceError(f"{self.path}: {first_line(e)}") from e
        finally:
            conn.close()


class _Cursor(Protocol):
    """What the three DB-API cursors (sqlite3, psycopg, duckdb) share here."""

    @property
    def description(self) -> Any: ...

    def fetchmany(self, size: int, /) -> Sequence[Sequence[Any]]: ...


def _cursor_rows(cursor: _Cursor) -> Iterator[SourceRow]:
    """Rows numbered from 1, fetched ``_ARRAY_SIZE`` at a time.

    The column names are read after the first fetch: a server-side (named) PostgreSQL cursor
    describes its columns only then.
    """
    number = 0
    columns: list[str] | None = None
    while batch := cursor.fetchmany(_ARRAY_SIZE):
        if columns is None:
            columns = [d[0] for d in cursor.description or ()]
        for values in batch:
            number += 1
            yield SourceRow(number, None, _row_values(columns, values))


def _row_values(columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    # NUMERIC/DECIMAL columns arrive as Decimal, which the mapping's number type and the JSON
    # encoder do not take; its exact text does (no float rounding of money on the way).
    return {
        c: str(v) if isinstance(v, Decimal) else v for c, v in zip(columns, values, strict=True)
    }


class _PostgresSource:
    def __init__(self, url: str, query: str) -> None:
        if not query.strip():
            raise SourceError("a SQL source needs a query (?query=... or --query)")
        self.url = url
        # DECLARE ... CURSOR FOR takes one statement without the trailing semicolon.
        self.query = query.strip().rstrip(";").rstrip()
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{unquote(parts.username)}@" if parts.username else ""
        db = unquote(parts.path.lstrip("/"))
        # Never the password: the name is printed and the identity is stored in the meta table.
        self.name = f"{user}{host}{port}/{db}"
        digest = hashlib.sha256(query.encode()).hexdigest()[:16]
        self.identity = f"postgresql://{self.name}#{digest}"

    def total(self) -> int | None:
        return None

    def position(self) -> int | None:
        return None

    def rows(self) -> Iterator[SourceRow]:
        try:
            import psycopg
        except ImportError:
            raise SourceError(
                "PostgreSQL sources need: pip install 'trackguard[postgres]'"
            ) from None
        try:
            conn = psycopg.connect(self.url, autocommit=False)
        except psycopg.Error as e:
            raise SourceError(f"{self.name}: {_pg_message(e)}") from e
        try:
            conn.read_only = True
            # A named cursor lives on the server: rows come _ARRAY_SIZE at a time, never the
            # whole result in client memory.
            with conn.cursor(name="trackguard_backfill") as cursor:
                cursor.execute(self.query)
                yield from _cursor_rows(cursor)
        except psycopg.Error as e:
            raise SourceError(f"{self.name}: {_pg_message(e)}") from e
        finally:
            conn.close()


def _pg_message(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class _ParquetSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                head = f.read(65536)
                f.seek(max(0, st.st_size - 65536))
                tail = f.read(65536)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        # A Parquet file is rewritten, not appended to: its start and its footer (the schema
        # and row groups) identify it.
        digest = hashlib.sha256(head + tail).hexdigest()[:16]
        self.identity = f"parquet:{os.path.abspath(path)}#{digest}"

    def total(self) -> int | None:
        return None

    def position(self) -> int | None:
        return None

    def rows(self) -> Iterator[SourceRow]:
        try:
            import duckdb
        except ImportError:
            raise SourceError("Parquet sources need: pip install 'trackguard[parquet]'") from None
        try:
            conn = duckdb.connect()
        except duckdb.Error as e:
            raise SourceError(f"{self.path}: {first_line(e)}") from e
        try:
            # Row numbers are what a checkpoint counts: keep the file's order.
            conn.execute("SET preserve_insertion_order = true")
            yield from _cursor_rows(conn.execute("SELECT * FROM read_parquet(?)", [self.path]))
        except duckdb.Error as e:
            raise SourceError(f"{self.path}: {first_line(e)}") from e
        finally:
            conn.close()


def _split_query(target: str, query: str | None) -> tuple[str, str]:
    """``target`` without its ``query`` parameter, and the query (from the URL or ``query``)."""
    parts = urlsplit(target)
    params = parse_qs(parts.query, keep_blank_values=True)
    from_url = params.pop("query", [None])[0]
    if query is not None and from_url is not None:
        raise SourceError("give the query in the URL or with --query, not both")
    rest = urlunsplit(parts._replace(query=urlencode(params, doseq=True)))
    return rest, query if query is not None else (from_url or "")


def open_source(target: str, query: str | None = None) -> Source:
    """The source named by ``target``: a CSV/JSONL file (maybe .gz), a Parquet file, or a
    ``sqlite:///`` or ``postgresql://`` URL."""
    if target.startswith(("postgres://", "postgresql://")):
        url, sql = _split_query(target, query)
        return _PostgresSource(url, sql)
    if target.startswith("sqlite:"):
        parts = urlsplit(target)
        path = unquote(parts.path)
        if target.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif target.startswith("sqlite:///"):
            path = path[1:] if path.startswith("/") else path
        from_url = parse_qs(parts.query).get("query", [None])[0]
        if query is not None and from_url is not None:
            raise SourceError("give the query in the URL or with --query, not both")
        return _SQLiteSource(path, query if query is not None else (from_url or ""))
    if query is not None:
        raise SourceError("--query is for sqlite:/// and postgresql:// sources")
    if target.lower().endswith(".parquet"):
        return _ParquetSource(target)
    name = target.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return _FileSource(target, "csv")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return _FileSource(target, "jsonl")
    raise SourceError(
        f"{target}: cannot tell the format: name it .csv, .jsonl (maybe .gz) or .parquet"
    )
