"""``trackguard quarantine`` through click's runner against a real store: a SQLite file and a
PostgreSQL schema (``built_target``, ``target``), with the same expected output for both."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from quarantine_env import Invoke, build_store

from pg_server import fresh_schema
from trackguard.cli.quarantine import quarantine_group
from trackguard.store.base import QuarantineRecord, Write
from trackguard.store.sqlite import SQLiteStore


def rows(output: str) -> list[str]:
    """Output lines with runs of spaces collapsed, for table rows."""
    return [" ".join(line.split()) for line in output.splitlines()]


LIST_HEADER = "id received (UTC) kind state source event codes request"
LIST_ROWS = {
    8: "8 2026-11-01 10:02:00 upstream quarantined backend order_completed upstream_rejected"
    " POST /api/v2/entity",
    7: "7 2026-11-03 10:00:01 plan quarantined mobile - property_constraint"
    " PUT /api/v1/customers/cus_3",
    6: "6 2026-11-03 10:00:00 plan quarantined mobile order_completed property_missing"
    " property_type POST /api/v1/customers/cus_1/events",
    5: "5 2026-11-02 11:00:00 plan quarantined storefront order_completed property_constraint"
    " POST /api/v2/batch [item 0]",
    4: "4 2026-11-02 11:00:00 contract quarantined storefront - v2_action_invalid"
    " POST /api/v2/batch [item 2]",
    3: "3 2026-11-02 10:00:00 contract quarantined backend - invalid_json"
    " POST /api/v1/customers/cus_1/events",
    2: "2 2026-11-01 10:01:00 contract quarantined backend - event_name_blank"
    " POST /api/v1/customers/cus_1/events",
    1: "1 2026-11-01 10:00:00 plan quarantined storefront order_completed property_type"
    " POST /api/v1/customers/cus_1/events",
}


# --- list ---------------------------------------------------------------------------------------


def test_list_everything(invoke: Invoke, built_target: str) -> None:
    result = invoke(quarantine_group, "list", "--db", built_target)
    assert result.exit_code == 0
    assert rows(result.stdout) == [
        LIST_HEADER,
        *(LIST_ROWS[i] for i in (8, 7, 6, 5, 4, 3, 2, 1)),
    ]
    assert result.stderr == "showing 1-8 of 8 matching records\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--code", "property_type"], [6, 1]),
        (["--event", "order_completed", "--source", "storefront"], [5, 1]),
        (["--kind", "contract"], [4, 3, 2]),
        (["--since", "2026-11-02", "--until", "2026-11-03"], [5, 4, 3]),
        (["--since", "2d"], [7, 6, 5, 4, 3]),  # NOW is 2026-11-04T10:00Z
        (["--until", "2026-11-01T12:01:00+02:00"], [1]),  # 10:01Z, exclusive
        (["--until", "2026-11-01T12:01:01+02:00"], [2, 1]),
        (["--state", "quarantined", "--kind", "upstream"], [8]),
    ],
)
def test_list_filters(
    invoke: Invoke, built_target: str, args: list[str], expected: list[int]
) -> None:
    result = invoke(quarantine_group, "list", "--db", built_target, *args)
    assert result.exit_code == 0
    noun = "record" if len(expected) == 1 else "records"
    assert rows(result.stdout) == [
        LIST_HEADER,
        *(LIST_ROWS[i] for i in expected),
    ]
    assert result.stderr == f"showing 1-{len(expected)} of {len(expected)} matching {noun}\n"


def test_list_pages(invoke: Invoke, built_target: str) -> None:
    store_path = built_target
    result = invoke(quarantine_group, "list", "--db", store_path, "--limit", "3", "--offset", "3")
    assert rows(result.stdout) == [
        LIST_HEADER,
        LIST_ROWS[5],
        LIST_ROWS[4],
        LIST_ROWS[3],
    ]
    assert result.stderr == "showing 4-6 of 8 matching records; next page: --offset 6\n"
    result = invoke(quarantine_group, "list", "--db", store_path, "--offset", "8")
    assert result.stdout == "no records after --offset 8 (8 matching records)\n"
    result = invoke(quarantine_group, "list", "--db", store_path, "--source", "nobody")
    assert result.stdout == "no quarantined records match\n"


def test_list_escapes_what_clients_sent(invoke: Invoke, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tg.db")
    hostile = QuarantineRecord(
        received_at=1793527200.0,
        kind="plan",
        method="POST",
        path="/api/v1/customers/[bold]x[/]/events",
        event_name="\x1b[2J\u202eevil\nname",
        source="[red]",
    )
    store.commit([Write(quarantine=(hostile,))])
    store.close()
    result = invoke(quarantine_group, "list", "--db", tmp_path / "tg.db")
    assert result.exit_code == 0
    assert rows(result.stdout)[1] == (
        "1 2026-11-01 10:00:00 plan quarantined [red] \\x1b[2J\\u202eevil\\nname -"
        " POST /api/v1/customers/[bold]x[/]/events"
    )


# --- show ---------------------------------------------------------------------------------------

SHOW_1 = """\
id:             1
received:       2026-11-01T10:00:00.000Z (1793527200.0)
kind:           plan
state:          quarantined
request:        POST /api/v1/customers/cus_1/events
batch index:    -
source:         storefront
plan version:   2026-11-01
route:          POST /api/v1/customers/{identifier}/events
status:         200
event:          order_completed
codes:          property_type
upstream error: -
headers (2):
  authorization: [redacted]
  content-type: application/json
