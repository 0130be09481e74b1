"""Reading logs for the audit: request logs, HAR captures and mapped JSONL, gzip or not.

Every line (or HAR entry) comes out as exactly one of :class:`Record` (a request to check),
:class:`Unreadable` (with its position and why) or :class:`Skipped` (a HAR entry that is
neither a Track API nor a Pipelines API call), so the report's totals always add up. Nothing
here raises on file content: truncated gzip, binary garbage, non-UTF-8 bytes and huge lines
are reported, not fatal.

JSONL is streamed a line at a time with a bounded line length; a HAR file is one JSON document
and is decoded whole (its entries one by one, so one bad entry does not spoil the others).
"""

from __future__ import annotations

import base64
import binascii
import glob
import gzip
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from trackguard.contract.operations import Request
from trackguard.contract.pipelines import route_for
from trackguard.errors import InputError as BaseInputError
from trackguard.shares import Share, input_problem, is_gzip

#: Lines longer than this are reported as unreadable, not parsed: Customer.io refuses bodies
#: over 1 MiB, and escaping can double a body's size inside a JSON string.
MAX_LINE_BYTES: Final = 4 * 1024 * 1024
#: HAR files are decoded whole; larger ones are refused rather than exhausting memory.
MAX_HAR_BYTES: Final = 512 * 1024 * 1024
MAP_FIELDS: Final = ("method", "path", "body", "status", "response", "time", "source", "headers")
_TRACK_PREFIXES: Final = ("/api/v1/", "/api/v2/", "/push/events", "/unsubscribe/")
_encode: Final = msgspec.json.encode


class Record(msgspec.Struct, gc=False):
    """A readable request and what the log says happened to it."""

    file: str
    pos: int  # 1-based line number, or 0-based HAR entry index
    har: bool
    request: Request
    time: str | None
    status: int | None
    response: str | None

    @property
    def where(self) -> str:
        return f"{self.file}:entry[{self.pos}]" if self.har else f"{self.file}:{self.pos}"


class Unreadable(msgspec.Struct, frozen=True, gc=False):
    """A line or entry that is not a request record (or a file that cannot be read)."""

    file: str
    position: str  # "12", "entry[3]" or "file"
    reason: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.position}"


class Skipped(msgspec.Struct, frozen=True, gc=False):
    """A HAR entry for something other than Customer.io's APIs (pages, images, other APIs)."""

    file: str
    position: str


Item = Record | Unreadable | Skipped


@dataclass
class FileCounter:
    """Counts for one input, filled in while it is read."""

    path: str
    format: str
    bytes: int = 0
    records: int = 0
    readable: int = 0
    unreadable: int = 0
    skipped: int = 0
    blank: int = 0
    raw_position: Callable[[], int] = field(default=lambda: 0, repr=False)


class MapError(BaseInputError, ValueError):
    """A ``--map`` specification that cannot be used."""


class InputError(BaseInputError, ValueError):
    """An input path or glob that names no readable file."""


# --- the request-log line -----------------------------------------------------------------------


class _LogLine(msgspec.Struct, gc=False, kw_only=True):
    """A request-log line (docs/request-log.md); also the ``check`` input format.

    The fields are in the order the gateway writes them (``http/requestlog.py``): msgspec
    looks each key up from the field after the last one found, so keys in field order are
    found at the first comparison, where any other order costs a scan of the names per key.
    """

    time: str | None = None
    method: str
    path: str
    headers: msgspec.Raw = msgspec.Raw(b"null")  # see _headers: decoded once per spelling
    body: Any = None
    body_base64: str | None = None  # the exact bytes of a body that is not UTF-8
    status: int | None = None
    response: str | None = None  # other JSON (an object) is read by _lenient
    source: str | None = None


