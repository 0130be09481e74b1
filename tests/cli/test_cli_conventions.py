"""The conventions every command keeps (docs/cli.md): exit codes, one ``Error:`` line and no
traceback, no store created by a typo, machine-readable output, whole rows when piped."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import trustme
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trackguard.cli import main
from trackguard.cli.output import print_table, printable, rows_table
from trackguard.contract.operations import Request
from trackguard.core.pipeline import Checker
from trackguard.ingest import to_write
from trackguard.monitor.db import MonitorDB
from trackguard.store.base import StoreError, StoreNotFound, Write
from trackguard.store.sqlite import SQLiteStore, open_store

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "d2c-plan.yaml"
ALERTS = ROOT / "examples" / "alerts.yaml"
ENV = {
    "TRACKGUARD_SITE_ID": "site",
    "TRACKGUARD_API_KEY": "key",
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    "PAGERDUTY_ROUTING_KEY": "rk",
    "COLUMNS": "80",
}
#: Records with a blank event name the store fixture holds (one code each).
BLANK = 91


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={**ENV, **(env or {})})
    return runner.invoke(main, [str(a) for a in args])


def _event(n: int, name: str) -> Write:
    body = json.dumps({"name": name, "data": {"n": n}, "timestamp": 1764000000}).encode()
    request = Request(method="POST", path=f"/api/v1/customers/c{n}/events", body=body)
    return to_write(request, Checker().check(request), 1764000000.0 + n)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 3 delivered-or-pending events, BLANK quarantined blank-name events, two
    identity bindings, one unlinked anonymous cart and an hour of monitor counts."""
    path = tmp_path_factory.mktemp("store") / "tg.db"
    store = SQLiteStore(path)
    store.commit([_event(n, "order_completed") for n in range(3)])
    store.commit([_event(100 + n, "") for n in range(BLANK)])
    store.commit([Write(links=(("ana@example.com", "42"),), anonymous=(("anon-1", "cart"),))])
    store.mark_delivered([1], 1764000100.0)
    store.close()
    monitor = MonitorDB(path)
    minute = int(time.time() // 60)
    monitor.add_counts(
        {
            (minute, "order_completed", "POST /api/v1/customers/{identifier}/events", "app",
             "outcome", "accepted"): 7,
            (minute, "(unknown)", "POST /api/v1/customers/{identifier}/events", "app",
             "outcome", "invalid"): 3,
            (minute, "(unknown)", "POST /api/v1/customers/{identifier}/events", "app",
             "code", "event_name_blank"): 3,
        }
    )  # fmt: skip
    monitor.close()
    return path


# --- no store is created by a typo --------------------------------------------------------------

STORE_COMMANDS = [
    ["deliver", "--once", "--upstream", "http://127.0.0.1:9"],
    ["outbox", "stats"],
    ["outbox", "list"],
    ["outbox", "show", "1"],
    ["identity", "import", "IDS"],
    ["identity", "unlinked"],
    ["quarantine", "list"],
    ["quarantine", "show", "1"],
    ["quarantine", "stats"],
    ["quarantine", "export"],
    ["quarantine", "purge", "--older-than", "1d"],
    ["replay", "--plan", str(PLAN)],
    ["backfill", "ROWS", "--as", "identify", "--map", "MAP"],
    ["stats"],
    ["health"],
    ["alerts", "status", "--rules", str(ALERTS)],
]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_missing_store_is_an_error_and_nothing_is_created(
    tmp_path: Path, command: list[str]
) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("id,email\n1,a@example.com\n")
    rows = tmp_path / "rows.csv"
    rows.write_text("id,email\n1,a@example.com\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("person: {id: id}\nattributes: {email: email}\n")
    given = {"IDS": str(ids), "ROWS": str(rows), "MAP": str(mapping)}
    typo = tmp_path / "trackgaurd.db"
    result = run(*(given.get(a, a) for a in command), "--db", typo)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: no store at {typo} (trackguard serve creates one)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.csv", "m.yaml", "rows.csv"]


#: Where a store of either kind will do (``--db``, ``store copy``'s DST), and where only a file;
#: URL is where the store URL goes.
EITHER_STORE = [
    *([*c, "--db", "URL"] for c in STORE_COMMANDS),
    ["serve", "--listen", "127.0.0.1:0", "--db", "URL"],
    ["console", "--db", "URL"],
    ["store", "info", "--db", "URL"],
    ["store", "prune", "--db", "URL"],
    ["store", "copy", "STORE", "URL"],
]
FILE_ONLY = [
    ["store", "init", "URL"],
    ["store", "backup", "--db", "URL", "copy.db"],
    ["store", "vacuum", "--db", "URL"],
    ["store", "copy", "URL", "copy.db"],
]


@pytest.mark.parametrize(
    ("command", "forms"),
    [
        *(
            (c, "a path, sqlite:///path or postgresql://user@host/db[?schema=NAME]")
            for c in EITHER_STORE
        ),
        *((c, "a path or sqlite:///path") for c in FILE_ONLY),
    ],
    ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else "",
)
def test_a_mistyped_store_url_is_refused_in_the_same_words_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: Path, command: list[str], forms: str
) -> None:
    """Another scheme (shown without its password) and a ``sqlite:`` URL without ``///``
    (once taken for a file of that name) are refused in one line, and nothing is created."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ids.csv").write_text("id,email\n1,a@example.com\n")
    (tmp_path / "m.yaml").write_text("person: {id: id}\nattributes: {email: email}\n")
    given = {"STORE": str(db), "IDS": "ids.csv", "ROWS": "ids.csv", "MAP": "m.yaml"}
    for url, error in [
        ("sqlte:///tg.db", f"'sqlte:///tg.db': unsupported store URL (use {forms})"),
        ("mysql://tg:secret@db/tg", f"'mysql://tg@db/tg': unsupported store URL (use {forms})"),
        ("sqlite:tg.db", "'sqlite:tg.db': write sqlite:///relative/path or sqlite:////abs/path"),
    ]:
        result = run(*({**given, "URL": url}.get(a, a) for a in command))
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {error}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.csv", "m.yaml"]


@pytest.mark.parametrize(
    ("command", "extra"),
    [(["store", "info"], ["x.db"]), (["outbox", "stats"], ["a", "b"])],
)
def test_a_path_given_without_db_is_named_as_an_extra_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], extra: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no trackguard.db here: the --db default names no store
    result = run(*command, *extra)
    assert result.exit_code == 2
    s = "" if len(extra) == 1 else "s"
    assert result.stderr.splitlines()[-1] == (
        f"Error: Got unexpected extra argument{s} ({' '.join(extra)})"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_store_can_come_from_the_environment(db: Path, tmp_path: Path) -> None:
    assert run("outbox", "stats", env={"TRACKGUARD_DB": str(db)}).exit_code == 0
    typo = tmp_path / "x.db"
    result = run("health", env={"TRACKGUARD_DB": str(typo)})
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: no store at {typo} (trackguard serve creates one)\n",
    )


def test_serve_is_the_command_that_creates_a_store(tmp_path: Path) -> None:
    """serve gets as far as binding: a port already taken, after the store was made."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--db", tmp_path / "new.db", "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: cannot listen on 127.0.0.1:{port}: the address is already in use"
        " (is another server running?)\n"
    )
    assert "Traceback" not in result.output
    assert (tmp_path / "new.db").exists()


