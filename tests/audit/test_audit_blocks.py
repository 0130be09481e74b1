"""A plain request log is read a block at a time: the same items and counts as line by line."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from trackguard.audit import readers
from trackguard.audit.readers import FileCounter, Record, read
from trackguard.shares import _split

GOOD = {
    "time": "2025-11-24T16:00:00Z",
    "method": "post",
    "path": "/api/v1/customers/c1/events",
    "headers": {"content-type": "application/json"},
    "body": '{"name":"order_completed","data":{},"timestamp":1764000000}',
    "status": 200,
    "response": "{}\n",
    "source": "ios",
}


def _good(i: int) -> bytes:
    return json.dumps({**GOOD, "path": f"/api/v1/customers/c{i}/events"}).encode() + b"\n"


#: Lines that a block decoder must not take for one request-log line each.
ODD: list[bytes] = [
    b"\n",  # blank
    b"  \t \n",  # whitespace only
    b"\r\n",
    b"not json\n",
    b'{"method":"POST"} {"method":"GET"}\n',  # two values on one line
    b'{"method":"POST","path":"/a"}] [{"method":"GET","path":"/b"}\n',  # two once wrapped
    b'{"method":"POST",\n',  # a value over two lines
    b'"path":"/api/v1/customers/c1"}\n',
    b'{"method":"POST","path":"/a","headers":{"x":1}}\n',  # headers that are not strings
    b'{"method":"POST","path":"/a","response":{"meta":{"error":"no"}}}\n',  # object response
    b'{"method":"","path":"/a"}\n',
    b'{"method":"POST","path":"nowhere"}\n',
    b'{"method":"POST","path":"/a","status":"201"}\n',
    b"[1]\n",
    b'{"method":"POST","path":"/a"}\r\n',
    b'\xef\xbb\xbf{"method":"POST","path":"/a"}\n',  # a byte-order mark
    b'{"method":"POST","path":"/a","body":"\xff"}\n',  # not UTF-8
    b"x" * 300 + b"\n",  # too long for the smaller limits below
]


def _items(path: Path, max_line: int, **kw: Any) -> tuple[list[Any], tuple[int, ...]]:
    counter = FileCounter(str(path), "")
    return _shown(list(read(path, counter, max_line=max_line, **kw)), counter)


def _shown(items: list[Any], counter: FileCounter) -> tuple[list[Any], tuple[int, ...]]:
    """What a test compares of items read and of the file's counts."""
    shown = [
        (type(i).__name__, i.where, i.request, i.time, i.status, i.response)
        if isinstance(i, Record)
        else (type(i).__name__, i.where, i.reason)
        for i in items
    ]
    return shown, (
        counter.bytes,
        counter.records,
        counter.readable,
        counter.unreadable,
        counter.blank,
    )


def _by_lines(path: Path, max_line: int, **kw: Any) -> tuple[list[Any], tuple[int, ...]]:
    """The same file read line by line."""
    counter = FileCounter(str(path), "")
    share = kw.get("share")
    return _shown(list(readers._jsonl(path, counter, max_line, readers._log_line, share)), counter)


def _log(seed: int, lines: int, last_newline: bool) -> bytes:
    rnd = random.Random(seed)
    out = [rnd.choice(ODD) if rnd.random() < 0.3 else _good(i) for i in range(lines)]
    text = b"".join(out)
    return text if last_newline else text.rstrip(b"\n")


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
@pytest.mark.parametrize("max_line", [200, 400, 4 * 1024 * 1024])
@pytest.mark.parametrize("seed", range(6))
def test_blocks_read_what_lines_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, max_line: int, seed: int
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", block)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(seed, 120, last_newline=seed % 2 == 0))
    got, expected = _items(path, max_line), _by_lines(path, max_line)
    assert got == expected
    assert got[1][0] == path.stat().st_size  # every byte counted


def test_a_log_of_typed_lines_is_decoded_a_block_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    decode = readers._decode_lines

    def counted(block: bytes, head: int, cut: int) -> Any:
        values = decode(block, head, cut)
        calls.append(len(values or ()))
        return values

    monkeypatch.setattr(readers, "_decode_lines", counted)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 4096)
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(_good(i) for i in range(100)))
    (shown, counts), size = _items(path, 1 << 20), path.stat().st_size
    assert counts == (size, 100, 100, 0, 0)
    assert [s[1] for s in shown] == [f"{path}:{n}" for n in range(1, 101)]
    assert shown[0][2].method == "POST"  # upper-cased, as line by line
    # One call per block; each block's first line and the line across its end read alone.
    blocks = -(-size // 4096)
    assert len(calls) == blocks
    assert 100 - 2 * blocks <= sum(calls) < 100 - blocks


def test_overlong_line_at_a_block_edge_is_skipped_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 256)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_good(1) + b"y" * 5000 + b"\n" + _good(2) + b"z" * 700)
    shown, counts = _items(path, 1000)
    assert [s[:3] if s[0] == "Unreadable" else s[:2] for s in shown] == [
        ("Record", f"{path}:1"),
        ("Unreadable", f"{path}:2", "line is longer than 1000 bytes (5001 bytes)"),
        ("Record", f"{path}:3"),
        ("Unreadable", f"{path}:4", "line is not valid JSON"),
    ]
    assert counts == (path.stat().st_size, 4, 2, 2, 0)
    assert (shown, counts) == _by_lines(path, 1000)


@pytest.mark.parametrize("jobs", [2, 3])
def test_shares_read_in_blocks_as_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 300)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(7, 200, last_newline=True))
    shares = list(_split(0, path, path.stat().st_size, jobs))
    assert len(shares) == jobs
    for share in shares:
        assert _items(path, 400, share=share) == _by_lines(path, 400, share=share)


class _FailingReadline:
    """A plain file whose ``readline`` fails: a disk error while a line is being finished."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._data[self._at : self._at + n] if n >= 0 else self._data[self._at :]
        self._at += len(chunk)
        return chunk

    def readline(self, n: int = -1) -> bytes:
        raise OSError("disk gone")

    def seek(self, at: int) -> None:
        self._at = at

    def close(self) -> None:
        pass


def test_a_read_error_while_finishing_a_line_counts_as_line_by_line() -> None:
    """The line across a block's end is not counted until it is read: the error is reported
    at that line, and it is not a record (as ``_lines`` reports and counts it)."""
    data = _good(1) + _good(2) + _good(3)[:20]
    blocks = FileCounter("f", "")
    got = [
        i
        for items in readers._log_blocks(_FailingReadline(data), blocks, 1 << 20, None)  # type: ignore[arg-type]
        for i in items
    ]
    assert [(type(i).__name__, i.where) for i in got] == [
        ("Record", "f:1"),
        ("Record", "f:2"),
        ("Unreadable", "f:3"),
    ]
    assert (blocks.records, blocks.readable, blocks.unreadable) == (3, 2, 1)
