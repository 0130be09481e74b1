"""``trackguard check`` and ``trackguard sample`` through click's test runner."""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from trackguard.check.samples import d2c_traffic
from trackguard.cli.check import check_command, sample_command

WriteLines = Callable[..., Path]
Invoke = Callable[..., Result]

EVENTS = "/api/v1/customers/cus_1/events"
ROUTE = "POST /api/v1/customers/{identifier}/events"


def event(body: Any, path: str = EVENTS) -> dict[str, Any]:
    return {"method": "POST", "path": path, "body": body}


def order(order_id: str, **data: Any) -> dict[str, Any]:
    return {
        "name": "order_completed",
        "data": {"order_id": order_id, "total": 10, "currency": "USD", **data},
    }


CLEAN = [
    event(order("ORD-1")),
    {"method": "put", "path": "/api/v1/customers/cus_1", "body": {"email": "ana@example.com"}},
    event({"name": "order_completed", "data": {"order_id": "ORD-2", "total": 1}}),
]

#: One request of each outcome, then a blank line (skipped) and a line that is not JSON.
MIXED: list[dict[str, Any] | str] = [
    event(order("ORD-1")),
    event(
        {
            "name": "Order Completed",
            "data": {"order_id": "ORD-2", "total": "49.90", "currency": "USD"},
        }
    ),
    event(order("ORD-3", coupon="X")),
    event(order("ORD-4", total="abc")),
    event({"data": {}}),
    "",
    "{not json",
]


def rows(output: str) -> list[str]:
    """Output lines with runs of spaces collapsed, for table rows."""
    return [" ".join(line.split()) for line in output.splitlines()]


def jsonl(output: str) -> list[dict[str, Any]]:
    # JSON Lines break at "\n" only: str.splitlines() would also break inside a string that
    # holds U+0085 or U+2028, which JSON writes raw.
    return [json.loads(line) for line in output.split("\n") if line]


# --- exit status --------------------------------------------------------------------------------


def test_clean_input_exits_0(invoke: Invoke, write_lines: WriteLines, plan_file: Path) -> None:
    path = write_lines("clean.jsonl", CLEAN)
    result = invoke(check_command, "--plan", plan_file, path)
    assert result.exit_code == 0
    assert (
        "3 requests: 3 operations would be sent, 0 quarantined by the plan, 0 values fixed."
        in result.stdout.splitlines()
    )


def test_clean_input_without_plan_exits_0(invoke: Invoke, write_lines: WriteLines) -> None:
    path = write_lines("clean.jsonl", CLEAN)
    result = invoke(check_command, path)
    assert result.exit_code == 0
    assert rows(result.stdout)[0] == "trackguard check (contract only)"


def test_fixed_and_warned_still_exit_0(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path
) -> None:
    path = write_lines("ok.jsonl", [MIXED[1], MIXED[2]])
    assert invoke(check_command, "--plan", plan_file, path).exit_code == 0


@pytest.mark.parametrize(
    "line",
    [MIXED[3], MIXED[4], "{not json", {"path": EVENTS, "body": order("ORD-1")}],
    ids=["rejected", "invalid", "not-json", "no-method"],
)
def test_failures_exit_1(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path, line: dict[str, Any] | str
) -> None:
    path = write_lines("bad.jsonl", [CLEAN[0], line])
    assert invoke(check_command, "--plan", plan_file, path).exit_code == 1


def test_a_missing_input_file_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    for fmt in ("summary", "jsonl"):
        result = invoke(check_command, "--format", fmt, missing)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr == f"Error: {missing}: no such file\n"
    result = invoke(check_command, tmp_path)
    assert (result.exit_code, result.stderr) == (2, f"Error: {tmp_path}: is a directory\n")


def test_bad_plan_exits_2(invoke: Invoke, write_lines: WriteLines, tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("version: 2\nevents: {}\n", encoding="utf-8")
    result = invoke(check_command, "--plan", plan, write_lines("c.jsonl", CLEAN))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {plan}:1:10: version: unsupported plan format version 2; this trackguard reads 1\n"
    )


