"""Reading logs: bad input is counted with its position, never fatal, never silently lost."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trackguard.audit import InputError, MapError, audit, parse_map
from trackguard.audit.readers import FileCounter, Record, Skipped, Unreadable, expand, read

GOOD = {
    "time": "2025-11-24T16:00:00Z",
    "method": "POST",
    "path": "/api/v1/customers/c1/events",
    "body": '{"name":"order_completed","data":{},"timestamp":1764000000}',
    "status": 200,
    "response": "{}\n",
}


def _line(**over: Any) -> bytes:
    return json.dumps({**GOOD, **over}).encode() + b"\n"


def _read(path: Path, **kw: Any) -> tuple[list[Record | Unreadable | Skipped], FileCounter]:
    counter = FileCounter(str(path), "")
    return list(read(path, counter, **kw)), counter


def _unreadable(items: list[Any]) -> list[tuple[str, str]]:
    return [(u.position, u.reason) for u in items if isinstance(u, Unreadable)]


def test_request_log_line_becomes_a_record(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_line(headers={"content-type": "application/json"}, source="ios"))
    (rec,), counter = _read(path)
    assert isinstance(rec, Record)
    assert (rec.where, rec.status, rec.time, rec.response) == (
        f"{path}:1",
        200,
        "2025-11-24T16:00:00Z",
        "{}\n",
    )
    assert rec.request.body == GOOD["body"].encode()
    assert rec.request.headers == (("content-type", "application/json"),)
    assert (rec.request.source, counter.format, counter.bytes) == (
        "ios",
        "request-log",
        path.stat().st_size,
    )


def test_headers_are_read_per_line_whatever_repeats(tmp_path: Path) -> None:
    """Header objects are decoded once per spelling; each line still gets its own."""
    path = tmp_path / "a.jsonl"
    ct = {"content-type": "application/json"}
    path.write_bytes(
        _line(headers=ct)
        + _line(headers={"content-type": "text/plain", "x-a": "1"})
        + _line(headers=ct)
        + _line(headers={})
        + _line(headers=None)
        + _line()
        + _line(headers={"x": 1})  # not strings: the lenient reader, as before
        + _line(headers=ct)
    )
    items, _ = _read(path)
    assert [r.request.headers for r in items if isinstance(r, Record)] == [
        (("content-type", "application/json"),),
        (("content-type", "text/plain"), ("x-a", "1")),
        (("content-type", "application/json"),),
        (),
        (),
        (),
        (("x", "1"),),
        (("content-type", "application/json"),),
    ]


def test_check_format_and_loose_types_are_read(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({"method": "post", "path": "/api/v1/events", "body": {"name": "x"}})
        + "\n"
        + json.dumps(
            {
                "method": "PUT",
                "path": "https://track.customer.io/api/v1/customers/1",
                "body": {},
                "status": "400",
                "headers": {"x": 1},
            }
        )
        + "\n"
    )
    (a, b), _ = _read(path)
    assert isinstance(a, Record) and isinstance(b, Record)
    assert (a.request.method, a.request.body, a.status) == ("POST", b'{"name":"x"}', None)
    assert (b.request.path, b.status, b.request.headers) == (
        "/api/v1/customers/1",
        400,
        (("x", "1"),),
    )


def test_bad_lines_are_unreadable_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        _line()
        + b"\x00\x01\xfe\xffbinary garbage\n"
        + b'{"method": "POST", "path": "/api/v1/events", "body": "\xff\xfe"}\n'
        + b"[1, 2]\n"
        + b'{"path": "/api/v1/events"}\n'
        + b'{"method": "POST", "path": "nowhere"}\n'
        + b"\n   \n"
        + _line()
    )
    items, counter = _read(path)
    assert _unreadable(items) == [
        ("2", "line is not valid JSON"),
        ("3", "line is not valid JSON"),
        ("4", "line is not a JSON object"),
        ("5", 'missing or non-string "method"'),
        ("6", 'missing "path", or it is not a path or URL'),
    ]
    assert (counter.records, counter.readable, counter.unreadable, counter.blank) == (7, 2, 5, 2)
    assert counter.readable + counter.unreadable + counter.blank == 9  # every line


def test_huge_line_is_unreadable_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    huge = _line(body="x" * (5 * 1024 * 1024))
    path.write_bytes(_line() + huge + _line())
    items, counter = _read(path)
    assert _unreadable(items) == [
        ("2", f"line is longer than {4 * 1024 * 1024} bytes ({len(huge)} bytes)")
    ]
    assert [i.pos for i in items if isinstance(i, Record)] == [1, 3]
    assert counter.bytes == path.stat().st_size


def test_truncated_gzip_counts_what_it_read_and_the_break(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(_line(source=f"s{i}") for i in range(5000)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    complete = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[: len(data) // 2])
    whole_lines = complete.count(b"\n")
    items, counter = _read(path)
    records = [i for i in items if isinstance(i, Record)]
    (broken,) = [i for i in items if isinstance(i, Unreadable)]
    assert 0 < len(records) <= whole_lines
    assert broken.position == str(len(records) + 1)
    assert broken.reason.startswith("file is truncated or corrupt")
    assert counter.readable + counter.unreadable == counter.records == len(records) + 1


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "ok.log"  # no .gz suffix: detected by magic number
    path.write_bytes(gzip.compress(_line() * 3))
    items, counter = _read(path)
    assert [i.pos for i in items if isinstance(i, Record)] == [1, 2, 3]
    assert counter.bytes == len(_line() * 3)


def _har(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"log": {"version": "1.2", "entries": entries}}, indent=2)


def _entry(method: str, url: str, body: str | None = None, status: int = 200) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": method,
        "url": url,
        "headers": [{"name": "Content-Type", "value": "application/json"}],
    }
    if body is not None:
        request["postData"] = {"mimeType": "application/json", "text": body}
    return {
        "startedDateTime": "2025-11-24T17:00:00.000+01:00",
        "request": request,
        "response": {"status": status, "content": {"text": '{"meta":{"errors":["x"]}}'}},
    }


def test_har_entries(tmp_path: Path) -> None:
    path = tmp_path / "capture.har"
    path.write_text(
        _har(
            [
                _entry(
                    "POST",
                    "https://track.customer.io/api/v1/customers/1/events",
                    '{"name":"a"}',
                    400,
                ),
                _entry("GET", "https://shop.example.com/logo.png"),
                _entry(
                    "POST", "https://track.customer.io/api/v1/customers/1/events"
                ),  # no postData
                _entry("DELETE", "https://track.customer.io/api/v1/customers/1"),
                {"request": "not an object"},
                _entry("POST", "https://track.customer.io/api/v1/customers/1/suppress"),
            ]
        )
    )
    items, counter = _read(path)
    assert counter.format == "har"
    assert [type(i).__name__ for i in items] == [
        "Record",
        "Skipped",
        "Unreadable",
        "Record",
        "Unreadable",
        "Record",
    ]
    first = items[0]
    assert isinstance(first, Record)
    assert (first.where, first.status, first.request.body) == (
        f"{path}:entry[0]",
        400,
        b'{"name":"a"}',
    )
    assert first.request.headers == (("content-type", "application/json"),)
    assert _unreadable(items)[0] == ("entry[2]", "HAR entry has no request body (postData)")
    assert (counter.records, counter.readable, counter.unreadable, counter.skipped) == (6, 3, 2, 1)


def test_har_without_extension_and_broken_har(tmp_path: Path) -> None:
    path = tmp_path / "capture.json"
    path.write_text(_har([_entry("POST", "https://x.example/api/v1/events", "{}")]))
    items, counter = _read(path)
    assert counter.format == "har" and isinstance(items[0], Record)
    broken = tmp_path / "cut.har"
    broken.write_text(_har([_entry("POST", "https://x.example/api/v1/events", "{}")])[:100])
    items, counter = _read(broken)
    (bad,) = items
    assert isinstance(bad, Unreadable) and bad.position == "file"
    assert bad.reason.startswith("not a readable HAR file")
    assert (counter.records, counter.unreadable) == (1, 1)


def test_mapped_jsonl(tmp_path: Path) -> None:
    mapping = parse_map(
        "method=req.method, path=req.url,body=req.body,status=res.status,response=res.body,time=ts"
    )
    path = tmp_path / "app.jsonl"
    path.write_text(
        json.dumps(
            {
                "ts": "2025-11-24T16:00:00Z",
                "req": {
                    "method": "POST",
                    "url": "https://track.customer.io/api/v1/events?x=1",
                    "body": {"name": "a"},
                },
                "res": {"status": 200, "body": "{}"},
            }
        )
        + "\n"
        + json.dumps({"req": {"url": "/api/v1/events"}})
        + "\n"
    )
    items, counter = _read(path, mapping=mapping)
    first = items[0]
    assert isinstance(first, Record)
    assert (first.request.path, first.request.body, first.status, first.time) == (
        "/api/v1/events?x=1",
        b'{"name":"a"}',
        200,
        "2025-11-24T16:00:00Z",
    )
    assert _unreadable(items) == [("2", 'missing or non-string "method"')]
    assert counter.format == "mapped-jsonl"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("method=a", "--map must name 'path'"),
        ("method=a,path=b,colour=c", "--map field 'colour' is not one of"),
        ("method=a,path", "is not FIELD=dotted.path"),
        ("method=a,path=b..c", "has an empty key"),
    ],
)
def test_bad_map_specs(spec: str, message: str) -> None:
    with pytest.raises(MapError, match=message.replace("(", r"\(")):
        parse_map(spec)


def test_globs_and_missing_inputs(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "c.txt"):
        (tmp_path / name).write_bytes(_line())
    assert expand([str(tmp_path / "*.jsonl"), str(tmp_path / "a.jsonl")]) == [
        tmp_path / "a.jsonl",
        tmp_path / "b.jsonl",
    ]
    with pytest.raises(InputError, match="no file matches"):
        expand([str(tmp_path / "*.gz")])
    with pytest.raises(InputError, match=f"^{tmp_path}/missing.jsonl: no such file$"):
        expand([str(tmp_path / "missing.jsonl")])
    with pytest.raises(InputError, match=f"^{tmp_path}: is a directory$"):
        expand([str(tmp_path)])


def test_audit_totals_over_several_bad_files(tmp_path: Path) -> None:
    (tmp_path / "one.jsonl").write_bytes(_line() + b"not json\n" + _line())
    data = gzip.compress(_line() * 400)
    (tmp_path / "two.jsonl.gz").write_bytes(data[:-30])
    report = audit([str(tmp_path / "*.jsonl*")], now=1_764_000_000)
    t = report.totals
    assert t.readable + t.unreadable == t.records
    assert t.requests == t.readable
    unreadable = {f.id: f.count for f in report.findings if f.kind == "unreadable"}
    assert unreadable == {
        "unreadable.line_is_not_valid_json": 1,
        "unreadable.file_is_truncated_or_corrupt": 1,
    }


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.just(_line()[:-1]),
            st.builds(lambda s: _line(body=s)[:-1], st.text(max_size=50)),
        ),
        max_size=25,
    )
)
def test_any_bytes_are_counted_never_raise(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "fuzz.jsonl"
    raw = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    path.write_bytes(raw)
    report = audit([path], now=1_764_000_000)
    t = report.totals
    assert t.records + t.blank == raw.count(b"\n")
    assert t.readable + t.unreadable == t.records
    assert t.bytes == len(raw)


_GZ = gzip.compress(b"".join(_line(source=f"s{i}") for i in range(300)))


@settings(
    max_examples=80,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(st.integers(10, len(_GZ) - 9), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_corrupt_gzip_is_reported_never_raises(
    tmp_path: Path, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(_GZ)
    for at, value in edits:
        data[at] = value
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(data))
    report = audit([path], now=1_764_000_000)
    t = report.totals
    assert t.readable + t.unreadable == t.records
    assert t.requests == t.readable


def test_a_text_log_that_starts_with_gzip_magic_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "looks-gzipped.jsonl"
    raw = b"\x1f\x8b not gzip\n" + _line(source="a") + _line(source="b")
    path.write_bytes(raw)
    t = audit([path], now=1_764_000_000).totals
    assert (t.records, t.readable, t.unreadable, t.bytes) == (3, 2, 1, len(raw))
