"""A plan's ``pages: {"*": ...}`` entry end to end: page calls, named or not, sent to the real
gateway's Pipelines door over loopback; the one without a url is quarantined, the others reach
the emulator (a named page's own spec winning over ``"*"``), and ``trackguard check`` and
``audit`` read the gateway's request log to the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from pipelines_env import WRITE_KEY

from outbox_wait import drain
from trackguard.audit import audit
from trackguard.cli.check import check_command
from trackguard.emulator.app import Emulator
from trackguard.emulator.faults import FaultConfig
from trackguard.gateway.build import GatewayOptions, create_gateway
from trackguard.gateway.config import AuthConfig, Credentials
from trackguard.http.runner import RunningServer, start_in_thread
from trackguard.plan.loader import load_plan
from trackguard.store.sql import session

PLAN = """\
version: 1
pages:
  "*":
    properties:
      url: {type: string, required: true}
      title: {type: string, action: fix}
  Pricing:
    properties:
      url: {type: string, required: false}
"""
AT = "2026-01-02T03:04:05.000Z"


def _page(mid: str, name: str | None, props: dict[str, Any]) -> dict[str, Any]:
    call = {"userId": "u-1", "messageId": mid, "timestamp": AT, "properties": props}
    return call if name is None else {**call, "name": name}


PAGES = [
    _page("p-1", None, {"title": "Home"}),  # no name, no url: rejected by "*"
    _page("p-2", None, {"url": "https://shop.example/"}),  # passes
    _page("p-3", "Pricing", {"title": "Plans"}),  # Pricing's own url is optional
    _page("p-4", None, {"url": "https://shop.example/c", "title": 42}),  # title fixed
]


def test_the_door_check_and_audit_hold_every_page_to_the_star_entry(
    tmp_path: Path, pipelines_session: tuple[Emulator, RunningServer]
) -> None:
    emulator, upstream = pipelines_session
    emulator.reset()
    emulator.faults.set(FaultConfig())
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    log, db = tmp_path / "requests.jsonl", tmp_path / "tg.db"
    opts = GatewayOptions(
        plan=plan, db=db, upstream=upstream.url, pipelines_upstream=upstream.url, request_log=log
    )
    auth = AuthConfig(upstream=Credentials("site", "track-key"), pipelines_key=WRITE_KEY)
    with (
        start_in_thread(create_gateway(opts, auth)) as gateway,
        httpx.Client(base_url=gateway.url, auth=(WRITE_KEY, ""), timeout=10) as client,
    ):
        for call in PAGES:
            sent = client.post("/v1/page", json=call)
            assert (sent.status_code, sent.content) == (200, b"{}")
        drain(db)
    delivered = [c["call"] for c in emulator.pipelines.calls_view()]
    assert [(c["messageId"], c.get("name"), c["properties"]) for c in delivered] == [
        ("p-2", None, {"url": "https://shop.example/"}),
        ("p-3", "Pricing", {"title": "Plans"}),
        ("p-4", None, {"url": "https://shop.example/c", "title": "42"}),
    ]
    with session(db) as s:
        kept = s.rows("SELECT kind, codes, body FROM quarantine ORDER BY id")
    assert [(kind, codes, json.loads(body)["messageId"]) for kind, codes, body in kept] == [
        ("plan", '["page_without_url","property_missing"]', "p-1")
    ]
    assert [e["name"] for e in emulator.state.events_view(type="page")] == [
        "https://shop.example/",
        "https://shop.example/c",
    ]  # Journeys names page views by url: Pricing's, without one, is dropped there

    result = CliRunner().invoke(check_command, [str(log), "--plan", str(plan), "--format", "jsonl"])
    assert result.exit_code == 1
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["outcome"] for v in verdicts] == ["rejected", "accepted", "warned", "fixed"]
    assert [
        (x["code"], x["rule"], x["path"], x["action"])
        for v in verdicts
        for x in v["violations"]
        if x["rule"] != "contract"
    ] == [
        ("property_missing", "pages.*.properties.url", "properties.url", "reject"),
        ("property_type", "pages.*.properties.title", "properties.title", "fix"),
    ]

    report = audit([log], load_plan(plan))
    assert {f.id: f.count for f in report.findings if f.id.startswith("plan.")} == {
        "plan.property_missing.pages.*.properties.url.reject": 1,
        "plan.property_type.pages.*.properties.title.fix": 1,
    }
    assert not [f for f in report.findings if f.kind == "disagreement"]  # the log's answers agree