def test_missing_plan_exits_2(invoke: Invoke, write_lines: WriteLines, tmp_path: Path) -> None:
    plan = tmp_path / "absent.yaml"
    result = invoke(check_command, "--plan", plan, write_lines("c.jsonl", CLEAN))
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {plan}: cannot read the plan (No such file or directory)\n")


@pytest.mark.parametrize("args", [[], ["--format", "xml", "x.jsonl"], ["--nope", "x.jsonl"]])
def test_usage_errors_exit_2(invoke: Invoke, args: list[str]) -> None:
    result = invoke(check_command, *args)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr


# --- summary ------------------------------------------------------------------------------------


def test_summary_counts(invoke: Invoke, write_lines: WriteLines, plan_file: Path) -> None:
    path = write_lines("mixed.jsonl", MIXED)
    result = invoke(check_command, "--plan", plan_file, path)
    assert result.exit_code == 1
    out = rows(result.stdout)
    assert out[:9] == [
        "trackguard check (plan cli-test)",
        "outcome ┃ requests ┃ share",
        "━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━",
        "accepted │ 1 │ 20.0%",
        "fixed │ 1 │ 20.0%",
        "warned │ 1 │ 20.0%",
        "rejected │ 1 │ 20.0%",
        "invalid │ 1 │ 20.0%",
        "unreadable lines │ 1 │",
    ]
    assert (
        out[9] == "5 requests: 3 operations would be sent, 1 quarantined by the plan, "
        "2 values fixed."
    )
    assert out[10] == "Top findings"
    assert out[13:] == [
        f"property_type │ 2 │ fix 1, reject 1 │ {path}:2: 'total' should be number, got string "
        "'49.90'; converted to 49.9",
        f"event_name_blank │ 1 │ invalid 1 │ {path}:5: event name must not be blank",
        f"event_name_drift │ 1 │ fix 1 │ {path}:2: event 'Order Completed' is 'order_completed' "
        "written differently; renamed to 'order_completed'",
        f"property_unplanned │ 1 │ warn 1 │ {path}:3: property 'coupon' is not in the tracking "
        "plan",
        f"unreadable {path}:7: line is not valid JSON",
    ]


def test_summary_without_findings_has_no_findings_table(
    invoke: Invoke, write_lines: WriteLines
) -> None:
    result = invoke(check_command, write_lines("clean.jsonl", CLEAN[:1]))
    assert "Top findings" not in result.stdout
    assert "accepted │ 1 │ 100.0%" in rows(result.stdout)


def test_summary_over_several_files(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path
) -> None:
    a = write_lines("a.jsonl", CLEAN)
    b = write_lines("b.jsonl.gz", MIXED, gz=True)
    result = invoke(check_command, "--plan", plan_file, a, b)
    out = rows(result.stdout)
    assert "accepted │ 4 │ 50.0%" in out
    assert (
        "8 requests: 6 operations would be sent, 1 quarantined by the plan, 2 values fixed." in out
    )
    assert f"unreadable {b}:7: line is not valid JSON" in out


# --- jsonl --------------------------------------------------------------------------------------

VERDICT_KEYS = [
    "file",
    "line",
    "outcome",
    "status",
    "response",
    "route",
    "plan_version",
    "contract_errors",
    "violations",
    "changes",
    "operations",
    "rejected",
]


def test_jsonl_one_object_per_input_line(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path
) -> None:
    path = write_lines("mixed.jsonl", MIXED)
    result = invoke(check_command, "--plan", plan_file, "--format", "jsonl", path)
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5, 7]
    assert [r.get("outcome") for r in records] == [
        "accepted",
        "fixed",
        "warned",
        "rejected",
        "invalid",
        None,
    ]
    for record in records[:5]:
        assert list(record) == VERDICT_KEYS
        assert record["file"] == str(path)
        assert record["plan_version"] == "7"
        assert record["route"] == ROUTE
    assert records[5] == {"file": str(path), "line": 7, "unreadable": "line is not valid JSON"}


