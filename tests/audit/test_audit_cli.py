"""``trackguard audit`` through click: reports, exit codes, usage errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from audit_known_log import KNOWN_PLAN, write_known_log
from click.testing import CliRunner

from trackguard.cli.audit import audit_command
from trackguard.plan.loader import lint_plan


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_known_log(tmp_path / "requests.jsonl")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(audit_command, list(args))
    return result.exit_code, result.output


def test_summary_and_default_exit_zero(log: Path) -> None:
    code, out = _run(str(log))
    assert code == 0
    assert "112 requests checked, 0 unreadable" in out
    assert "Naming drift" in out and "order_complete (3)" in out
    # certain variants in one column, the possible one with its evidence in the next
    row = next(line for line in out.splitlines() if line.lstrip().startswith("order_completed"))
    assert [cell.strip() for cell in row.split("│")] == [
        "order_completed",
        "Order Completed (6),",
        "order_complete (3): 1 edit",
    ]


@pytest.mark.parametrize(("threshold", "code"), [("critical", 1), ("error", 1), ("info", 1)])
def test_fail_on(log: Path, threshold: str, code: int) -> None:
    assert _run(str(log), "--fail-on", threshold)[0] == code


def test_fail_on_passes_when_below(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text(
        json.dumps(
            {
                "method": "POST",
                "path": "/api/v1/customers/c1/events",
                "body": {"name": "a", "data": {}},
            }
        )
        + "\n"
    )
    assert _run(str(clean), "--fail-on", "info")[0] == 0


def test_reports_are_written(log: Path, tmp_path: Path) -> None:
    html, js, draft = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "draft.yaml"
    code, _ = _run(
        str(log),
        "--plan",
        _plan(tmp_path),
        "--html",
        str(html),
        "--json",
        str(js),
        "--infer-plan",
        str(draft),
        "--fail-on",
        "critical",
    )
    assert code == 1
    doc = json.loads(js.read_text())
    assert (doc["schema"], doc["fail_on"], doc["failed"], doc["worst_severity"]) == (
        1,
        "critical",
        True,
        "critical",
    )
    assert doc["report"]["plan"] == "known"
    assert doc["report"]["drift"][0]["canonical"] == "order_completed"
    # the plan aliases order_complete: a certain match, not a possible one
    assert doc["report"]["drift"][0]["matches"] == [
        {
            "name": "Order Completed",
            "confidence": "certain",
            "evidence": "same words (case or separators)",
        },
        {
            "name": "orderCompleted",
            "confidence": "certain",
            "evidence": "same words (case or separators)",
        },
        {"name": "order_complete", "confidence": "certain", "evidence": "one event in the plan"},
    ]
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert [i for i in lint_plan(draft) if i.severity == "error"] == []


def test_json_to_stdout_replaces_the_summary(log: Path) -> None:
    code, out = _run(str(log), "--json", "-")
    assert code == 0
    assert json.loads(out)["report"]["totals"]["requests"] == 112


def test_map_option(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_text(
        json.dumps(
            {
                "req": {
                    "m": "POST",
                    "u": "/api/v1/customers/1/events",
                    "b": '{"name":"x","data":"s"}',
                },
                "res": {"s": 400},
            }
        )
        + "\n"
    )
    code, out = _run(
        str(path), "--map", "method=req.m,path=req.u,body=req.b,status=res.s", "--json", "-"
    )
    assert code == 0
    report = json.loads(out)["report"]
    assert report["statuses"] == {"400": 1}
    assert report["outcomes"]["invalid"] == 1


def _plan(tmp_path: Path, text: str = KNOWN_PLAN) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "no such file"),
        (["*.nothing"], "no file matches"),
        (["LOG", "--map", "method=a"], "--map must name 'path'"),
        (["LOG", "--plan", "PLAN"], ":1:10: version: unsupported plan format version 2"),
        (
            ["LOG", "--plan", "missing.yaml"],
            "Error: missing.yaml: cannot read the plan (No such file or directory)\n",
        ),
        (["LOG", "--fail-on", "fatal"], "Invalid value for '--fail-on'"),
    ],
)
def test_usage_errors_exit_2(log: Path, tmp_path: Path, args: list[str], message: str) -> None:
    bad_plan = _plan(tmp_path, "version: 2\nevents: []\n")
    args = [str(log) if a == "LOG" else bad_plan if a == "PLAN" else a for a in args]
    result = CliRunner().invoke(audit_command, args)
    assert result.exit_code == 2
    assert message in result.output


def test_no_progress_bar_when_stderr_is_not_a_terminal(log: Path) -> None:
    result = CliRunner().invoke(audit_command, [str(log)])
    assert result.exit_code == 0
    assert result.stderr == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_for_large_input(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackguard.cli import audit as cli_audit

    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setattr(cli_audit, "PROGRESS_MIN_BYTES", 1)
    run = cli_audit._run((str(log),), None, None)
    assert run.report.totals.requests == 112
    assert "auditing" in fake.getvalue()
    monkeypatch.setattr(cli_audit, "PROGRESS_MIN_BYTES", 10**12)
    fake.seek(0)
    fake.truncate()
    cli_audit._run((str(log),), None, None)
    assert fake.getvalue() == ""
