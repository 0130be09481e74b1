"""``docs/pipelines.md`` cannot drift from the Pipelines contract: its message table is the
registry, row for row, and its route table names every route."""

from __future__ import annotations

import re
from pathlib import Path

from trackguard.contract.pipelines.messages import REGISTRY
from trackguard.contract.pipelines.routes import ROUTES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_message_table_is_the_registry() -> None:
    text = (DOCS / "pipelines.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (error|warning) \| (.+?) \| (yes|no) \|$", text, re.M)
    assert rows == [
        (msg.code, msg.severity, msg.text, "yes" if msg.verified else "no")
        for msg in REGISTRY.values()
    ]


def test_every_route_is_documented() -> None:
    text = (DOCS / "pipelines.md").read_text()
    routes = text[text.index("## Routes") : text.index("## The write key")]
    assert set(re.findall(r"`(/v1/[a-z]+)`", routes)) == set(ROUTES)


def test_the_emulator_docs_name_the_pipelines_read_api() -> None:
    text = (DOCS / "emulator.md").read_text()
    for path in ("/_emulator/pipelines/calls", "/_emulator/pipelines/dropped"):
        assert path in text