def test_jsonl_fixed_record_exactly(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path
) -> None:
    path = write_lines("one.jsonl", [MIXED[1]])
    result = invoke(check_command, "--plan", plan_file, "--format", "jsonl", path)
    assert result.exit_code == 0
    rule = "events.order_completed.properties.total"
    assert jsonl(result.stdout) == [
        {
            "file": str(path),
            "line": 1,
            "outcome": "fixed",
            "status": 200,
            "response": "{}\n",
            "route": ROUTE,
            "plan_version": "7",
            "contract_errors": [],
            "violations": [
                {
                    "code": "event_name_drift",
                    "rule": "naming",
                    "path": "name",
                    "message": "event 'Order Completed' is 'order_completed' written differently; "
                    "renamed to 'order_completed'",
                    "action": "fix",
                    "batch_index": None,
                },
                {
                    "code": "property_type",
                    "rule": rule,
                    "path": "data.total",
                    "message": "'total' should be number, got string '49.90'; converted to 49.9",
                    "action": "fix",
                    "batch_index": None,
                },
            ],
            "changes": [
                {
                    "path": "name",
                    "before": "Order Completed",
                    "after": "order_completed",
                    "rule": "naming",
                    "batch_index": None,
                },
                {
                    "path": "data.total",
                    "before": "49.90",
                    "after": 49.9,
                    "rule": rule,
                    "batch_index": None,
                },
            ],
            "operations": [
                {
                    "api": "v1",
                    "type": "person",
                    "action": "event",
                    "identifier": {"kind": "id", "value": "cus_1"},
                    "dedupe_key": "order_completed:ORD-2",
                    "method": "POST",
                    "path": EVENTS,
                    "body": {
                        "name": "order_completed",
                        "data": {"order_id": "ORD-2", "total": 49.9, "currency": "USD"},
                    },
                }
            ],
            "rejected": [],
        }
    ]


def test_jsonl_invalid_record(invoke: Invoke, write_lines: WriteLines, plan_file: Path) -> None:
    path = write_lines("one.jsonl", [MIXED[4]])
    (record,) = jsonl(invoke(check_command, "--plan", plan_file, "--format", "jsonl", path).stdout)
    assert record["status"] == 400
    assert (
        record["response"] == '{\n  "meta": {\n    "errors": [\n      "event name must not '
        'be blank"\n    ]\n  }\n}\n'
    )
    assert record["contract_errors"] == [
        {
            "code": "event_name_blank",
            "message": "event name must not be blank",
            "field": "name",
            "reason": "required",
            "batch_index": None,
            "verified": True,
        },
    ]
    assert (record["operations"], record["rejected"]) == ([], [])


def test_jsonl_strict(invoke: Invoke, write_lines: WriteLines, plan_file: Path) -> None:
    path = write_lines("one.jsonl", [MIXED[3]])
    (record,) = jsonl(
        invoke(check_command, "--plan", plan_file, "--format", "jsonl", "--strict", path).stdout
    )
    assert (record["outcome"], record["status"]) == ("rejected", 400)
    assert json.loads(record["response"]) == {
        "meta": {"errors": ["'total' should be number, got string 'abc'"]}
    }


def test_jsonl_raw_string_body(invoke: Invoke, write_lines: WriteLines) -> None:
    line = {"method": "POST", "path": EVENTS, "body": '{"name": "x", "data": {'}
    (record,) = jsonl(
        invoke(check_command, "--format", "jsonl", write_lines("raw.jsonl", [line])).stdout
    )
    assert record["outcome"] == "invalid"
    assert [e["code"] for e in record["contract_errors"]] == ["invalid_json"]


# --- input formats and unreadable lines ---------------------------------------------------------


