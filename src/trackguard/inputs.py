"""Reading request files for ``trackguard check``: JSONL, one request per line, gzip or not.

A line is ``{"method": ..., "path": ..., "body": <JSON value or raw string>, "headers": {...}}``.
A string ``body`` is the raw body text (so broken JSON can be written down); any other JSON
value is the decoded body. A line that cannot be read is yielded as :class:`Unreadable`, with
its position: it is counted, never skipped silently.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import msgspec

from trackguard.contract.operations import Request

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.encode


class Unreadable(msgspec.Struct, frozen=True):
    """A line that is not a request record."""

    file: str
    line: int
    reason: str


class Located(msgspec.Struct, frozen=True):
    """A request and where it was read."""

    file: str
    line: int
    request: Request


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, transparently gunzipping by magic number."""
    fh = path.open("rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == b"\x1f\x8b":
        fh.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    return fh


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
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = _encode(body)
    headers_in = record.get("headers")
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(headers_in, dict):
        headers = tuple((str(k), str(v)) for k, v in headers_in.items())
    return Request(method=method.upper(), path=path, body=raw, headers=headers, source=source)


def iter_requests(paths: list[Path]) -> Iterator[Located | Unreadable]:
    """Every line of every file, as a request or as an unreadable line."""
    for path in paths:
        name = str(path)
        try:
            fh = open_maybe_gzip(path)
        except OSError as exc:
            yield Unreadable(name, 0, f"cannot open: {exc.strerror or exc}")
            continue
        with fh:
            lineno = 0
            try:
                for lineno, raw_line in enumerate(fh, start=1):
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
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                yield Unreadable(name, lineno + 1, f"file is truncated or corrupt: {exc}")