# --- JSON output --------------------------------------------------------------------------------


def _json(*args: str | Path) -> object:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_quarantine_json(db: Path) -> None:
    listed = _json("quarantine", "list", "--db", db, "--limit", "500", "--format", "json")
    assert isinstance(listed, list) and len(listed) == BLANK
    assert {tuple(r["codes"]) for r in listed} == {("event_name_blank",)}
    assert listed[0]["kind"] == "contract" and listed[0]["state"] == "quarantined"
    assert listed[0]["method"] == "POST" and listed[0]["path"] == "/api/v1/customers/c190/events"
    stats = _json("quarantine", "stats", "--db", db, "--format", "json")
    assert isinstance(stats, dict)
    assert stats["total"] == BLANK
    assert stats["by_code"] == [["event_name_blank", BLANK]]
    assert stats["by_kind"] == [["contract", BLANK]]
    shown = _json("quarantine", "show", str(listed[0]["id"]), "--db", db, "--format", "json")
    assert shown == listed[0]
    lines = run("quarantine", "stats", "--db", db, "--format", "jsonl").stdout.splitlines()
    assert {"breakdown": "code", "value": "event_name_blank", "records": BLANK} in [
        json.loads(line) for line in lines
    ]
    csv_lines = run("quarantine", "list", "--db", db, "--format", "csv", "--limit", "5").stdout
    assert csv_lines.splitlines()[0].startswith("id,time,received_at,kind,state,method,path")
    assert len(csv_lines.splitlines()) == 6