def test_gzip_input_gives_the_same_verdicts(
    invoke: Invoke, write_lines: WriteLines, plan_file: Path
) -> None:
    plain = write_lines("in.jsonl", MIXED)
    packed = write_lines("in.jsonl.gz", MIXED, gz=True)
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    out_plain = jsonl(invoke(check_command, "--plan", plan_file, "--format", "jsonl", plain).stdout)
    out_packed = jsonl(
        invoke(check_command, "--plan", plan_file, "--format", "jsonl", packed).stdout
    )
    assert len(out_packed) == 6
    for a, b in zip(out_plain, out_packed, strict=True):
        assert b["file"] == str(packed)
        assert {**a, "file": ""} == {**b, "file": ""}


def test_gzip_detected_by_content_not_name(invoke: Invoke, write_lines: WriteLines) -> None:
    path = write_lines("traffic.log", CLEAN, gz=True)
    result = invoke(check_command, "--format", "jsonl", path)
    assert [r["outcome"] for r in jsonl(result.stdout)] == ["accepted"] * 3


UNREADABLE = [
    ("{not json", "line is not valid JSON"),
    ('["POST", "/api/v1/events"]', "line is not a JSON object"),
    (json.dumps({"path": EVENTS, "body": {}}), 'missing or non-string "method"'),
    (json.dumps({"method": "", "path": EVENTS}), 'missing or non-string "method"'),
    (json.dumps({"method": 5, "path": EVENTS}), 'missing or non-string "method"'),
    (
        json.dumps({"method": "POST", "path": "api/v1/events"}),
        'missing "path" or it does not start with /',
    ),
    (json.dumps({"method": "POST"}), 'missing "path" or it does not start with /'),
]


@pytest.mark.parametrize(("line", "reason"), UNREADABLE)
def test_unreadable_lines_are_counted_with_file_and_line(
    invoke: Invoke, write_lines: WriteLines, line: str, reason: str
) -> None:
    path = write_lines("u.jsonl", [CLEAN[0], line, CLEAN[0]])
    jl = invoke(check_command, "--format", "jsonl", path)
    assert jl.exit_code == 1
    assert [r.get("outcome", r.get("unreadable")) for r in jsonl(jl.stdout)] == [
        "accepted",
        reason,
        "accepted",
    ]
    assert jsonl(jl.stdout)[1] == {"file": str(path), "line": 2, "unreadable": reason}
    summary = rows(invoke(check_command, path).stdout)
    assert "unreadable lines │ 1 │" in summary
    assert f"unreadable {path}:2: {reason}" in summary


def test_truncated_gzip(invoke: Invoke, write_lines: WriteLines) -> None:
    path = write_lines("cut.jsonl.gz", CLEAN, gz=True)
    path.write_bytes(path.read_bytes()[:-4])  # the trailer (size) is gone
    result = invoke(check_command, "--format", "jsonl", path)
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r.get("outcome") for r in records] == ["accepted", "accepted", "accepted", None]
    assert records[3] == {
        "file": str(path),
        "line": 4,
        "unreadable": "file is truncated or corrupt: Compressed file ended before the "
        "end-of-stream marker was reached",
    }


def test_only_first_unreadable_examples_are_listed(invoke: Invoke, write_lines: WriteLines) -> None:
    path = write_lines("u.jsonl", ["{"] * 5)
    out = rows(invoke(check_command, path).stdout)
    assert "unreadable lines │ 5 │" in out
    assert [line for line in out if line.startswith(f"unreadable {path}")] == [
        f"unreadable {path}:{n}: line is not valid JSON" for n in (1, 2, 3)
    ]


# --- sample -------------------------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sample`` ends its traffic at the run's clock: held still, two runs are the same."""
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)


def _sample(invoke: Invoke, *args: str | Path) -> bytes:
    result = invoke(sample_command, *args)
    assert result.exit_code == 0
    return result.stdout_bytes


