"""``check --jobs N``: the same verdict lines, in the same order, and the same summary."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trackguard.shares as shares
from trackguard.check.samples import BASE_TIME, d2c_traffic
from trackguard.cli.check import check_command

PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"


@pytest.fixture(autouse=True)
def _split_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "MIN_SHARE_BYTES", 1)  # forked workers inherit it


def _check(*args: str) -> tuple[int, bytes]:
    result = CliRunner().invoke(check_command, list(args))
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.stdout_bytes


def _same_for_all_jobs(*args: str) -> list[bytes]:
    """The jsonl lines and the summary of ``--jobs 1``; asserts 2 and 3 give the same."""
    one = _check(*args, "--format", "jsonl", "--jobs", "1")
    summary = _check(*args, "--jobs", "1")
    for jobs in ("2", "3"):
        assert _check(*args, "--format", "jsonl", "--jobs", jobs) == one
        assert _check(*args, "--jobs", jobs) == summary
    return one[1].splitlines()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [msgspec.json.encode(r) for r in d2c_traffic(1200, 7, 0.2, base_time=BASE_TIME)]
    records[300:300] = [b"not json", b"", b'{"method": "POST"}']
    path = tmp_path_factory.mktemp("check") / "traffic.jsonl"
    path.write_bytes(b"\n".join(records) + b"\n")
    return path


def test_sample_traffic(traffic: Path) -> None:
    lines = _same_for_all_jobs(str(traffic))
    assert len(lines) == 1202  # the blank line is not a request
    assert msgspec.json.decode(lines[-1])["line"] == 1203
    assert b'"unreadable":"line is not valid JSON"' in lines[300]


def test_with_plan_strict(traffic: Path) -> None:
    _same_for_all_jobs(str(traffic), "--plan", str(PLAN), "--strict")


def test_gzip_and_several_files(traffic: Path, tmp_path: Path) -> None:
    data = traffic.read_bytes().splitlines(keepends=True)
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(data[:500])))
    plain = tmp_path / "b.jsonl"
    plain.write_bytes(b"".join(data[500:]))
    lines = _same_for_all_jobs(str(gz), str(plain), "--plan", str(PLAN))
    assert msgspec.json.decode(lines[0])["file"] == str(gz)
    assert msgspec.json.decode(lines[-1])["line"] == len(data) - 500


def test_long_lines_across_split_points(tmp_path: Path) -> None:
    body = {"name": "order_completed", "data": {"note": "x" * 30_000}}
    line = msgspec.json.encode(
        {"method": "POST", "path": "/api/v1/customers/1/events", "body": body}
    )
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"\n".join([line] * 9) + b"\n")
    lines = _same_for_all_jobs(str(path))
    assert [msgspec.json.decode(x)["line"] for x in lines] == list(range(1, 10))


def test_standard_input_is_read_in_one_process(traffic: Path) -> None:
    data = traffic.read_bytes()
    runner = CliRunner()
    one = runner.invoke(check_command, ["-", "--format", "jsonl", "--jobs", "1"], input=data)
    two = runner.invoke(check_command, ["-", "--format", "jsonl", "--jobs", "2"], input=data)
    assert two.exit_code == one.exit_code == 1
    assert two.stdout_bytes == one.stdout_bytes


_record = st.one_of(
    st.builds(
        lambda name, n: msgspec.json.encode(
            {
                "method": "POST",
                "path": "/api/v1/customers/a/events",
                "body": {"name": name, "data": {"n": n}},
            }
        ),
        st.sampled_from(["order_completed", "Order Completed", "", "x" * 200]),
        st.one_of(st.integers(), st.text(max_size=4)),
    ),
    st.binary(max_size=12).filter(lambda b: b"\n" not in b),
)


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(_record, max_size=25), jobs=st.integers(2, 4))
def test_random_files(tmp_path: Path, records: list[bytes], jobs: int) -> None:
    path = tmp_path / "random.jsonl"
    path.write_bytes(b"\n".join(records) + b"\n")
    for fmt in ("jsonl", "summary"):
        one = CliRunner().invoke(check_command, [str(path), "--format", fmt, "--jobs", "1"])
        many = CliRunner().invoke(check_command, [str(path), "--format", fmt, "--jobs", str(jobs)])
        assert (many.exit_code, many.stdout_bytes) == (one.exit_code, one.stdout_bytes)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_jobs_must_be_positive(traffic: Path, value: str) -> None:
    result = CliRunner().invoke(check_command, [str(traffic), "--jobs", value])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: --jobs must be a number of processes, 1 or more (not {value})"
    ]
