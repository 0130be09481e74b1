"""``trackguard check`` over Pipelines API requests: every path form, gzip, HAR captures, the
plan, and ``--jobs`` giving the output one job gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import trackguard.shares as shares
from pipelines_corpus import HAR, MIXED, mixed_traffic, write_jsonl
from trackguard.cli.check import check_command

PLAN = Path(__file__).resolve().parents[2] / "examples" / "d2c-plan.yaml"


def _check(*args: str | Path) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(check_command, [str(a) for a in args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.stdout


def _rows(output: str) -> list[str]:
    return [" ".join(line.split()) for line in output.splitlines()]


def _verdicts(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.split("\n") if line]


def test_mixed_jsonl_verdicts(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", MIXED)
    code, out = _check(path, "--format", "jsonl")
    assert code == 1  # the batch's call with a millisecond timestamp is dropped
    got = [
        (v["line"], v["outcome"], v["status"], v["route"],
         [e["code"] for e in v["contract_errors"]], [w["code"] for w in v["violations"]],
         [o["dedupe_key"] for o in v["operations"]])
        for v in _verdicts(out)
    ]  # fmt: skip
    assert [g[:6] for g in got] == [
        (1, "accepted", 200, "POST /api/v1/customers/{identifier}/events", [], []),
        (2, "accepted", 200, "POST /v1/track", [], []),
        (3, "accepted", 200, "POST /v1/track", [], []),  # gzip, from body_base64
        (4, "invalid", 200, "POST /v1/batch", ["timestamp_invalid"], ["user_id_email"]),
        (5, "accepted", 200, "POST /v1/track", [], []),
        (6, "accepted", 200, "POST /v1/t", [], []),  # the browser's text/plain, writeKey in it
        (7, "accepted", 200, "POST /v1/p", [], []),
        (8, "accepted", 200, "POST /api/v1/customers/{identifier}/events", [], []),
    ]
    assert [g[6] for g in got[1:7]] == [
        ["pipelines:messageId:m-1"], ["pipelines:messageId:m-2"],
        ["pipelines:messageId:m-3", "pipelines:messageId:m-4"], ["pipelines:messageId:m-1"],
        ["pipelines:messageId:m-6"], ["pipelines:messageId:m-7"],
    ]  # fmt: skip
    browser = _verdicts(out)[5]["operations"][0]
    assert (browser["api"], browser["action"], browser["identifier"]) == (
        "pipelines", "event", {"kind": "anonymous_id", "value": "anon-2"}
    )  # fmt: skip
    assert "writeKey" not in out  # the browser's write key is not carried into any output


def test_mixed_jsonl_summary_with_the_plan(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", MIXED)
    code, out = _check("--plan", PLAN, path)
    assert code == 1
    rows = _rows(out)
    assert rows[3:9] == [
        "accepted │ 2 │ 25.0%", "fixed │ 2 │ 25.0%", "warned │ 1 │ 12.5%",
        "rejected │ 2 │ 25.0%", "invalid │ 1 │ 12.5%", "unreadable lines │ 0 │",
    ]  # fmt: skip
    assert rows[9] == (
        "8 requests: 6 operations would be sent, 3 quarantined by the plan, 5 values fixed."
    )
    codes = [row for row in rows[13:] if not row.startswith("│")]  # not the wrapped examples
    assert [row.split(" │ ")[:3] for row in codes] == [
        ["property_missing", "5", "reject 5"],
        ["property_type", "3", "fix 3"],
        ["event_name_drift", "2", "fix 2"],
        ["event_unplanned", "1", "warn 1"],
        ["identity_not_canonical", "1", "warn 1"],
        ["timestamp_invalid", "1", "invalid 1"],
        ["user_id_email", "1", "warn 1"],
    ]
    assert codes[0].endswith(f"{path}:4: required property 'product_id' is missing")


def test_clean_pipelines_traffic_exits_0(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "clean.jsonl", [MIXED[1], MIXED[2], MIXED[5], MIXED[6]])
    assert _check(path)[0] == 0


def test_strict_answers_plan_rejections_with_400(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "batch.jsonl", [MIXED[3]])
    _, out = _check("--plan", PLAN, "--strict", path, "--format", "jsonl")
    (verdict,) = _verdicts(out)
    assert (verdict["outcome"], verdict["status"]) == ("invalid", 400)
    assert json.loads(verdict["response"])["code"] == "plan_rejected"


def test_har_capture_positions_are_entries() -> None:
    code, out = _check(HAR, "--format", "jsonl")
    assert code == 1
    got = [(v.get("entry"), v.get("outcome") or v.get("unreadable")) for v in _verdicts(out)]
    assert got == [
        (1, "accepted"), (2, "accepted"), (4, "accepted"), (5, "accepted"), (6, "accepted"),
        (7, "accepted"), (8, "invalid"), (9, "accepted"),
        (10, "HAR entry is not a request: Object missing required field `url` - at `$.request`"),
    ]  # fmt: skip  # entries 0 (a page) and 3 (the SDK's telemetry) are skipped
    assert all("line" not in v for v in _verdicts(out))
    python_batch = _verdicts(out)[7]  # the Python SDK's gzip batch, base64 in the HAR
    assert [o["body"]["event"] for o in python_batch["operations"]] == ["Order Completed"]
    _, summary = _check(HAR)
    assert "skipped HAR entries │ 2 │" in _rows(summary)


@pytest.mark.parametrize("plan", [(), ("--plan", str(PLAN))])
def test_jobs_give_the_output_of_one_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: tuple[str, ...]
) -> None:
    monkeypatch.setattr(shares, "MIN_SHARE_BYTES", 1)  # forked workers inherit it
    traffic = mixed_traffic(1500)
    path = write_jsonl(tmp_path / "mixed.jsonl", traffic + MIXED)
    for fmt in ("jsonl", "summary"):
        one = _check(*plan, path, HAR, "--format", fmt, "--jobs", "1")
        assert _check(*plan, path, HAR, "--format", fmt, "--jobs", "2") == one
        assert _check(*plan, path, HAR, "--format", fmt, "--jobs", "3") == one
    verdicts = _verdicts(_check(*plan, path, "--format", "jsonl")[1])
    assert len(verdicts) == len(traffic) + len(MIXED)
    routes = [v["route"] for v in verdicts]
    pipelines = sum(1 for r in traffic if r["path"].startswith("/v1/"))
    assert sum(1 for r in routes if r.startswith("POST /v1/")) == pipelines + 6
