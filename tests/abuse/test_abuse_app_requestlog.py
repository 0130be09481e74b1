"""The request log never stops silently: a full disk is reported, counted and survived."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import yaml
from app_env import serve

from trackguard.http.requestlog import RequestLog
from trackguard.monitor import build_monitor
from trackguard.monitor.loader import parse_alerts
from trackguard.store.sqlite import open_store

FULL = "No space left on device"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for a state the writer thread reaches (a bound against hanging, not a timing test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.01)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    folder = tmp_path / "small"
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the disk refuses another byte."""
    with path.open("wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"f" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def test_a_full_disk_fails_readiness_counts_drops_and_logging_resumes_when_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    log = small_disk / "requests.jsonl"
    filler = small_disk / "filler"
    with serve(tmp_path, plan=None, request_log=log, request_log_policy="fail") as gw:
        writer = gw.app.parts.request_log
        assert writer is not None
        writer.buffer_lines, writer.retry_first, writer.retry_max = 5, 0.01, 0.05
        fill(filler)
        with gw.client() as client:
            answers = [
                client.put(f"/api/v1/customers/{i}", json={"n": i}).status_code
                for i in range(1, 21)
            ]
            wait_until(lambda: writer.error is not None, "the writer reports the full disk")
            ready = client.get("/readyz")
            full = gw.metrics()
            filler.unlink()
            wait_until(lambda: writer.error is None and not writer.status.buffered, "resumed")
            ready_again = client.get("/readyz")
            answers.append(client.put("/api/v1/customers/99", json={"n": 99}).status_code)
        wait_until(lambda: writer.status.written == 6, "the last line written")
        after = gw.metrics()
    assert answers == [200] * 21  # the data path is not held up by the log
    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "unavailable", "problems": [f"request log is failing: {FULL}"]},
    )
    assert full["trackguard_request_log_failing"] == 1.0
    assert full["trackguard_request_log_dropped_total"] == 15.0
    assert full["trackguard_request_log_buffered"] == 5.0
    assert (ready_again.status_code, ready_again.json()) == (200, {"status": "ready"})
    assert after["trackguard_request_log_failing"] == 0.0
    assert after["trackguard_request_log_lines_total"] == 6.0
    text = log.read_bytes()
    assert text.endswith(b"\n")
    lines = [msgspec.json.decode(line) for line in text.splitlines()]
    assert [line["path"] for line in lines] == [
        *(f"/api/v1/customers/{i}" for i in range(1, 6)),
        "/api/v1/customers/99",
    ]


def test_best_effort_reports_the_failure_and_stays_ready(tmp_path: Path, small_disk: Path) -> None:
    with serve(tmp_path, plan=None, request_log=small_disk / "requests.jsonl") as gw:
        writer = gw.app.parts.request_log
        assert writer is not None
        fill(small_disk / "filler")
        with gw.client() as client:
            assert client.put("/api/v1/customers/1", json={}).status_code == 200
            wait_until(lambda: writer.error is not None, "the writer reports the full disk")
            ready = client.get("/readyz")
        (small_disk / "filler").unlink()
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "warnings": [f"request log is failing: {FULL}"]},
    )


def test_a_line_that_does_not_fit_is_not_written_in_part(small_disk: Path) -> None:
    path = small_disk / "requests.jsonl"
    writer = RequestLog(path, retry_first=0.01, retry_max=0.05)
    try:
        writer.write(b'{"n": 1}\n')
        wait_until(lambda: writer.lines == 1, "the first line")
        fill(small_disk / "filler")  # the log's page still has room for a few bytes
        big = b'{"n": 2, "pad": "' + b"p" * 20000 + b'"}\n'
        writer.write(big)
        wait_until(lambda: writer.error == FULL, "the full disk")
        assert path.read_bytes() == b'{"n": 1}\n'
        (small_disk / "filler").unlink()
        wait_until(lambda: writer.lines == 2, "the second line")
    finally:
        writer.close()
    assert path.read_bytes() == b'{"n": 1}\n' + big
    assert writer.dropped == 0


def test_the_log_is_rotated_by_size_keeping_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    writer = RequestLog(path, max_bytes=1000, keep=2)
    sent = [b'{"n": %03d, "pad": "%s"}\n' % (i, b"x" * 80) for i in range(30)]
    for line in sent:
        writer.write(line)
    writer.close()
    files = [Path(f"{path}.2"), Path(f"{path}.1"), path]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)
    assert all(0 < p.stat().st_size <= 1000 for p in files)
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    kept = b"".join(p.read_bytes() for p in files).splitlines(keepends=True)
    assert kept == sent[-len(kept) :]  # whole lines, oldest first, the newest kept
    assert writer.lines == 30
    assert writer.rotations >= 3


def test_a_full_buffer_drops_and_counts_instead_of_growing(small_disk: Path) -> None:
    fill(small_disk / "filler")
    writer = RequestLog(small_disk / "requests.jsonl", buffer_lines=1000, buffer_bytes=100)
    try:
        for _ in range(5):
            writer.write(b"x" * 10 + b"\n")
        writer.write(b"y" * 200 + b"\n")  # larger than the whole buffer
        for _ in range(5):
            writer.write(b"z" * 10 + b"\n")
        status = writer.status
    finally:
        (small_disk / "filler").unlink()
        writer.close()
    assert (status.buffered, status.dropped) == (9, 2)  # 9 lines of 11 bytes fit in 100
    assert (small_disk / "requests.jsonl").read_bytes() == b"x" * 10 + b"\n" + (
        b"x" * 10 + b"\n"
    ) * 4 + (b"z" * 10 + b"\n") * 4


ALERTS = """
rules:
  - name: request-log
    kind: request_log
    severity: critical
"""


def test_a_request_log_rule_fires_while_lines_are_dropped_or_the_writer_fails(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tg.db"
    open_store(db).close()
    clock = [1_800_000_000.0]
    rules = parse_alerts(yaml.safe_load(ALERTS), {})
    monitor = build_monitor(db, None, clock=lambda: clock[0], config=rules)
    state: list[tuple[int, str | None]] = [(0, None)]
    monitor.watch_request_log(lambda: state[0])
    rounds = []
    try:
        # (lines dropped so far, the writer's error) at each minute; then ten quiet minutes.
        for dropped, error, minutes in [
            (0, None, 1),
            (0, FULL, 1),
            (0, None, 1),
            (4, None, 1),
            (4, None, 1),
            (4, None, 10),
        ]:
            state[0] = (dropped, error)
            clock[0] += 60 * minutes
            rounds.append([(n.event, n.summary) for n in monitor.tick()])
    finally:
        monitor.stop()
    assert rounds == [
        [],
        [("firing", f"request log cannot write ({FULL}); 0 request-log lines dropped over 5m")],
        [("resolved", "0 request-log lines dropped over 5m")],
        [("firing", "4 request-log lines dropped over 5m")],
        [],
        [("resolved", "0 request-log lines dropped over 5m")],
    ]