def test_sample_is_deterministic(invoke: Invoke, frozen_clock: None) -> None:
    first = _sample(invoke, "-n", "300", "--seed", "11")
    assert first == _sample(invoke, "-n", "300", "--seed", "11")
    assert first != _sample(invoke, "-n", "300", "--seed", "12")


def test_sample_matches_the_library(invoke: Invoke, frozen_clock: None) -> None:
    out = _sample(invoke, "-n", "120", "--seed", "3")
    assert [json.loads(line) for line in out.splitlines()] == list(d2c_traffic(120, 3))


def test_sample_defaults(invoke: Invoke, frozen_clock: None) -> None:
    out = _sample(invoke)
    assert [json.loads(line) for line in out.splitlines()] == list(d2c_traffic(2000, 7))
    assert out.endswith(b"\n")


def test_sample_to_file(invoke: Invoke, tmp_path: Path, frozen_clock: None) -> None:
    target = tmp_path / "traffic.jsonl"
    assert _sample(invoke, "-n", "50", "-o", target) == b""
    assert target.read_bytes() == _sample(invoke, "-n", "50")


def test_sample_output_is_check_input(invoke: Invoke, tmp_path: Path, plan_file: Path) -> None:
    target = tmp_path / "traffic.jsonl"
    _sample(invoke, "-n", "200", "--seed", "7", "-o", target)
    lines = target.read_bytes().splitlines()
    result = invoke(check_command, "--format", "jsonl", "--plan", plan_file, target)
    records = jsonl(result.stdout)
    assert len(records) == len(lines)
    assert all("unreadable" not in r for r in records)


def test_example_plan_checks_the_sample(invoke: Invoke, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"
    target = tmp_path / "traffic.jsonl"
    _sample(invoke, "-n", "200", "-o", target)
    result = invoke(check_command, "--plan", example, target)
    out = rows(result.stdout)
    n = len(target.read_bytes().splitlines())
    assert result.exit_code == 1  # the sample has malformed and nameless requests
    assert out[0] == "trackguard check (plan d2c-store)"
    assert "unreadable lines │ 0 │" in out
    assert any(line.startswith(f"{n} requests: ") for line in out)


# --- any input file -----------------------------------------------------------------------------

request_records = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["POST", "PUT", "post", "", 5]),
        "path": st.sampled_from([EVENTS, "/api/v1/customers/cus_1", "/api/v2/batch", "x", "/"]),
    },
    optional={
        "body": st.one_of(
            st.none(),
            st.text(max_size=30),
            st.dictionaries(
                st.sampled_from(["name", "data", "batch", "email"]),
                st.text(max_size=10),
                max_size=3,
            ),
        )
    },
)
file_lines = st.one_of(
    request_records.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.text(max_size=40).filter(lambda t: "\n" not in t).map(lambda t: t.encode()),
)


@settings(max_examples=60)
@given(st.lists(file_lines, max_size=8), st.booleans())
def test_jsonl_answers_every_non_blank_line(content: list[bytes], gz: bool) -> None:
    """Whatever a file holds, --format jsonl gives one object per non-blank line, in order."""
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        data = b"".join(line + b"\n" for line in content)
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        result = runner.invoke(
            check_command, ["--format", "jsonl", str(path)], catch_exceptions=False
        )
    out = jsonl(result.stdout)
    expected = [n for n, line in enumerate(content, start=1) if line.strip()]
    assert [r["line"] for r in out] == expected
    assert all(r["file"] == str(path) for r in out)
    failed = any("unreadable" in r or r["outcome"] in ("rejected", "invalid") for r in out)
    assert result.exit_code == (1 if failed else 0)


def test_jsonl_lines_break_at_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    name = "order\u0085completed\u2028x"
    record = {"method": "POST", "path": "/api/v1/customers/1/events", "body": {"name": name}}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    result = CliRunner().invoke(check_command, ["--format", "jsonl", str(path)])
    assert result.stdout.count("\n") == 1
    assert [r["line"] for r in jsonl(result.stdout)] == [1]
