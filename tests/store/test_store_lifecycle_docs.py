"""docs/store.md tells the truth about the store's lifecycle: defaults, commands, version."""

from __future__ import annotations

import re
from pathlib import Path

import click

from trackguard.cli import main
from trackguard.cli import store as store_cli
from trackguard.durations import format_duration
from trackguard.store.retention import DEFAULT_PRUNE_EVERY, MONITOR_RETENTION, Retention
from trackguard.store.sqlite import SCHEMA_VERSION, SQLiteStore

DOC = (Path(__file__).resolve().parents[2] / "docs" / "store.md").read_text()


def _default(command: str, option: str) -> object:
    cmd = main.commands[command]
    (param,) = [p for p in cmd.params if isinstance(p, click.Option) and option in p.opts]
    return param.default


def test_the_synchronous_defaults_agree_with_the_code() -> None:
    serve = _default("serve", "--synchronous")
    library = SQLiteStore.__init__.__kwdefaults__["synchronous"]  # type: ignore[index]
    assert (serve, library) == ("NORMAL", "FULL")
    assert f"`trackguard serve` defaults to `{serve}`" in DOC
    assert f'| `synchronous="{serve}"` (`trackguard serve`\'s default) |' in DOC
    assert f'| `synchronous="{library}"` (`SQLiteStore`\'s default) |' in DOC
    assert not [line for line in DOC.splitlines() if "synchronous=" in line and "(default)" in line]


def test_the_retention_table_has_the_defaults_and_variables_of_the_code() -> None:
    rows = {line.split("|")[1].strip(): line for line in DOC.splitlines() if line.startswith("| ")}
    keep = Retention()
    expected = {
        "delivered and failed outbox rows": (keep.outbox, store_cli.OUTBOX_RETENTION_ENV),
        "anonymous activity (`anonymous`)": (keep.anonymous, store_cli.ANONYMOUS_RETENTION_ENV),
        "the monitor's counters and health snapshots": (
            MONITOR_RETENTION,
            store_cli.MONITOR_RETENTION_ENV,
        ),
        "how often": (DEFAULT_PRUNE_EVERY, store_cli.PRUNE_EVERY_ENV),
    }
    for what, (seconds, env) in expected.items():
        cells = [c.strip() for c in rows[what].split("|")]
        assert f"`{format_duration(int(seconds))}`" in cells[-2], what
        assert f"`{env}`" in rows[what], what


def test_every_store_command_is_documented_and_the_schema_version_is_current() -> None:
    for name in store_cli.store_group.commands:
        assert f"`store {name}" in DOC, name
    (version,) = re.findall(r"holds the schema version \((\d+) today\)", DOC)
    assert int(version) == SCHEMA_VERSION
    assert "## Retention indexes (schema version 6)" in DOC
    # The newest schema version has its section, the last of them.
    steps = re.findall(r"^## .*\(schema versions? (?:\d+ and )?(\d+)\)$", DOC, re.MULTILINE)
    assert [int(v) for v in steps] == [2, 4, 5, 6, SCHEMA_VERSION]
