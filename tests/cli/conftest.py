"""Fixtures for the CLI tests: a small YAML plan, request files, and a click runner."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

#: A small plan in the format of ``examples/d2c-plan.yaml`` (see ``docs/plan.md``).
PLAN_YAML = """\
version: 1
name: cli-test
plan_version: "7"

naming:
  convention: snake_case
  action: fix

identity:
  canonical: id
  email_keyed: warn
  email_in_id: reject
  anonymous: allow

timestamps:
  action: fix

unplanned:
  events: warn
  properties: warn
  attributes: allow

events:
  order_completed:
    description: A paid order.
    aliases: ["Purchase"]
    dedupe_key: data.order_id
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true, minimum: 0, action: fix}
      currency: {type: enum, values: [USD, EUR], action: fix}

attributes:
  email: {type: email, action: fix}
"""

WriteLines = Callable[..., Path]
Invoke = Callable[..., Result]


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML, encoding="utf-8")
    return path


@pytest.fixture
def write_lines(tmp_path: Path) -> WriteLines:
    """``write_lines(name, lines, gz=False)``: a request file; dict lines are JSON-encoded,
    str lines are written as they are."""

    def write(name: str, lines: Sequence[dict[str, Any] | str], *, gz: bool = False) -> Path:
        text = "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines
        ).encode()
        path = tmp_path / name
        path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
        return path

    return write


@pytest.fixture
def invoke() -> Invoke:
    """``invoke(command, *args)``: run a click command with a wide, colourless terminal."""
    runner = CliRunner(
        env={"COLUMNS": "1000", "NO_COLOR": "1", "FORCE_COLOR": None, "TERM": "dumb"}
    )

    def run(command: click.Command, *args: str | Path) -> Result:
        return runner.invoke(command, [str(a) for a in args], catch_exceptions=False)

    return run