def test_outbox_json(db: Path) -> None:
    stats = _json("outbox", "stats", "--db", db, "--format", "json")
    assert isinstance(stats, dict)
    assert (stats["pending"], stats["delivered"], stats["failed"]) == (2, 1, 0)
    listed = _json("outbox", "list", "--db", db, "--format", "json")
    assert [(r["seq"], r["state"]) for r in listed] == [  # type: ignore[union-attr]
        (3, "pending"),
        (2, "pending"),
        (1, "delivered"),
    ]
    shown = _json("outbox", "show", "3", "--db", db, "--format", "json")
    assert shown["payload"]["v2"]["identifiers"] == {"id": "c2"}  # type: ignore[index]


def test_monitor_json(db: Path) -> None:
    by_event = _json("stats", "--db", db, "--format", "json")
    assert by_event == [
        {
            "event": "order_completed",
            "accepted": 7,
            "fixed": 0,
            "warned": 0,
            "rejected": 0,
            "invalid": 0,
            "refused": 0,
            "invalid_share": 0.0,
        },
        {
            "event": "(unknown)",
            "accepted": 0,
            "fixed": 0,
            "warned": 0,
            "rejected": 0,
            "invalid": 3,
            "refused": 0,
            "invalid_share": 100.0,
        },
    ]
    assert _json("stats", "--db", db, "--by", "code", "--format", "json") == [
        {"code": "event_name_blank", "count": 3}
    ]
    health = _json("health", "--db", db, "--format", "json")
    assert [m["metric"] for m in health] == [  # type: ignore[union-attr]
        "people_multiple_identifiers",
        "anonymous_carts_unlinked",
        "emails_without_recent_order",
    ]
    assert {m["metric"]: m["value"] for m in health}["emails_without_recent_order"] == 1  # type: ignore[union-attr]
    status = _json("alerts", "status", "--rules", ALERTS, "--db", db, "--format", "json")
    assert isinstance(status, dict)
    assert [c["channel"] for c in status["channels"]] == ["slack", "pagerduty", "log"]
    assert {r["state"] for r in status["rules"]} == {"unknown"}
    assert len(status["rules"]) == 9  # every rule of examples/alerts.yaml


def test_identity_json(db: Path) -> None:
    unlinked = _json("identity", "unlinked", "--db", db, "--older-than", "0", "--format", "json")
    assert [(u["anonymous_id"], u["event"]) for u in unlinked] == [("anon-1", "cart")]  # type: ignore[union-attr]


def test_stats_table_keeps_headers_apart(db: Path) -> None:
    header = run("stats", "--db", db).stdout.splitlines()[0]
    assert header.split() == [
        "event", "accepted", "fixed", "warned", "rejected", "invalid", "refused", "invalid%"
    ]  # fmt: skip


# --- piped tables -------------------------------------------------------------------------------


def test_a_piped_list_counts_with_grep(db: Path) -> None:
    """Not a terminal: every record on one line, nothing cut, whatever COLUMNS says."""
    args = ["quarantine", "list", "--db", str(db), "--limit", "500"]
    listing = subprocess.run(
        [sys.executable, "-m", "trackguard", *args],
        capture_output=True,
        text=True,
        env={"COLUMNS": "40", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    grep = subprocess.run(
        ["grep", "-c", "event_name_blank"], input=listing.stdout, capture_output=True, text=True
    )
    assert grep.stdout == f"{BLANK}\n"
    assert all(line.endswith("/events") for line in listing.stdout.splitlines()[1:])
    assert listing.stderr == f"showing 1-{BLANK} of {BLANK} matching records\n"


# --- a reader that goes away (| head) ------------------------------------------------------------


def _into_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run trackguard with stdout a pipe whose reader has already gone."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "trackguard", *map(str, args)],
            stdout=writer,
            stderr=subprocess.PIPE,
            env={**os.environ, **ENV},
            timeout=120,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["sample", "-n", "5"],
        ["check", "{log}", "--format", "jsonl"],
        ["check", "{log}"],
        ["audit", "{log}"],
        ["audit", "{log}", "--json", "-"],
        ["quarantine", "list", "--db", "{db}"],
        ["quarantine", "export", "--db", "{db}"],
        ["outbox", "list", "--db", "{db}", "--format", "json"],
    ],
    ids=" ".join,
)
def test_a_reader_that_is_gone_ends_the_command_quietly_with_1(
    args: list[str], log: Path, db: Path
) -> None:
    """Like rich, and Python's own advice: status 1 (the output is cut, so a pipefail shell
    notices), and no "Error: Broken pipe" line or traceback for what is no error."""
    done = _into_closed_pipe(*(a.format(log=log, db=db) for a in args))
    assert (done.returncode, done.stderr.decode()) == (1, "")


