"""Reading request files for ``trackguard check``: JSONL, one request per line, gzip or not;
and HAR captures (read by the audit's reader, :mod:`trackguard.audit.readers`).

A line is ``{"method": ..., "path": ..., "body": <JSON value or raw string>, "headers": {...}}``
(a request-log line is one). A string ``body`` is the raw body text (so broken JSON can be
written down); any other JSON value is the decoded body. A line or HAR entry that cannot be
read is yielded as :class:`Unreadable`, with its position: it is counted, never skipped
silently. A HAR entry for something other than Customer.io's APIs is yielded as
:class:`Skipped`, and counted too.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, Protocol, cast

import msgspec

from trackguard.audit.readers import FileCounter, Record, is_har, read_har
from trackguard.audit.readers import Unreadable as HarUnreadable
from trackguard.contract.operations import Request
from trackguard.shares import RangeReader, Share

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.encode


class _Placed:
    """Where an item was read: ``file:line``, or ``file:entry[N]`` for a HAR entry."""

    __slots__ = ()
    file: str
    line: int
    entry: bool

    @property
    def where(self) -> str:
        return f"{self.file}:entry[{self.line}]" if self.entry else f"{self.file}:{self.line}"

    def position(self) -> dict[str, object]:
        """The keys of a ``--format jsonl`` line that say where."""
        key = "entry" if self.entry else "line"
        return {"file": self.file, key: self.line}


class Unreadable(_Placed, msgspec.Struct, frozen=True):
    """A line (or HAR entry, with ``entry``) that is not a request record."""

    file: str
    line: int
    reason: str
    entry: bool = False


class Located(_Placed, msgspec.Struct, frozen=True):
    """A request and where it was read: a line number, or with ``entry`` a HAR entry index."""

    file: str
    line: int
    request: Request
    entry: bool = False


class Skipped(msgspec.Struct, frozen=True):
    """A HAR entry for something other than Customer.io's APIs (pages, images, other APIs)."""

    file: str
    line: int


Item = Located | Unreadable | Skipped


STDIN = Path("-")


@contextmanager
def open_input(path: Path) -> Iterator[IO[bytes]]:
    """Read a file (``-``: standard input) as bytes, gunzipping by magic number.

    The magic number is peeked, not read and sought back, so pipes work too.
    """
    with ExitStack() as stack:
        if path == STDIN:
            raw: IO[bytes] = sys.stdin.buffer
        else:
            raw = stack.enter_context(path.open("rb"))
        fh = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
        if fh.peek(2)[:2] == b"\x1f\x8b" and not _plain_after_all(fh):
            gz = stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb"))
            yield cast(IO[bytes], gz)
        else:
            yield fh


def _plain_after_all(fh: io.BufferedReader) -> bool:
    """A file that starts with gzip's magic bytes but is not gzip (checked on seekable files).

    A corrupt gzip file stays gzip, so its good lines are read and the break is reported.
    """
    if not fh.seekable():
        return False
    try:
        gzip.GzipFile(fileobj=fh, mode="rb").peek(1)
        return False
    except (OSError, EOFError, zlib.error):
        return not _has_gzip_header(fh)
    finally:
        fh.seek(0)


def _has_gzip_header(fh: io.BufferedReader) -> bool:
    fh.seek(0)
    header = fh.read(10)
    return len(header) == 10 and header[2] == 8 and header[3] & 0xE0 == 0


def record_to_request(record: Any, source: str) -> Request | str:
    """A request from a decoded line, or the reason it is not one."""
    if not isinstance(record, dict):
        return "line is not a JSON object"
    method, path = record.get("method"), record.get("path")
    if not isinstance(method, str) or not method:
        return 'missing or non-string "method"'
    if not isinstance(path, str) or not path.startswith("/"):
        return 'missing "path" or it does not start with /'
    body = record.get("body")
    encoded = record.get("body_base64")  # request logs keep non-UTF-8 bodies exactly here
    if isinstance(encoded, str):
        try:
            return _request(record, method, path, base64.b64decode(encoded, validate=True), source)
        except binascii.Error:
            return '"body_base64" is not valid base64'
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = _encode(body)
    return _request(record, method, path, raw, source)


def _request(record: dict[str, Any], method: str, path: str, raw: bytes, source: str) -> Request:
    headers_in = record.get("headers")
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(headers_in, dict):
        headers = tuple((str(k), str(v)) for k, v in headers_in.items())
    return Request(method=method.upper(), path=path, body=raw, headers=headers, source=source)


#: The longest line read: a 1 MiB body, JSON-escaped, with room for the rest of the record.
MAX_LINE = 4 * 1024 * 1024


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def _lines(fh: _LineSource, lineno: int = 0) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines (after ``lineno``); ``None`` for a line over :data:`MAX_LINE` (skipped,
    never held whole)."""
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = fh.readline(MAX_LINE)
            yield lineno, None
            continue
        yield lineno, line


def _har(path: Path) -> Iterator[Item]:
    """The entries of a HAR capture, as the audit reads them.

    The audit's reader yields exactly one item per entry, in order, so an item's index is its
    entry's; only an unreadable file (``position == "file"``, then nothing else) has none.
    """
    for index, item in enumerate(read_har(path, FileCounter(str(path), "har"))):
        if isinstance(item, Record):
            yield Located(item.file, item.pos, item.request, True)
        elif not isinstance(item, HarUnreadable):
            yield Skipped(item.file, index)
        elif item.position == "file":
            yield Unreadable(item.file, 0, item.reason)
        else:
            yield Unreadable(item.file, index, item.reason, True)


def iter_requests(paths: list[Path]) -> Iterator[Item]:
    """Every line (or HAR entry) of every file, as a request, unreadable, or skipped."""
    for path in paths:
        if path != STDIN and is_har(path):
            yield from _har(path)
            continue
        with ExitStack() as stack:
            try:
                fh = stack.enter_context(open_input(path))
            except OSError as exc:
                yield Unreadable(str(path), 0, f"cannot open: {exc.strerror or exc}")
                continue
            yield from _read(str(path), fh)


def iter_share(share: Share) -> Iterator[Item]:
    """One share of the input (``check --jobs``): a whole file, or a byte range of a plain one
    from a line start, its lines numbered as in the whole file."""
    if share.whole:
        yield from iter_requests([share.path])
        return
    with share.path.open("rb") as fh:
        lines = RangeReader(fh, share.start, share.end)
        yield from _read(str(share.path), lines, share.first_line - 1)


def _read(name: str, fh: _LineSource, start: int = 0) -> Iterator[Located | Unreadable]:
    lineno = start
    try:
        for lineno, raw_line in _lines(fh, start):
            if raw_line is None:
                yield Unreadable(name, lineno, f"line is longer than {MAX_LINE} bytes")
                continue
            line = raw_line.strip()
            if not line:
                continue
            try:
                record = _decode(line)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                yield Unreadable(name, lineno, "line is not valid JSON")
                continue
            result = record_to_request(record, f"{name}:{lineno}")
            if isinstance(result, str):
                yield Unreadable(name, lineno, result)
            else:
                yield Located(name, lineno, result)
    except (OSError, EOFError, zlib.error) as exc:
        yield Unreadable(name, lineno + 1, f"file is truncated or corrupt: {exc}")