_line_decoder: Final = msgspec.json.Decoder(_LogLine)
_any_decoder: Final = msgspec.json.Decoder()
_headers_decoder: Final = msgspec.json.Decoder(dict[str, str] | None)
#: Distinct ``headers`` spellings kept decoded (a log repeats a handful of them).
HEADER_CACHE: Final = 256
_header_cache: dict[bytes, tuple[tuple[str, str], ...]] = {}
_DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
#: Methods as logged -> as requested: one string object per method, so the audit's route
#: cache compares methods by identity (and no upper-cased copy is made per line).
_METHODS: Final = {m: m for m in ("POST", "PUT", "GET", "DELETE", "PATCH")}


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return _encode(body)


def _base64_body(value: Any) -> bytes | None:
    """The bytes of a request log's ``body_base64``, or None when it is not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return _encode(value).decode()


def _path_of(value: Any) -> str | None:
    """A request path from a path or a full URL; None when it is neither."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return None


def _status_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _headers_of(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list):  # HAR-style [{"name","value"}]
        pairs = []
        for h in value:
            if isinstance(h, dict) and "name" in h:
                pairs.append((str(h["name"]), str(h.get("value", ""))))
        return tuple(pairs)
    return ()


def _from_fields(fields: dict[str, Any], name: str, pos: int) -> Record | Unreadable:
    """A record from loosely typed fields (the slow path and mapped JSONL)."""
    method = fields.get("method")
    if not isinstance(method, str) or not method:
        return Unreadable(name, str(pos), 'missing or non-string "method"')
    path = _path_of(fields.get("path"))
    if path is None:
        return Unreadable(name, str(pos), 'missing "path", or it is not a path or URL')
    source = fields.get("source")
    body = _body_bytes(fields.get("body"))
    if "body_base64" in fields and fields["body_base64"] is not None:
        exact = _base64_body(fields["body_base64"])
        if exact is None:
            return Unreadable(name, str(pos), '"body_base64" is not valid base64')
        body = exact
    request = Request(
        method=method.upper(),
        path=path,
        body=body,
        headers=_headers_of(fields.get("headers")),
        source=source if isinstance(source, str) else None,
    )
    when = fields.get("time")
    return Record(
        name,
        pos,
        False,
        request,
        when if isinstance(when, str) else None,
        _status_of(fields.get("status")),
        _text(fields.get("response")),
    )


def _headers(spelled: bytes) -> tuple[tuple[str, str], ...]:
    """A line's ``headers`` object (its JSON spelling) as pairs, kept in the cache; raises
    ValidationError when not strings.

    Every line of a log repeats the same few header objects, so their JSON spelling is
    decoded once and the pairs reused: no dict and no strings per line.
    """
    headers = _headers_decoder.decode(spelled)
    pairs = tuple(headers.items()) if headers else ()
    if len(_header_cache) >= HEADER_CACHE:
        _header_cache.clear()
    _header_cache[spelled] = pairs
    return pairs


def _lenient(line: bytes, name: str, pos: int) -> Record | Unreadable:
    """A line whose fields have unexpected types, read field by field."""
    try:
        value = _any_decoder.decode(line)
    except _DECODE_ERRORS:  # pragma: no cover - the typed decoder saw valid JSON
        return Unreadable(name, str(pos), "line is not valid JSON")
    if not isinstance(value, dict):
        return Unreadable(name, str(pos), "line is not a JSON object")
    return _from_fields(value, name, pos)


def _log_line(line: bytes, name: str, pos: int) -> Record | Unreadable:
    """Decode one request-log line: a typed fast path, a lenient path when types are off."""
    try:
        rec = _line_decoder.decode(line)
    except msgspec.ValidationError:
        return _lenient(line, name, pos)
    except _DECODE_ERRORS:
        return Unreadable(name, str(pos), "line is not valid JSON")
    item = _log_record(rec, name, pos)
    return _lenient(line, name, pos) if item is None else item