def test_a_large_output_cut_by_its_reader_is_not_a_success(tmp_path: Path) -> None:
    """One large write stops short, without an error, when the reader goes: `sample` went on
    to exit 0 with 64 KiB of the 4 MB written."""
    command = [sys.executable, "-m", "trackguard", "sample", "-n", "20000"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as sample:
        assert sample.stdout is not None and sample.stderr is not None
        assert len(sample.stdout.read(10)) == 10
        sample.stdout.close()
        assert (sample.wait(120), sample.stderr.read()) == (1, b"")


# --- no tracebacks ------------------------------------------------------------------------------


def _no_traceback(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == message
    assert all(line.startswith("Error: ") for line in result.stderr.splitlines())


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate and the key of another certificate."""
    folder = tmp_path_factory.mktemp("tls")
    one = trustme.CA().issue_cert("localhost")
    two = trustme.CA().issue_cert("localhost")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in one.cert_chain_pems))
    key.write_bytes(two.private_key_pem.bytes())
    return cert, key


@pytest.mark.parametrize("command", ["serve", "emulate"])
def test_a_key_that_does_not_match_the_certificate(
    tmp_path: Path, mismatched: tuple[Path, Path], command: str
) -> None:
    cert, key = mismatched
    db = ["--db", str(tmp_path / "tg.db")] if command == "serve" else []
    result = run(command, *db, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
    _no_traceback(
        result,
        f"Error: cannot use --tls-cert {cert} with --tls-key {key}:"
        " the key does not match the certificate",
    )
    assert not (tmp_path / "tg.db").exists()  # checked before anything starts


@pytest.mark.parametrize("command", ["serve", "emulate"])
def test_a_host_that_does_not_resolve(tmp_path: Path, command: str) -> None:
    db = ["--db", str(tmp_path / "tg.db")] if command == "serve" else []
    result = run(command, *db, "--listen", "no-such-host.invalid:8080")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert re.fullmatch(
        r"Error: cannot listen on no-such-host\.invalid:8080: 'no-such-host\.invalid' does not"
        r" resolve \(.+\)\n",
        result.stderr,
    )


def test_emulate_on_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("emulate", "--listen", f"127.0.0.1:{port}")
    _no_traceback(
        result,
        f"Error: cannot listen on 127.0.0.1:{port}: the address is already in use"
        " (is another server running?)",
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    body = json.dumps({"name": "order_completed", "data": {"order_id": "A-1", "total": 1}})
    line = {"method": "POST", "path": "/api/v1/customers/1/events", "body": body}
    path.write_text(json.dumps(line) + "\n")
    return path


@pytest.mark.parametrize("option", ["--html", "--json", "--infer-plan"])
def test_audit_checks_its_outputs_before_it_starts(log: Path, tmp_path: Path, option: str) -> None:
    target = tmp_path / "missing" / "report"
    result = run("audit", log, option, target)
    _no_traceback(result, f"Error: {target}: the directory {target.parent} does not exist")
    assert result.stdout == ""  # refused before the audit ran


def _refused_everywhere(log: Path, db: Path, target: Path, message: str) -> None:
    _no_traceback(run("plan", "export", PLAN, "-o", target), message)
    _no_traceback(run("quarantine", "export", "--db", db, "-o", target), message)
    _no_traceback(run("sample", "-n", "3", "-o", target), message)
    _no_traceback(run("audit", log, "--html", target), message)


def test_an_output_under_a_file_is_refused(log: Path, tmp_path: Path, db: Path) -> None:
    target = log / "out"
    _refused_everywhere(log, db, target, f"Error: {target}: {log} is not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_unwritable_directories_are_refused(log: Path, tmp_path: Path, db: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / "out"
        message = f"Error: {target}: the directory {locked} is not writable"
        _refused_everywhere(log, db, target, message)
    finally:
        locked.chmod(0o700)


def test_outputs_are_written_whole(log: Path, tmp_path: Path) -> None:
    html, draft = tmp_path / "audit.html", tmp_path / "draft.yaml"
    result = run("audit", log, "--html", html, "--infer-plan", draft)
    assert result.exit_code == 0, result.output
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert "events:" in draft.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.html",
        "draft.yaml",
        "requests.jsonl",
    ]
    schema = tmp_path / "schema.json"
    assert run("plan", "export", PLAN, "-o", schema).exit_code == 0
    assert "order_completed" in json.loads(schema.read_text())["events"]


def test_a_directory_is_not_an_output_file(tmp_path: Path) -> None:
    _no_traceback(
        run("plan", "export", PLAN, "-o", tmp_path),
        f"Error: {tmp_path}: is a directory; give a file name",
    )


# --- input files --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["audit", "check"])
def test_a_missing_input_file_is_refused_in_the_same_words(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.jsonl"
    for path, error in [(missing, "no such file"), (tmp_path, "is a directory")]:
        result = run(command, path)
        assert (result.exit_code, result.stdout, result.stderr) == (
            2,
            "",
            f"Error: {path}: {error}\n",
        )


# --- configuration files ------------------------------------------------------------------------


def test_a_config_typo_stops_serve_with_its_place(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("upstream:\n  site_id: s\n  api_kye: k\n")
    result = run("serve", "--db", tmp_path / "tg.db", "--config", config, "--listen", "127.0.0.1:0")
    _no_traceback(
        result,
        f"Error: {config}:3:3: upstream: unknown key 'api_kye' (did you mean 'api_key'?);"
        " allowed keys: site_id, api_key",
    )


def test_an_emulator_config_typo(tmp_path: Path) -> None:
    config = tmp_path / "emu.yaml"
    config.write_text("site_id: s\napi_ky: k\n")
    result = run("emulate", "--config", config)
    _no_traceback(
        result,
        f"Error: {config}:2:1: unknown key 'api_ky' (did you mean 'api_key'?);"
        " allowed keys: site_id, api_key",
    )


def test_a_plan_error_is_one_line_per_problem(tmp_path: Path, log: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nnamming: {}\nevents: []\n")
    result = run("check", "--plan", plan, log)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {plan}:2:1: top level: unknown key 'namming' (did you mean 'naming'?);"
        " allowed keys: version, name, plan_version, naming, identity, timestamps, unplanned,"
        " dedupe, timeliness, events, attributes, pages, screens, semantic_events",
        f"Error: {plan}:3:9: events: expected a mapping, got a list",
    ]


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["check", "LOG", "--plan"], "plan"),
        (["audit", "LOG", "--plan"], "plan"),
        (["replay", "--db", "DB", "--plan"], "plan"),
        (["alerts", "status", "--db", "DB", "--rules"], "alert file"),
    ],
    ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else c,
)
def test_a_missing_yaml_file_is_named_once_without_a_place(
    tmp_path: Path, log: Path, db: Path, command: list[str], what: str
) -> None:
    missing = tmp_path / "nope.yaml"
    result = run(*({"LOG": log, "DB": db}.get(a, a) for a in command), missing)
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"Error: {missing}: cannot read the {what} (No such file or directory)\n",
    )


# --- --debug ------------------------------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    typo = tmp_path / "x.db"
    plain = subprocess.run(
        [sys.executable, "-m", "trackguard", "health", "--db", str(typo)],
        capture_output=True,
        text=True,
    )
    assert (plain.returncode, plain.stderr) == (
        2,
        f"Error: no store at {typo} (trackguard serve creates one)\n",
    )
    for args, env in (
        (["--debug", "health", "--db", str(typo)], {}),
        (["health", "--db", str(typo)], {"TRACKGUARD_DEBUG": "1"}),
    ):
        debug = subprocess.run(
            [sys.executable, "-m", "trackguard", *args],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", **env},
        )
        assert debug.returncode == 1
        assert debug.stderr.startswith("Traceback (most recent call last):")
        assert debug.stderr.endswith(
            f"trackguard.errors.StoreNotFound: no store at {typo} (trackguard serve creates one)\n"
        )
    assert not typo.exists()


# --- help ---------------------------------------------------------------------------------------


def test_check_help_names_only_files_that_exist() -> None:
    text = run("check", "--help").stdout
    named = re.findall(r"examples/[\w.-]+", text)
    assert named == ["examples/d2c-plan.yaml", "examples/d2c-plan.yaml"]
    assert all((ROOT / n).is_file() for n in named)


# --- docs/cli.md is true to the code ------------------------------------------------------------

DOCS = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def _error_classes() -> set[type[BaseException]]:
    import importlib
    import pkgutil

    import trackguard
    from trackguard.errors import TrackguardError

    for info in pkgutil.walk_packages(trackguard.__path__, "trackguard."):
        if info.name in ("trackguard.demo", "trackguard.__main__"):
            continue  # the demo needs an optional extra; __main__ runs the command
        importlib.import_module(info.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [TrackguardError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return {
        c for c in found if c.__module__.startswith("trackguard") and not c.__name__.startswith("_")
    }


def test_the_docs_draw_every_error_class() -> None:
    import trackguard.errors

    tree = DOCS.split("```text\n", 1)[1].split("```", 1)[0]
    for cls in _error_classes():
        assert re.search(rf"\b{cls.__name__}\b", tree), cls
        assert re.search(rf"\b{cls.__name__}\b", trackguard.errors.__doc__ or ""), cls


def _documented(command: str) -> str:
    (row,) = [line for line in DOCS.splitlines() if line.startswith(f"| `{command}` |")]
    return row


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("outbox stats", ["outbox", "stats"]),
        ("outbox list", ["outbox", "list"]),
        ("health", ["health"]),
        ("identity unlinked", ["identity", "unlinked", "--older-than", "0"]),
        ("quarantine stats", ["quarantine", "stats"]),
        ("quarantine list", ["quarantine", "list"]),
    ],
)
def test_the_docs_name_every_json_field(db: Path, command: str, args: list[str]) -> None:
    document = _json(*args, "--db", db, "--format", "json")
    first = document[0] if isinstance(document, list) else document
    assert isinstance(first, dict)
    row = _documented(command)
    for key in first:
        assert f'"{key}"' in row or f"`{key}`" in row, (command, key)


@settings(
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.text(max_size=300), st.integers()), min_size=1, max_size=20))
@example([("\u2028", 0)])  # a line separator: splitlines ends a line there
@example([("0\x1f\u20290", 1)])
def test_a_piped_table_is_one_whole_row_per_line(
    capsys: pytest.CaptureFixture[str], rows: list[tuple[str, int]]
) -> None:
    """Whatever the values (long, control characters, newlines), piped output has a header and
    then exactly one line per row, each holding its value whole (escaped)."""
    capsys.readouterr()
    data = [{"value": text, "n": n} for text, n in rows]
    print_table(rows_table(data, (("value", "value"), ("n", "n"))))
    lines = capsys.readouterr().out.split("\n")  # as grep and wc -l count lines
    assert lines[-1] == ""
    assert len(lines) == len(rows) + 2
    for line, (text, n) in zip(lines[1:-1], rows, strict=True):
        assert printable(text, one_line=True).strip() in line
        assert line.endswith(str(n))


# --- every command keeps to the shared options ----------------------------------------------------

#: The commands that may create a store.
CREATORS = {("serve",), ("store", "init")}


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append((path, command))
    return found


def test_every_db_option_is_the_shared_one() -> None:
    """A --db that is not checked would create a store on a typo: only serve may."""
    with_db = 0
    for path, command in _commands(main):
        for param in command.params:
            if param.name != "db":
                continue
            with_db += 1
            assert param.envvar == "TRACKGUARD_DB", path
            if path in CREATORS:
                continue
            assert param.callback is not None and param.callback.__name__ == "_must_exist", path
    assert with_db >= len(STORE_COMMANDS) + 1  # and serve


def test_open_store_without_create_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "tg.db"
    with pytest.raises(StoreNotFound) as info:
        open_store(typo, create=False)
    assert str(info.value) == f"no store at {typo} (trackguard serve creates one)"
    assert isinstance(info.value, StoreError) and not typo.exists()
    open_store(typo).close()
    open_store(typo, create=False).close()