findings (1):
  [
    {
      "kind": "plan",
      "code": "property_type",
      "rule": "events.order_completed.properties.total",
      "path": "data.total",
      "message": "'total' should be number, got string 'abc'",
      "action": "reject",
      "batch_index": null
    }
  ]
body (91 bytes, UTF-8):
{"name": "order_completed", "data": {"order_id": "O-1", "currency": "USD", "total": "abc"}}
"""

SHOW_3_TAIL = """\
body (3 bytes, not UTF-8: shown with U+FFFD, exact bytes in body_base64):
\ufffd\ufffd{
body_base64:
//57
"""


def test_show_prints_every_field(invoke: Invoke, built_target: str) -> None:
    db = built_target
    result = invoke(quarantine_group, "show", "1", "--db", db)
    assert result.exit_code == 0
    assert result.stdout == SHOW_1
    result = invoke(quarantine_group, "show", "3", "--db", db)
    assert result.stdout.endswith(SHOW_3_TAIL)
    result = invoke(quarantine_group, "show", "8", "--db", db)
    assert "upstream error: event name is reserved\n" in result.stdout
    assert "batch index:    -\n" in result.stdout


def test_show_item_of_a_batch(invoke: Invoke, built_target: str) -> None:
    store_path = built_target
    lines = invoke(quarantine_group, "show", "5", "--db", store_path).stdout.splitlines()
    assert lines[4:6] == ["request:        POST /api/v2/batch", "batch index:    0"]
    assert lines[-1] == (
        '{"type":"person","action":"event","identifiers":{"id":"cus_2"},'
        '"name":"order_completed","attributes":{"order_id":"O-2","total":-1,"currency":"USD"}}'
    )


def test_show_json_is_the_export_line(invoke: Invoke, built_target: str) -> None:
    store_path = built_target
    shown = invoke(quarantine_group, "show", "3", "--db", store_path, "--json").stdout
    exported = invoke(quarantine_group, "export", "--db", store_path).stdout.splitlines()
    assert shown == exported[2] + "\n"
    assert json.loads(shown)["body_base64"] == "//57"


def test_show_escapes_control_characters(invoke: Invoke, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tg.db")
    body = b'{"name":"\x1b]0;pwned\x07"}\n\tsecond line'
    store.commit(
        [
            Write(
                quarantine=(
                    QuarantineRecord(
                        received_at=0.0, kind="plan", method="POST", path="/", body=body
                    ),
                )
            )
        ]
    )
    store.close()
    result = invoke(quarantine_group, "show", "1", "--db", tmp_path / "tg.db")
    assert result.stdout.endswith(
        'body (34 bytes, UTF-8):\n{"name":"\\x1b]0;pwned\\x07"}\n\tsecond line\n'
    )
    exact = invoke(quarantine_group, "show", "1", "--db", tmp_path / "tg.db", "--json").stdout
    assert json.loads(exact)["body"].encode() == body


@pytest.mark.parametrize("record_id", ["99", "0", "-3", str(2**70)])
def test_show_unknown_record(invoke: Invoke, built_target: str, record_id: str) -> None:
    store_path = built_target
    result = invoke(quarantine_group, "show", "--db", store_path, "--", record_id)
    assert result.exit_code == 2
    assert result.stderr == f"Error: no quarantine record {record_id} in {store_path}\n"


# --- stats --------------------------------------------------------------------------------------


def test_stats_tables(invoke: Invoke, built_target: str) -> None:
    result = invoke(quarantine_group, "stats", "--db", built_target)
    assert result.exit_code == 0
    assert rows(result.stdout) == [
        "8 quarantined records",
        "",
        "kind records share",
        "plan 4 50.0%",
        "contract 3 37.5%",
        "upstream 1 12.5%",
        "",
        "state records share",
        "quarantined 8 100.0%",
        "",
        "code records share",
        "property_constraint 2 25.0%",
        "property_type 2 25.0%",
        "event_name_blank 1 12.5%",
        "invalid_json 1 12.5%",
        "property_missing 1 12.5%",
        "upstream_rejected 1 12.5%",
        "v2_action_invalid 1 12.5%",
        "",
        "event records share",
        "order_completed 4 50.0%",
        "(no event) 4 50.0%",
        "",
        "source records share",
        "backend 3 37.5%",
        "storefront 3 37.5%",
        "mobile 2 25.0%",
        "",
        "day (UTC) records share",
        "2026-11-01 3 37.5%",
        "2026-11-02 3 37.5%",
        "2026-11-03 2 25.0%",
    ]


def test_stats_json_and_empty(invoke: Invoke, built_target: str) -> None:
    store_path = built_target
    result = invoke(
        quarantine_group, "stats", "--db", store_path, "--source", "mobile", "--format", "json"
    )
    assert json.loads(result.stdout) == {
        "total": 2,
        "by_kind": [["plan", 2]],
        "by_state": [["quarantined", 2]],
        "by_code": [["property_constraint", 1], ["property_missing", 1], ["property_type", 1]],
        "by_event": [["order_completed", 1], [None, 1]],
        "by_source": [["mobile", 2]],
        "by_day": [["2026-11-03", 2]],
    }
    result = invoke(quarantine_group, "stats", "--db", store_path, "--code", "nope")
    assert result.stdout == "0 quarantined records\n"


# --- export -------------------------------------------------------------------------------------


def test_export_jsonl_to_stdout(invoke: Invoke, built_target: str) -> None:
    store_path = built_target
    result = invoke(quarantine_group, "export", "--db", store_path, "--kind", "upstream")
    assert result.exit_code == 0
    assert result.stderr == "exported 1 record to stdout\n"
    assert json.loads(result.stdout) == {
        "id": 8,
        "time": "2026-11-01T10:02:00.000Z",
        "received_at": 1793527320.0,
        "kind": "upstream",
        "state": "quarantined",
        "method": "POST",
        "path": "/api/v2/entity",
        "headers": {},
        "body": '{"type":"person","action":"event","identifiers":{"id":"cus_1"},'
        '"name":"order_completed","id":"0000000000F6JN54FCG11FBC75","timestamp":1793527320,'
        '"attributes":{"order_id":"O-1","currency":"USD","total":5}}',
        "source": "backend",
        "plan_version": "2026-11-01",
        "route": "POST /api/v1/customers/{identifier}/events",
        "status": 207,
        "event_name": "order_completed",
        "codes": ["upstream_rejected"],
        "batch_index": None,
        "upstream_error": "event name is reserved",
        "findings": [{"reason": "invalid", "field": "name", "message": "event name is reserved"}],
    }


def test_export_csv_to_a_file(invoke: Invoke, built_target: str, tmp_path: Path) -> None:
    out = tmp_path / "q.csv"
    result = invoke(
        quarantine_group,
        "export",
        "--db",
        built_target,
        "--format",
        "csv",
        "-o",
        out,
        "--since",
        "2026-11-02",
    )
    assert result.exit_code == 0
    assert result.stderr == f"exported 5 records to {out}\n"
    assert result.stdout == ""
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["id"], r["kind"], r["codes"]) for r in table] == [
        ("3", "contract", "invalid_json"),
        ("4", "contract", "v2_action_invalid"),
        ("5", "plan", "property_constraint"),
        ("6", "plan", "property_missing property_type"),
        ("7", "plan", "property_constraint"),
    ]
    assert not list(tmp_path.glob("*.partial"))


def test_export_leaves_no_file_when_the_store_is_missing(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    out.write_text("previous export\n")
    result = invoke(quarantine_group, "export", "--db", tmp_path / "none.db", "-o", out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no store at {tmp_path / 'none.db'} (trackguard serve creates one)\n"
    )
    assert out.read_text() == "previous export\n"
    assert not list(tmp_path.glob("*.partial"))


def test_export_into_a_missing_directory(invoke: Invoke, store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "nope" / "q.jsonl"
    result = invoke(quarantine_group, "export", "--db", store_path, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {out}: the directory {out.parent} does not exist\n"


# --- purge --------------------------------------------------------------------------------------


def test_purge_dry_run_then_purge(invoke: Invoke, target: str, any_store: Any) -> None:
    store = any_store
    result = invoke(quarantine_group, "purge", "--db", target, "--older-than", "2d", "--dry-run")
    assert result.stdout == (
        "would purge 3 records received before 2026-11-02T10:00:00.000Z (older than 2d)\n"
    )
    assert store.quarantine_count() == 8
    result = invoke(quarantine_group, "purge", "--db", target, "--older-than", "48h")
    assert result.exit_code == 0
    assert result.stdout == (
        "purged 3 records received before 2026-11-02T10:00:00.000Z (older than 2d); 5 remain\n"
    )
    assert store.quarantine_count() == 5
    result = invoke(quarantine_group, "purge", "--db", target, "--older-than", "1d12h")
    assert result.stdout == (
        "purged 3 records received before 2026-11-02T22:00:00.000Z (older than 1d12h); 2 remain\n"
    )
    assert store.quarantine_count() == 2


def test_purge_reads_the_retention_from_the_environment(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trackguard.cli.quarantine._now", lambda: 1793527200.0 + 3 * 86_400)
    runner = CliRunner(env={"TRACKGUARD_QUARANTINE_RETENTION": "1d"})
    result = runner.invoke(quarantine_group, ["purge", "--db", str(store_path)])
    assert result.exit_code == 0
    assert result.stdout == (
        "purged 6 records received before 2026-11-03T10:00:00.000Z (older than 1d); 2 remain\n"
    )
    runner = CliRunner(env={"TRACKGUARD_QUARANTINE_RETENTION": "a month"})
    result = runner.invoke(quarantine_group, ["purge", "--db", str(store_path)])
    assert result.exit_code == 2
    assert "'a month' is not a duration" in result.stderr


def test_purge_needs_an_age(invoke: Invoke, store_path: Path) -> None:
    result = invoke(quarantine_group, "purge", "--db", store_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Missing option '--older-than' (env var: 'TRACKGUARD_QUARANTINE_RETENTION')."
    )


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["purge", "--older-than", "30 days"],
            "Error: Invalid value for '--older-than' (env var: 'TRACKGUARD_QUARANTINE_RETENTION'):"
            " '30 days' is not a duration: write a number with a unit: 30s, 15m, 24h, 7d, 2w,"
            " or combined: 1h30m",
        ),
        (
            ["list", "--since", "last week"],
            "Error: Invalid value for '--since': 'last week' is neither a duration nor a date:"
            " write 7d or 24h (that long ago), 2026-11-01 or 2026-11-01T12:00:00Z",
        ),
        (
            ["stats", "--until", "1700000000"],
            "Error: Invalid value for '--until': '1700000000' is ambiguous: write a duration with"
            " a unit (90s, 7d) for that long ago, or a date (2026-11-01)",
        ),
        (
            ["export", "--since", "1d", "--until", "2d"],
            "Error: --since (2026-11-03T10:00:00.000Z) must be before --until"
            " (2026-11-02T10:00:00.000Z)",
        ),
        (
            ["list", "--kind", "bogus"],
            "Error: Invalid value for '--kind': 'bogus' is not one of 'contract', 'plan',"
            " 'upstream'.",
        ),
        (
            ["list", "--limit", "0"],
            "Error: Invalid value for '--limit': 0 is not in the range x>=1.",
        ),
        (
            ["export", "--format", "xml"],
            "Error: Invalid value for '--format': 'xml' is not one of 'jsonl', 'csv'.",
        ),
        (["show", "seven"], "Error: Invalid value for 'ID': 'seven' is not a valid integer."),
    ],
)
def test_malformed_options_exit_2(
    invoke: Invoke, store_path: Path, args: list[str], message: str
) -> None:
    result = invoke(quarantine_group, *args, "--db", store_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", [["list"], ["show", "1"], ["stats"], ["export"], ["purge", "--older-than", "1d"]]
)
def test_every_command_reports_a_missing_store(
    invoke: Invoke, tmp_path: Path, command: list[str]
) -> None:
    result = invoke(quarantine_group, *command, "--db", tmp_path / "typo.db")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no store at {tmp_path / 'typo.db'} (trackguard serve creates one)\n"
    )
    assert not (tmp_path / "typo.db").exists()


def test_a_file_that_is_not_a_store(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not sqlite" * 200)
    result = invoke(quarantine_group, "stats", "--db", path)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: cannot open the store: file is not a database\n"


def test_every_command_has_an_example() -> None:
    for name, command in quarantine_group.commands.items():
        assert "Example:" in (command.help or ""), name


_ANY_TEXT = st.text(
    alphabet=st.characters() | st.sampled_from(["\ud800", "\udcff", "\x00", "\x1b"]), max_size=12
)
_OPTIONS = st.sampled_from(
    ["--event", "--code", "--source", "--since", "--until", "--kind", "--state", "--limit"]
)


@settings(max_examples=200)
@given(
    command=st.sampled_from(["list", "stats", "export"]),
    options=st.lists(st.tuples(_OPTIONS, _ANY_TEXT), max_size=4),
)
def test_no_filter_input_crashes(built: Path, command: str, options: list[tuple[str, str]]) -> None:
    args = [command, "--db", str(built)]
    for option, value in options:
        args += [option, value]
    result = CliRunner().invoke(quarantine_group, args, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.splitlines()[-1].startswith("Error: ")


@settings(max_examples=200)
@given(age=_ANY_TEXT, dry_run=st.booleans(), record_id=_ANY_TEXT)
def test_no_purge_or_show_input_crashes(
    built: Path, age: str, dry_run: bool, record_id: str
) -> None:
    runner = CliRunner()
    # dry runs only: the session's store is shared
    args = ["purge", "--db", str(built), "--dry-run", "--older-than", age]
    result = runner.invoke(quarantine_group, args, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    result = runner.invoke(
        quarantine_group, ["show", "--db", str(built), "--", record_id], catch_exceptions=False
    )
    assert result.exit_code in (0, 1, 2), result.output


def test_a_store_in_use_by_a_gateway(invoke: Invoke, empty_target: str) -> None:
    """The CLI reads and purges while the store is open and writing (SQLite: WAL, one file;
    PostgreSQL: another connection)."""
    db = empty_target
    store = build_store(db)
    try:
        assert invoke(quarantine_group, "stats", "--db", db).stdout.startswith(
            "8 quarantined records\n"
        )
        invoke(quarantine_group, "purge", "--db", db, "--older-than", "0")
        store.commit(
            [
                Write(
                    quarantine=(
                        QuarantineRecord(received_at=0.0, kind="plan", method="POST", path="/"),
                    )
                )
            ]
        )
        assert store.quarantine_count() == 1
        out = invoke(quarantine_group, "export", "--db", db).stdout
        assert [json.loads(line)["id"] for line in io.StringIO(out)] == [9]
    finally:
        store.close()


DOCS = Path(__file__).resolve().parents[2] / "docs" / "quarantine.md"


@pytest.mark.parametrize(
    "command",
    [
        "list",
        "list --code property_type --source mobile",
        "show 3",
        "stats --kind plan",
    ],
)
def test_the_docs_show_real_output(invoke: Invoke, store_path: Path, command: str) -> None:
    """docs/quarantine.md's session is this store's output, to the character (spaces aside)."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    at = lines.index(f"$ trackguard quarantine {command}") + 1
    block: list[str] = []
    while not lines[at].startswith(("$ ", "```")):
        block.append(lines[at])
        at += 1
    while block and not block[-1]:
        block.pop()
    result = invoke(quarantine_group, *command.split(), "--db", store_path)
    assert rows(result.stdout + result.stderr) == rows("\n".join(block))


# --- PostgreSQL stores --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["list"], ["show", "1"], ["stats"], ["export"], ["purge", "--older-than", "1d"]]
)
def test_a_schema_without_a_store_is_an_error_and_stays_empty(
    invoke: Invoke, command: list[str]
) -> None:
    with fresh_schema() as (url, schema):
        db = f"{url}?schema={schema}"
        result = invoke(quarantine_group, *command, "--db", db)
        assert result.exit_code == 2
        assert result.stderr == f"Error: no store at {db} (trackguard serve creates one)\n"
        assert result.stdout == ""
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                (schema,),
            ).fetchone() == (0,)


def test_a_password_in_the_url_is_never_printed(invoke: Invoke, built_pg: str) -> None:
    db = built_pg.replace("@", ":s3cret-pw@", 1)  # trust auth ignores the password
    assert "s3cret-pw" in db
    result = invoke(quarantine_group, "show", "99", "--db", db)
    assert result.exit_code == 2
    assert result.stderr == f"Error: no quarantine record 99 in {built_pg}\n"
    result = invoke(quarantine_group, "list", "--db", db, "--limit", "1")
    assert rows(result.stdout) == [LIST_HEADER, LIST_ROWS[8]]


def test_an_unreachable_server_is_one_line_and_exit_2(invoke: Invoke) -> None:
    db = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"
    result = invoke(quarantine_group, "stats", "--db", db)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: postgresql://postgres@127.0.0.1:1/test?connect_timeout=2: cannot connect to"
        " PostgreSQL: "
    )
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