def _log_record(rec: _LogLine, name: str, pos: int) -> Record | Unreadable | None:
    """The record of a typed request-log line; None when its headers are not strings (the
    caller reads the line leniently)."""
    spelled = bytes(rec.headers)
    headers = _header_cache.get(spelled)
    if headers is None:
        try:
            headers = _headers(spelled)
        except msgspec.ValidationError:
            return None
    if not rec.method:
        return Unreadable(name, str(pos), 'missing or non-string "method"')
    path = rec.path
    if path[:1] != "/":
        fixed = _path_of(path)
        if fixed is None:
            return Unreadable(name, str(pos), 'missing "path", or it is not a path or URL')
        path = fixed
    body = rec.body
    if rec.body_base64 is not None:
        raw = _base64_body(rec.body_base64)
        if raw is None:
            return Unreadable(name, str(pos), '"body_base64" is not valid base64')
    elif type(body) is str:
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = _body_bytes(body)
    method = _METHODS.get(rec.method) or rec.method.upper()
    request = Request(method=method, path=path, body=raw, headers=headers, source=rec.source)
    return Record(name, pos, False, request, rec.time, rec.status, rec.response)


# --- mapped JSONL ------------------------------------------------------------------------------


def parse_map(spec: str) -> dict[str, tuple[str, ...]]:
    """``method=req.method,path=req.url,...`` as field -> key path; raises MapError."""
    mapping: dict[str, tuple[str, ...]] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        target, sep, source = part.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not source:
            raise MapError(f"--map entry {part!r} is not FIELD=dotted.path")
        if target not in MAP_FIELDS:
            raise MapError(f"--map field {target!r} is not one of: {', '.join(MAP_FIELDS)}")
        keys = tuple(source.split("."))
        if any(not k for k in keys):
            raise MapError(f"--map path {source!r} has an empty key")
        mapping[target] = keys
    for required in ("method", "path"):
        if required not in mapping:
            raise MapError(f"--map must name {required!r} (e.g. {required}=req.{required})")
    return mapping


def _dig(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _mapped_line(
    line: bytes, name: str, pos: int, mapping: dict[str, tuple[str, ...]]
) -> Record | Unreadable:
    try:
        value = _any_decoder.decode(line)
    except _DECODE_ERRORS:
        return Unreadable(name, str(pos), "line is not valid JSON")
    if not isinstance(value, dict):
        return Unreadable(name, str(pos), "line is not a JSON object")
    return _from_fields({k: _dig(value, keys) for k, keys in mapping.items()}, name, pos)


# --- JSONL files ---------------------------------------------------------------------------------


def _open(path: Path) -> tuple[io.BufferedIOBase, io.BufferedIOBase]:
    """The file for reading decompressed bytes, and the file on disk (close both)."""
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        try:
            gz.peek(1)  # the header and the first block: a text file that merely starts
        except (OSError, EOFError, zlib.error):  # with gzip's magic bytes is read as text
            raw.seek(0)
            return raw, raw
        return gz, raw
    return raw, raw


def _jsonl(
    path: Path,
    counter: FileCounter,
    max_line: int,
    decode: Callable[[bytes, str, int], Item],
    share: Share | None = None,
    *,
    blocks: bool = False,
) -> Iterator[Item]:
    """The items of a JSONL file (opened now, read as they are taken). With ``blocks`` (a
    request log, ``decode`` is :func:`_log_line`) a plain file is read a block at a time."""
    ranged = share is not None and not share.whole
    try:
        fh, raw = (path.open("rb"),) * 2 if ranged else _open(path)
    except OSError as exc:
        counter.records += 1
        counter.unreadable += 1
        return iter([Unreadable(counter.path, "file", f"cannot open: {exc.strerror or exc}")])
    counter.raw_position = raw.tell
    if blocks and fh is raw:  # a plain request log: read a block at a time
        return chain.from_iterable(_log_blocks(raw, counter, max_line, share if ranged else None))
    return _lines(fh, raw, counter, max_line, decode, share if ranged else None)


def _lines(
    fh: io.BufferedIOBase,
    raw: io.BufferedIOBase,
    counter: FileCounter,
    max_line: int,
    decode: Callable[[bytes, str, int], Item],
    share: Share | None,
) -> Iterator[Item]:
    """A JSONL file's items, a line at a time (``share``: that byte range only)."""
    name = counter.path
    with raw, fh:
        readline = fh.readline
        pos = 0
        span = sys.maxsize  # the bytes to read
        if share is not None:  # a byte range of a plain file, from a line start
            raw.seek(share.start)
            pos = share.first_line - 1
            if share.end is not None:
                span = share.end - share.start  # it ends at a line start: no line crosses it
        nbytes = blank = unreadable = broken = lost = 0  # added to the counter at the end
        first = pos  # records are the lines read, less the blank ones
        try:
            for line in iter(partial(readline, max_line + 1), b""):
                if nbytes >= span:
                    break
                pos += 1
                size = len(line)
                if size > max_line and line[-1:] != b"\n":
                    lost = 1  # a truncated file here: the line is not a record
                    while True:  # skip the rest of an overlong line without holding it
                        chunk = readline(1 << 20)
                        size += len(chunk)
                        if not chunk or chunk[-1:] == b"\n":
                            break
                    lost = 0
                    nbytes += size
                    unreadable += 1
                    yield Unreadable(name, str(pos), _too_long(max_line, size))
                    continue
                nbytes += size
                if line.isspace():
                    blank += 1
                    continue
                item = decode(line, name, pos)
                if type(item) is not Record:
                    unreadable += 1
                yield item
        except (OSError, EOFError, zlib.error) as exc:
            broken = 1
            yield Unreadable(name, str(pos + 1), f"file is truncated or corrupt: {exc}")
        finally:
            _settle(counter, nbytes, blank, pos - first - blank + broken - lost, unreadable, broken)


def _settle(
    counter: FileCounter, nbytes: int, blank: int, records: int, unreadable: int, broken: int
) -> None:
    """Add what one reading of a file (or share) counted to the file's counter: ``records``
    lines that were not blank, ``unreadable`` of them, and ``broken`` (1: the read failed)."""
    counter.bytes += nbytes
    counter.blank += blank
    counter.records += records
    counter.readable += records - unreadable - broken
    counter.unreadable += unreadable + broken


#: Bytes a request log is read by at a time; the whole lines in them are decoded together.
BLOCK_BYTES: Final = 1 << 16
#: Decodes a block of request-log lines, each wrapped as a one-element array (see
#: :func:`_decode_lines`).
_block_decoder: Final = msgspec.json.Decoder(tuple[_LogLine])


def _decode_lines(block: bytes, head: int, cut: int) -> list[tuple[_LogLine]] | None:
    """The whole lines of ``block`` after its first, up to ``cut`` (after the last newline),
    decoded; None when any of them is not exactly one typed request-log line (the caller
    then reads them one by one). ``head`` is where the first line ends.

    Each line is read as ``[line]``: a value can then neither span lines (a JSON string holds
    no raw newline, and ``]`` then ``[`` is never valid inside a value) nor be missing from
    one (a blank line is ``[]``, not one element), so as many values as lines means one line
    each. Newlines become ``]\\n[`` in one copy of the block, which also counts them.
    """
    wrapped = block.replace(b"\n", b"]\n[")
    lines = (len(wrapped) - len(block)) // 2 - 1  # newlines, less the first line's
    # From the "[" that opens the second line to the "]\n" that closes the last.
    view = memoryview(wrapped)[head + 1 : len(wrapped) - (len(block) - cut) - 1]
    try:
        values = _block_decoder.decode_lines(view)
    except (*_DECODE_ERRORS, msgspec.ValidationError):
        return None
    return values if len(values) == lines else None


def _log_blocks(
    fh: io.BufferedIOBase, counter: FileCounter, max_line: int, share: Share | None
) -> Iterator[list[Item]]:
    """A plain request log's items, exactly as :func:`_jsonl` reads them line by line, a
    block at a time: the block's first line alone, the other whole lines with one decoder
    call, the line that crosses the block's end alone (finished by ``readline``). Each
    block's items come as one list (``chain.from_iterable`` hands them out one by one)."""
    name = counter.path
    pos = 0
    span = sys.maxsize  # the bytes to read
    if share is not None:  # a byte range, from a line start to a line start
        fh.seek(share.start)
        pos = share.first_line - 1
        if share.end is not None:
            span = share.end - share.start
    start = pos
    read, readline = fh.read, fh.readline
    header_cache, methods = _header_cache, _METHODS
    last_spelled = msgspec.Raw(b"")  # the headers of a line before, and their pairs
    last_headers: tuple[tuple[str, str], ...] | None = None
    nbytes = blank = unreadable = broken = lost = 0  # added to the counter at the end
    items: list[Item] = []  # the block's
    out = items.append
    try:
        while nbytes < span:
            block = read(min(BLOCK_BYTES, span - nbytes))
            if not block:
                break
            nbytes += len(block)
            head = block.find(b"\n") + 1  # the block's first line ends here
            cut = block.rfind(b"\n") + 1  # ... and its last whole line here
            values = None
            if head < cut and cut - head <= max_line:  # no line too long among them
                values = _decode_lines(block, head, cut)
            if values is not None:
                pos += 1
                item = _whole_line(block[:head], name, pos, max_line)
                if item is None:
                    blank += 1
                else:
                    if type(item) is not Record:
                        unreadable += 1
                    out(item)
                base = pos  # the line before the first decoded one
                split: list[bytes] | None = None  # the block's lines, if a line needs reading
                for (rec,) in values:
                    pos += 1
                    # _log_record's common case, inlined: known headers, a path, a text body
                    spelled = rec.headers
                    if spelled != last_spelled:  # compared in place: no copy, no hash
                        headers = header_cache.get(bytes(spelled))
                        if headers is not None:
                            last_spelled, last_headers = spelled, headers
                    else:
                        headers = last_headers
                    path, body = rec.path, rec.body
                    if (
                        headers is not None
                        and path[:1] == "/"
                        and type(body) is str
                        and rec.body_base64 is None
                        and rec.method
                    ):
                        request = Request(
                            method=methods.get(rec.method) or rec.method.upper(),
                            path=path,
                            body=body.encode("utf-8", "surrogatepass"),
                            headers=headers,
                            source=rec.source,
                        )
                        out(Record(name, pos, False, request, rec.time, rec.status, rec.response))
                        continue
                    item = _log_record(rec, name, pos)
                    if item is None:  # headers that are not strings: the line, leniently
                        if split is None:
                            split = block[head:cut].split(b"\n")
                        item = _lenient(split[pos - base - 1], name, pos)
                    if type(item) is not Record:
                        unreadable += 1
                    out(item)
            else:
                for line in block[:cut].split(b"\n")[:-1]:
                    pos += 1
                    item = _whole_line(line + b"\n", name, pos, max_line)
                    if item is None:
                        blank += 1
                        continue
                    if type(item) is not Record:
                        unreadable += 1
                    out(item)
            if cut < len(block):  # a line crosses the block's end: finish it as _jsonl would
                line = block[cut:]
                if len(line) <= max_line:
                    more = readline(max_line + 1 - len(line))
                    nbytes += len(more)
                    line += more
                pos += 1  # counted once read, as _jsonl counts it
                if len(line) > max_line and line[-1:] != b"\n":
                    size = len(line)
                    lost = 1  # a truncated file here: the line is not a record
                    while True:  # skip the rest of an overlong line without holding it
                        chunk = readline(1 << 20)
                        size += len(chunk)
                        nbytes += len(chunk)
                        if not chunk or chunk[-1:] == b"\n":
                            break
                    lost = 0
                    unreadable += 1
                    out(Unreadable(name, str(pos), _too_long(max_line, size)))
                elif line.isspace():
                    blank += 1
                else:
                    item = _log_line(line, name, pos)
                    if type(item) is not Record:
                        unreadable += 1
                    out(item)
            yield items
            items = []
            out = items.append
    except OSError as exc:
        broken = 1
        out(Unreadable(name, str(pos + 1), f"file is truncated or corrupt: {exc}"))
        yield items
    finally:
        fh.close()
        _settle(counter, nbytes, blank, pos - start - blank + broken - lost, unreadable, broken)


def _whole_line(line: bytes, name: str, pos: int, max_line: int) -> Record | Unreadable | None:
    """A line that ends in a newline as :func:`_jsonl` reads it; None when it is blank."""
    if len(line) > max_line + 1:  # _jsonl's readline stops short of its newline
        return Unreadable(name, str(pos), _too_long(max_line, len(line)))
    if line.isspace():
        return None
    return _log_line(line, name, pos)


def _too_long(max_line: int, size: int) -> str:
    return f"line is longer than {max_line} bytes ({size} bytes)"


# --- HAR -----------------------------------------------------------------------------------------


class _HarPost(msgspec.Struct):
    text: str | None = None
    encoding: str | None = None


class _HarHeader(msgspec.Struct):
    name: str
    value: str = ""


class _HarRequest(msgspec.Struct):
    method: str
    url: str
    headers: list[_HarHeader] = []
    postData: _HarPost | None = None  # HAR spells it so


class _HarContent(msgspec.Struct):
    text: str | None = None
    encoding: str | None = None


class _HarResponse(msgspec.Struct):
    status: int = 0
    content: _HarContent | None = None


class _HarEntry(msgspec.Struct):
    request: _HarRequest
    response: _HarResponse | None = None
    startedDateTime: str | None = None  # HAR spells it so


class _HarLog(msgspec.Struct):
    entries: list[msgspec.Raw]


class _Har(msgspec.Struct):
    log: _HarLog


_har_decoder: Final = msgspec.json.Decoder(_Har)
_entry_decoder: Final = msgspec.json.Decoder(_HarEntry)
_BODYLESS_SUFFIXES: Final = ("/suppress", "/unsuppress")


def _har_text(text: str | None, encoding: str | None) -> str | None:
    if text is None or encoding != "base64":
        return text
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def _is_call(host: str, path: str) -> bool:
    """Customer.io's host, a Track API path, or a Pipelines call's path (``/v1/track``, the
    browser's ``/v1/t``...) on any host: an app talking to a gateway or a proxy of its own. The
    browser SDK's telemetry (``/v1/m``) is not a call."""
    route = route_for(path)
    if route is not None:
        return route.kind != "metrics"
    return "customer.io" in host or path.startswith(_TRACK_PREFIXES)


def _har_entry(raw: msgspec.Raw, name: str, index: int) -> Item:
    position = f"entry[{index}]"
    try:
        entry = _entry_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Unreadable(name, position, f"HAR entry is not a request: {exc}")
    req = entry.request
    parts = urlsplit(req.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not _is_call(parts.netloc, path):
        return Skipped(name, position)
    method = req.method.upper()
    body: bytes = b""
    post = req.postData
    if post is not None and post.text is not None:
        if post.encoding == "base64":  # the bytes as sent (a gzip body, say)
            exact = _base64_body(post.text)
            if exact is None:
                return Unreadable(name, position, "HAR request body is not valid base64")
            body = exact
        else:
            body = post.text.encode("utf-8", "surrogatepass")
    elif method in ("POST", "PUT", "PATCH") and not parts.path.endswith(_BODYLESS_SUFFIXES):
        return Unreadable(name, position, "HAR entry has no request body (postData)")
    status: int | None = None
    response: str | None = None
    if entry.response is not None:
        status = entry.response.status or None  # 0: the request never got an answer
        content = entry.response.content
        if content is not None:
            response = _har_text(content.text, content.encoding)
    request = Request(
        method=method,
        path=path,
        body=body,
        headers=tuple((h.name.lower(), h.value) for h in req.headers),
    )
    return Record(name, index, True, request, entry.startedDateTime, status, response)


def read_har(path: Path, counter: FileCounter) -> Iterator[Item]:
    """Every entry of a HAR capture, in order (also ``check``'s HAR reader)."""
    name = counter.path
    try:
        fh, raw = _open(path)
        with raw, fh:
            data = fh.read(MAX_HAR_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        counter.records += 1
        counter.unreadable += 1
        yield Unreadable(name, "file", f"cannot read HAR file: {exc}")
        return
    counter.bytes += len(data)
    if len(data) > MAX_HAR_BYTES:
        counter.records += 1
        counter.unreadable += 1
        yield Unreadable(name, "file", f"HAR file is larger than {MAX_HAR_BYTES} bytes")
        return
    try:
        har = _har_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        counter.records += 1
        counter.unreadable += 1
        yield Unreadable(name, "file", f"not a readable HAR file: {exc}")
        return
    del data
    for index, entry in enumerate(har.log.entries):
        counter.records += 1
        item = _har_entry(entry, name, index)
        if type(item) is Record:
            counter.readable += 1
        elif type(item) is Skipped:
            counter.skipped += 1
        else:
            counter.unreadable += 1
        yield item


# --- inputs -------------------------------------------------------------------------------------


def is_har(path: Path) -> bool:
    """By extension (``.har``, ``.har.gz``), else by a JSON document opening with ``"log"``.

    Files named ``.jsonl``/``.ndjson`` (gzipped or not) are always line-oriented.
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".har"] or suffixes[-2:] == [".har", ".gz"]:
        return True
    if any(s in (".jsonl", ".ndjson") for s in suffixes[-2:]):
        return False
    try:
        fh, raw = _open(path)
        with raw, fh:
            head = fh.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    first = head.lstrip()[:1]
    if first != b"{":
        return False
    first_line = head.lstrip().split(b"\n", 1)[0].strip()
    return first_line == b"{" or first_line.startswith(b'{"log"')


def splittable(path: Path) -> bool:
    """A plain line-oriented file (not gzip, not HAR): it can be read in byte ranges."""
    return not is_gzip(path) and not is_har(path)


def expand(patterns: list[str]) -> list[Path]:
    """Files named by paths and globs, in order, without repeats; raises InputError."""
    out: list[Path] = []
    seen: set[str] = set()
    for pattern in patterns:
        if any(ch in pattern for ch in "*?[") and not os.path.exists(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise InputError(f"no file matches {pattern!r}")
        else:
            problem = input_problem(pattern)
            if problem is not None:
                raise InputError(problem)
            files = [pattern]
        for f in files:
            if f not in seen:
                seen.add(f)
                out.append(Path(f))
    return out


def read(
    path: Path,
    counter: FileCounter,
    *,
    mapping: dict[str, tuple[str, ...]] | None = None,
    max_line: int = MAX_LINE_BYTES,
    share: Share | None = None,
) -> Iterator[Item]:
    """Every record, unreadable line and skipped entry of one file, in order.

    ``share`` reads only that byte range of a plain line-oriented file (``audit --jobs``).
    """
    if is_har(path):
        counter.format = "har"
        return read_har(path, counter)
    if mapping is not None:
        counter.format = "mapped-jsonl"

        def decode(line: bytes, name: str, pos: int) -> Item:
            return _mapped_line(line, name, pos, mapping)

        return _jsonl(path, counter, max_line, decode, share)
    counter.format = "request-log"
    return _jsonl(path, counter, max_line, _log_line, share, blocks=True)
